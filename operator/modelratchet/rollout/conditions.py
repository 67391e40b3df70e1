"""metav1.Condition bookkeeping, following the Kubernetes API conventions."""

from __future__ import annotations

from typing import Literal

from modelratchet.api.common import Condition

ConditionStatus = Literal["True", "False", "Unknown"]

# Condition types a ModelRollout carries.
READY = "Ready"  # references resolve: target, checkpoint field, baseline
PROGRESSING = "Progressing"  # a rollout is under way
PAUSED = "Paused"  # waiting: manual gate, timed pause, blocked warning, waiting for data
ANALYSIS = "AnalysisPassing"  # the latest analysis passed
PROMOTED = "Promoted"  # the desired checkpoint is serving
ROLLED_BACK = "RolledBack"  # the latest candidate was rejected
REGISTRY_SYNCED = "RegistrySynced"  # spec.source: the alias resolves and every verdict is written back
TRAINING_SUSPENDED = "TrainingSuspended"  # spec.onRollback: training workloads suspended after a rollback
DEGRADED = "Degraded"  # the operator cannot do its job: a reconcile error, or a checkpoint it refuses to write


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """Return conditions with ``type_`` set; lastTransitionTime moves only when status changes."""
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        transition = c.last_transition_time if c.status == status else now
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=transition,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        )
    return out


def get_condition(conditions: list[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or [] if c.type == type_), None)
