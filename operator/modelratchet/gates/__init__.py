"""The gate engine: thresholds, severities, classification and verdicts. Pure: no I/O, no cluster."""

from .classify import classify
from .engine import OnMissing, Status, ValidationResult, evaluate, summarize
from .observation import Histogram, Observation, Schedule
from .tolerance import ABS_TOL, REL_TOL

__all__ = [
    "ABS_TOL",
    "REL_TOL",
    "Histogram",
    "Observation",
    "OnMissing",
    "Schedule",
    "Status",
    "ValidationResult",
    "classify",
    "evaluate",
    "summarize",
]
