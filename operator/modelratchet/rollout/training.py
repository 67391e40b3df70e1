"""Training paused after a rollback: which workloads to suspend or resume, and what their results mean.

Pure. The machine records the intent (status.training) when it rolls back, resumes on request or promotion;
the shell patches the workloads named by ``due`` and hands the outcomes to ``apply_results``, whose status it
stores. A workload that was already suspended stays suspended when training resumes: it was not ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelratchet.api.rollout import ModelRolloutSpec, SuspendedWorkload, TrainingStatus, WorkloadReference

from .types import EmitEvent

SUSPENDED = "TrainingSuspended"


@dataclass(frozen=True)
class WorkloadChange:
    """Set one workload's suspend field."""

    ref: WorkloadReference
    suspend: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.ref.api_version, self.ref.kind, self.ref.name)


@dataclass(frozen=True)
class WorkloadResult:
    """What the shell saw when it applied a WorkloadChange."""

    key: tuple[str, str, str]
    ok: bool
    was_suspended: bool = False  # before a suspend: it already was
    message: str | None = None


def suspend_field(ref: WorkloadReference) -> tuple[str, ...]:
    """The path of the boolean that suspends the workload: Kubeflow's training jobs keep it in runPolicy."""
    group = ref.api_version.split("/", 1)[0]
    return ("spec", "runPolicy", "suspend") if group == "kubeflow.org" else ("spec", "suspend")


def resource_of(ref: WorkloadReference) -> tuple[str, str, str]:
    """(group, version, resource): the resource is the lower-cased kind + s, as the admission policy checks."""
    group, version = ref.api_version.split("/", 1)
    return group, version, ref.kind.lower() + "s"


def _key(w: SuspendedWorkload | WorkloadReference) -> tuple[str, str, str]:
    return (w.api_version, w.kind, w.name)


def on_rollback(
    spec: ModelRolloutSpec,
    current: TrainingStatus | None,
    checkpoint: str,
    reason: str,
    history_id: int | None,
    now: str,
) -> TrainingStatus | None:
    """The training status after rolling ``checkpoint`` back: every listed workload to be suspended."""
    refs = spec.on_rollback.suspend if spec.on_rollback else []
    if not refs:
        return current
    kept = {_key(w): w for w in current.workloads} if current is not None and current.state == "Suspended" else {}
    workloads = [
        kept.get(_key(r)) or SuspendedWorkload(api_version=r.api_version, kind=r.kind, name=r.name, state="pending")
        for r in refs
    ]
    # Still suspended from an earlier rollback but no longer listed: kept, so a resume still resumes it.
    listed = {_key(r) for r in refs}
    workloads += [w for k, w in kept.items() if k not in listed and w.state == "suspended"]
    return TrainingStatus(
        state="Suspended",
        checkpoint=checkpoint,
        reason=reason[:1000],
        history_id=history_id,
        suspended_at=now,
        workloads=workloads[:20],
    )


def resume(current: TrainingStatus | None) -> TrainingStatus | None:
    """Training asked to resume (by a person, or a promotion with resumeOn: promotion)."""
    if current is None:
        return None
    workloads = [w for w in current.workloads if w.state == "suspended"]
    if not workloads:
        return None  # nothing of ours is suspended: nothing to undo
    return current.model_copy(update={"state": "Resuming", "workloads": workloads})


def describe(refs: list[WorkloadReference]) -> str:
    return ", ".join(r.describe() for r in refs)


def due(current: TrainingStatus | None) -> list[WorkloadChange]:
    """The patches still to make: suspend what is pending or failed, resume what we suspended."""
    if current is None:
        return []
    out = []
    for w in current.workloads:
        ref = WorkloadReference(api_version=w.api_version, kind=w.kind, name=w.name)
        if current.state == "Suspended" and w.state in ("pending", "failed"):
            out.append(WorkloadChange(ref, True))
        elif current.state == "Resuming" and w.state in ("suspended", "failed"):
            out.append(WorkloadChange(ref, False))
    return out


def apply_results(
    current: TrainingStatus | None, results: list[WorkloadResult]
) -> tuple[TrainingStatus | None, list[EmitEvent]]:
    """The training status after the shell applied ``due``'s changes, and the Events that announce it."""
    if current is None or not results:
        return current, []
    by_key = {r.key: r for r in results}
    events: list[EmitEvent] = []
    workloads: list[SuspendedWorkload] = []
    for w in current.workloads:
        r = by_key.get(_key(w))
        name = f"{w.kind}/{w.name}"
        if r is None:
            workloads.append(w)
        elif not r.ok:
            if w.state != "failed" or w.message != r.message:
                verb = "suspend" if current.state == "Suspended" else "resume"
                events.append(EmitEvent("Warning", "TrainingSuspendFailed", f"could not {verb} {name}: {r.message}"))
            workloads.append(w.model_copy(update={"state": "failed", "message": r.message}))
        elif current.state == "Resuming":
            events.append(EmitEvent("Normal", "TrainingResumed", f"resumed {name}"))
        else:
            state = "alreadySuspended" if r.was_suspended else "suspended"
            why = f"after rolling back {current.checkpoint}"
            text = f"{name} was already suspended; left so {why}" if r.was_suspended else f"suspended {name} {why}"
            events.append(EmitEvent("Normal", "TrainingSuspended", text))
            workloads.append(w.model_copy(update={"state": state, "message": None}))
    if current.state == "Resuming" and not workloads:
        return None, events
    return current.model_copy(update={"workloads": workloads}), events


def condition(
    current: TrainingStatus | None, resumed_before: bool
) -> tuple[Literal["True", "False", "Unknown"], str, str] | None:
    """TrainingSuspended as (status, reason, message); None when there never was anything to say."""
    if current is None:
        return ("False", "Resumed", "training runs") if resumed_before else None
    failed = [w for w in current.workloads if w.state == "failed"]
    if failed:
        text = "; ".join(f"{w.kind}/{w.name}: {w.message}" for w in failed)
        verb = "suspend" if current.state == "Suspended" else "resume"
        return "False", "SuspendFailed" if verb == "suspend" else "ResumeFailed", f"could not {verb} {text}"[:1000]
    if current.state == "Resuming":
        return "True", "Resuming", "resuming " + ", ".join(f"{w.kind}/{w.name}" for w in current.workloads)
    if any(w.state == "pending" for w in current.workloads):
        return "Unknown", "Suspending", "suspending " + ", ".join(f"{w.kind}/{w.name}" for w in current.workloads)
    names = ", ".join(f"{w.kind}/{w.name}" for w in current.workloads)
    return (
        "True",
        "RolledBack",
        f"{names} suspended after rolling back {current.checkpoint}; `modelratchet resume-training` resumes them",
    )
