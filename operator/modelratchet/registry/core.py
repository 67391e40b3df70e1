"""Pure registry decisions: which checkpoint the alias names, which writes a verdict records, and what the
results of those writes do to the status. No I/O: the shell resolves and writes, this decides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from modelratchet.api.rollout import (
    HistoryEntry,
    KnownVersion,
    ModelRolloutSpec,
    ModelRolloutStatus,
    RegistryStatus,
    RegistryTag,
    RegistryVersion,
    RegistryWrite,
    RegistryWriteBack,
)

KNOWN_LIMIT = 20
WRITES_LIMIT = 20
DONE_KEPT = 5  # written verdicts kept in status for people to see; pending ones are never dropped for them
TAG_VALUE_LIMIT = 4000  # MLflow 2.x accepts 5,000 characters per tag value, 3.x 8,000
TAG_PREFIX = "modelratchet."
SYNCED = "RegistrySynced"
RETRY_FIRST = 10.0  # seconds after a failed write before it is tried again; doubling up to RETRY_MAX
RETRY_MAX = 300.0


@dataclass(frozen=True)
class ResolvedVersion:
    """What the registry said the alias names."""

    version: str
    checkpoint: str  # the version's storage location
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistryObservation:
    """One resolution of spec.source: the version, or why there is none (message and CamelCase reason)."""

    model: str
    alias: str
    resolved: ResolvedVersion | None
    error: str | None = None
    reason: str = "RegistryUnavailable"


@dataclass(frozen=True)
class WriteResult:
    """What the shell got back from writing one recorded verdict."""

    id: int
    error: str | None = None  # None: every tag and the alias are written
    reason: str | None = None  # the error's condition reason, e.g. RegistryUnavailable


def write_back(spec: ModelRolloutSpec) -> RegistryWriteBack | None:
    """The write-back settings, or None when nothing is to be written."""
    if spec.source is None:
        return None
    wb = spec.registry or RegistryWriteBack()
    return wb if wb.enabled else None


def desired_checkpoint(
    spec: ModelRolloutSpec, status: ModelRolloutStatus, seen: RegistryObservation | None
) -> tuple[str | None, str | None, str]:
    """The checkpoint the rollout should move to, and the registry problem to report (message, reason).

    A registry that cannot answer (down, alias deleted) keeps the last resolved candidate: a rollout under way
    carries on and rolls back as it would, and nothing new starts until the registry answers again.
    """
    if spec.source is None:
        return spec.checkpoint, None, ""
    mlflow = spec.source.mlflow
    if seen is not None and seen.resolved is not None:
        return seen.resolved.checkpoint, None, ""
    problem = seen.error if seen is not None else None
    reason = seen.reason if seen is not None else "RegistryUnavailable"
    last = status.registry.candidate if status.registry else None
    if last is not None and (last.model, last.alias) == (mlflow.model, mlflow.alias):
        return last.checkpoint, problem, reason
    where = f"MLflow model {mlflow.model!r} alias {mlflow.alias!r}"
    return None, f"{where}: {problem or 'not resolved yet'}", reason


def note_resolution(status: RegistryStatus | None, seen: RegistryObservation, now: str) -> RegistryStatus:
    """The registry status after a successful resolution: the candidate and which checkpoint it is."""
    out = (status or RegistryStatus()).model_copy(deep=True)
    if seen.resolved is None:
        return out
    r = seen.resolved
    previous = out.candidate
    same = previous is not None and (previous.model, previous.alias, previous.version, previous.checkpoint) == (
        seen.model,
        seen.alias,
        r.version,
        r.checkpoint,
    )
    out.candidate = RegistryVersion(
        model=seen.model,
        alias=seen.alias,
        version=r.version,
        checkpoint=r.checkpoint,
        aliases=sorted(r.aliases)[:20] or None,
        resolved_at=previous.resolved_at if same and previous is not None else now,
    )
    known = [k for k in out.known or [] if k.checkpoint != r.checkpoint]
    out.known = [KnownVersion(checkpoint=r.checkpoint, version=r.version), *known][:KNOWN_LIMIT]
    return out


def version_of(status: ModelRolloutStatus, checkpoint: str | None) -> str | None:
    """The registry version a checkpoint was resolved from, when known."""
    if checkpoint is None or status.registry is None:
        return None
    return next((k.version for k in status.registry.known or [] if k.checkpoint == checkpoint), None)


def _metrics_tag(entry: HistoryEntry | None) -> str | None:
    """The last analysis' metrics against baseline, as compact JSON within MLflow's tag limit."""
    if entry is None or not entry.metrics:
        return None
    rows = [
        {
            k: v
            for k, v in {
                "metric": m.metric,
                "value": m.value,
                "baseline": m.baseline,
                "delta": m.delta,
                "classification": m.classification,
                "outcome": m.outcome,
            }.items()
            if v is not None
        }
        for m in entry.metrics
    ]
    while rows:
        text = json.dumps(rows, separators=(",", ":"), sort_keys=True)
        if len(text) <= TAG_VALUE_LIMIT:
            return text
        rows = rows[:-1]  # the first metrics are kept whole rather than every one cut
    return None


def _cut(text: str) -> str:
    return text if len(text) <= TAG_VALUE_LIMIT else text[: TAG_VALUE_LIMIT - 1] + "…"


def record_verdict(
    spec: ModelRolloutSpec,
    status: ModelRolloutStatus,
    verdict: Literal["promoted", "rolledBack", "reverted"],
    checkpoint: str,
    message: str,
    now: str,
    restore: str | None = None,
) -> None:
    """Record in ``status`` the registry writes a verdict on ``checkpoint`` asks for (before any is made).

    promoted: the promoted alias moves to its version; rolledBack: the version is tagged rejected and the alias
    stays; reverted: tagged rejected, and the alias moves back to the version of ``restore`` (serving again).
    Every verdict tags the version with the verdict, the reason and the last analysis' metrics.
    """
    wb = write_back(spec)
    version = version_of(status, checkpoint)
    if wb is None or version is None:
        return
    reg = (status.registry or RegistryStatus()).model_copy(deep=True)
    entry = next((h for h in status.history or [] if h.checkpoint == checkpoint), None)
    # Few tags: each is one request to the registry (MLflow has no batch call for model version tags).
    tags = {
        f"{TAG_PREFIX}verdict": verdict,
        f"{TAG_PREFIX}reason": _cut(message),
        f"{TAG_PREFIX}decidedAt": now,
    }
    if entry is not None:
        tags[f"{TAG_PREFIX}historyId"] = str(entry.id)
    metrics = _metrics_tag(entry)
    if metrics is not None:
        tags[f"{TAG_PREFIX}metrics"] = metrics
    if verdict != "promoted":
        tags[wb.rejected_tag] = "true"
    writes = []
    next_id = reg.last_write_id or 0
    next_id += 1
    writes.append(
        RegistryWrite(
            id=next_id,
            version=version,
            verdict=verdict,
            set_alias=wb.promoted_alias if verdict == "promoted" else None,
            tags=[RegistryTag(key=k, value=v) for k, v in tags.items()],
            recorded_at=now,
        )
    )
    restored = version_of(status, restore)
    if verdict == "reverted" and restored is not None:
        next_id += 1
        writes.append(
            RegistryWrite(
                id=next_id, version=restored, verdict="restored", set_alias=wb.promoted_alias, recorded_at=now
            )
        )
    reg.last_write_id = next_id
    reg.writes = _bounded([*reversed(writes), *(reg.writes or [])])
    status.registry = reg


def _bounded(writes: list[RegistryWrite]) -> list[RegistryWrite]:
    """Newest first: every pending write (up to the limit), and the newest few written ones."""
    pending = [w for w in writes if w.written_at is None][:WRITES_LIMIT]
    done = [w for w in writes if w.written_at is not None][: max(0, min(DONE_KEPT, WRITES_LIMIT - len(pending)))]
    keep = {w.id for w in pending} | {w.id for w in done}
    return [w for w in writes if w.id in keep]


def retry_at(write: RegistryWrite, answering: bool = False) -> datetime | None:
    """When a write that failed may be tried again: 10 s after the first failure, doubling up to 5 minutes; 10 s
    after the last one when it failed for want of an answer and the registry ``answering`` again."""
    if write.last_attempt_at is None or not write.attempts:
        return None
    last = datetime.fromisoformat(write.last_attempt_at.replace("Z", "+00:00")).astimezone(UTC)
    if answering and write.last_error_reason == "RegistryUnavailable":
        return last + timedelta(seconds=RETRY_FIRST)
    return last + timedelta(seconds=min(RETRY_MAX, RETRY_FIRST * 2 ** min(write.attempts - 1, 10)))


def due(status: ModelRolloutStatus, now: datetime | None = None, answering: bool = False) -> list[RegistryWrite]:
    """Recorded writes not yet made, oldest first (alias moves must land in the order they were decided).

    With ``now``: only if the first of them is not waiting out its backoff (a failing registry is not asked in a
    loop: every attempt changes the status, and a status change wakes the reconcile again). ``answering``: the
    alias was read this look, so a write that failed while the registry was away catches up soon."""
    writes = status.registry.writes if status.registry else None
    pending = sorted((w for w in writes or [] if w.written_at is None), key=lambda w: w.id)
    if now is not None and pending:
        again = retry_at(pending[0], answering)
        if again is not None and now < again:
            return []
    return pending


def apply_results(status: ModelRolloutStatus, results: list[WriteResult], now: str) -> ModelRolloutStatus:
    """The status once the shell tried ``results``' writes: written ones dated, failed ones counted."""
    out = status.model_copy(deep=True)
    if out.registry is None or not results:
        return out
    by_id = {r.id: r for r in results}
    writes = []
    for w in out.registry.writes or []:
        r = by_id.get(w.id)
        if r is not None and w.written_at is None:
            attempt = {"attempts": (w.attempts or 0) + 1, "last_attempt_at": now}
            if r.error is None:
                w = w.model_copy(update={"written_at": now, "last_error": None, "last_error_reason": None, **attempt})
            else:
                w = w.model_copy(update={"last_error": r.error, "last_error_reason": r.reason, **attempt})
        writes.append(w)
    out.registry.writes = _bounded(writes)
    return out


ConditionTriple = tuple[Literal["True", "False", "Unknown"], str, str]


def synced_condition(status: ModelRolloutStatus, seen: RegistryObservation | None) -> ConditionTriple:
    """RegistrySynced as (status, reason, message): False while the alias cannot be read or a write is pending."""
    pending = due(status)
    failing = [w for w in pending if w.last_error]
    if seen is not None and seen.error is not None:
        more = f"; {len(pending)} verdict write(s) pending" if pending else ""
        return "False", seen.reason, seen.error + more
    if failing:
        w = failing[-1]
        return (
            "False",
            "WriteFailed",
            f"{len(pending)} verdict write(s) pending; writing {w.verdict} of version {w.version} failed "
            f"({w.attempts} attempt(s)): {w.last_error}",
        )
    if pending:
        return "Unknown", "WritePending", f"{len(pending)} verdict write(s) pending"
    cand = status.registry.candidate if status.registry else None
    if cand is None:
        return "Unknown", "NotResolved", "the alias has not been resolved yet"
    return "True", "Synced", f"{cand.model}@{cand.alias} is version {cand.version}; every verdict is written"
