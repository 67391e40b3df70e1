"""The pure rollout state machine: (spec, status, observations, now) -> (new status, actions)."""

from .machine import Decision, analysis_due, reconcile
from .replicas import canary_replicas, effective_weight
from .types import (
    Action,
    AnalysisReport,
    AnalysisRequest,
    CanaryState,
    DeleteCanary,
    EmitEvent,
    EnsureCanary,
    Notify,
    SetTargetCheckpoint,
    TargetState,
    World,
)

__all__ = [
    "Action",
    "AnalysisReport",
    "AnalysisRequest",
    "CanaryState",
    "Decision",
    "DeleteCanary",
    "EmitEvent",
    "EnsureCanary",
    "Notify",
    "SetTargetCheckpoint",
    "TargetState",
    "World",
    "analysis_due",
    "canary_replicas",
    "effective_weight",
    "reconcile",
]
