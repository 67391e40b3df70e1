"""The ModelRatchet API: pydantic models of the CRDs (the single source of truth for their schemas)."""

from .baseline import (
    Judge,
    MetricSpec,
    ModelBaseline,
    ModelBaselineSpec,
    ModelBaselineStatus,
    Threshold,
    Tier,
    Verdict,
)
from .common import API_VERSION, GROUP, VERSION, Condition, parse_duration
from .rollout import (
    Analysis,
    CheckpointFrom,
    HistoryEntry,
    MetricResult,
    ModelRollout,
    ModelRolloutSpec,
    ModelRolloutStatus,
    Step,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Analysis",
    "CheckpointFrom",
    "Condition",
    "HistoryEntry",
    "Judge",
    "MetricResult",
    "MetricSpec",
    "ModelBaseline",
    "ModelBaselineSpec",
    "ModelBaselineStatus",
    "ModelRollout",
    "ModelRolloutSpec",
    "ModelRolloutStatus",
    "Step",
    "Threshold",
    "Tier",
    "Verdict",
    "parse_duration",
]
