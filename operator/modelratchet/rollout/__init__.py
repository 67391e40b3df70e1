"""The pure rollout state machine: (spec, status, observations, now) -> (new status, actions)."""

from .machine import Decision, analysis_due, reconcile
from .plan import intended_target, plan, unvalidated_target
from .replicas import canary_replicas, effective_weight
from .types import (
    Action,
    AnalysisReport,
    AnalysisRequest,
    Announcement,
    CanaryState,
    DeleteCanary,
    EmitEvent,
    EnsureCanary,
    Notify,
    RouteObservation,
    RouteState,
    SetRoute,
    SetTargetCheckpoint,
    TargetState,
    World,
)

__all__ = [
    "Action",
    "AnalysisReport",
    "AnalysisRequest",
    "Announcement",
    "CanaryState",
    "Decision",
    "DeleteCanary",
    "EmitEvent",
    "EnsureCanary",
    "Notify",
    "RouteObservation",
    "RouteState",
    "SetRoute",
    "SetTargetCheckpoint",
    "TargetState",
    "World",
    "analysis_due",
    "canary_replicas",
    "effective_weight",
    "intended_target",
    "plan",
    "reconcile",
    "unvalidated_target",
]
