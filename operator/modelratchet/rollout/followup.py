"""After the decision is stored and acted on: the status that records how the registry writes and the training
workload patches went. Pure: the shell hands in the results, this returns the status to store and the Events."""

from __future__ import annotations

from datetime import datetime

from modelratchet.api.rollout import ModelRolloutSpec, ModelRolloutStatus
from modelratchet.registry import core as registry

from . import conditions as cond
from . import training
from .machine import ts
from .types import EmitEvent


def record_follow_up(
    spec: ModelRolloutSpec,
    status: ModelRolloutStatus,
    *,
    writes: list[registry.WriteResult],
    workloads: list[training.WorkloadResult],
    seen: registry.RegistryObservation | None,
    now: datetime,
    generation: int,
) -> tuple[ModelRolloutStatus, list[EmitEvent]]:
    now_s = ts(now)
    out = registry.apply_results(status, writes, now_s)
    out.training, events = training.apply_results(out.training, workloads)
    conditions = list(out.conditions or [])

    def put(type_: str, state: tuple[cond.ConditionStatus, str, str] | None) -> None:
        nonlocal conditions
        if state is not None:
            conditions = cond.set_condition(conditions, type_, *state, now=now_s, generation=generation)

    if spec.source is not None:
        before = cond.get_condition(conditions, cond.REGISTRY_SYNCED)
        put(cond.REGISTRY_SYNCED, registry.synced_condition(out, seen))
        after = cond.get_condition(conditions, cond.REGISTRY_SYNCED)
        if writes and after is not None and after.status == "True" and before is not None and before.status != "True":
            events.append(EmitEvent("Normal", "RegistrySynced", after.message))
        elif (
            writes
            and after is not None
            and after.reason == "WriteFailed"
            and (before is None or before.reason != "WriteFailed")
        ):
            events.append(EmitEvent("Warning", "RegistryWriteFailed", after.message))
    had = cond.get_condition(conditions, cond.TRAINING_SUSPENDED) is not None
    put(cond.TRAINING_SUSPENDED, training.condition(out.training, resumed_before=had))
    out.conditions = conditions or None
    return out, events
