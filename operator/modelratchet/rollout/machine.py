"""The rollout state machine: (spec, status, observations, now) -> (new status, announcements).

Pure: no I/O. Every reconcile is level-based — it compares what was observed with what the status says and
returns the next status. It never changes the world itself: the shell records the new status first, then drives
the Deployments toward what the stored status says (``plan.plan``), so a decision that was not stored is never
acted on, and every action can be repeated after a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from modelratchet.api.common import parse_duration
from modelratchet.api.rollout import HistoryEntry, MetricResult, ModelRolloutSpec, ModelRolloutStatus, Step
from modelratchet.registry import core as registry

from . import conditions as cond
from . import traffic, training
from .plan import unvalidated_target
from .types import (
    AnalysisReport,
    AnalysisRequest,
    Announcement,
    EmitEvent,
    Notify,
    World,
)

LAST_GOOD_LIMIT = 10
REJECTED_LIMIT = 50
# Re-check soon while something is moving; otherwise a slow heartbeat is enough (watch events wake us too).
BUSY_REQUEUE = 1.0
IDLE_REQUEUE = 30.0
ERROR_REQUEUE_MAX = 60.0


@dataclass
class Decision:
    status: ModelRolloutStatus
    # Events and notifications, sent once the status is stored. Changes to the world are not decided here:
    # they follow from the stored status (plan.plan).
    actions: list[Announcement] = field(default_factory=list)
    requeue_after: float = IDLE_REQUEUE


def _utc(t: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def ts(t: datetime) -> str:
    t = _utc(t)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t.microsecond == 0 else t.isoformat().replace("+00:00", "Z")


def parse_ts(text: str | None) -> datetime | None:
    return None if not text else _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _secs(d: str | None) -> float:
    return 0.0 if not d else parse_duration(d)


class _Ctx:
    """Mutable working copy of the status plus the actions gathered so far."""

    def __init__(self, spec: ModelRolloutSpec, status: ModelRolloutStatus, generation: int, now: datetime):
        self.spec = spec
        self.s = status.model_copy(deep=True)
        self.stored = list(status.conditions or [])  # as last written: transitions are measured against these
        self.stored_stable = status.stable_checkpoint
        self.generation = generation
        self.now = _utc(now)
        self.now_s = ts(self.now)
        self.actions: list[Announcement] = []
        self.requeue = IDLE_REQUEUE

    def condition(self, type_: str, status: cond.ConditionStatus, reason: str, message: str) -> None:
        self.s.conditions = cond.set_condition(
            self.s.conditions or [], type_, status, reason, message, now=self.now_s, generation=self.generation
        )
        # One reconcile may flip a condition and flip it back (a pause ends and the next step pauses again): what
        # is written has the stored status then, so its lastTransitionTime must not move.
        stored = cond.get_condition(self.stored, type_)
        if stored is not None and stored.status == status:
            self.s.conditions = [
                c.model_copy(update={"last_transition_time": stored.last_transition_time}) if c.type == type_ else c
                for c in self.s.conditions
            ]

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(EmitEvent("Warning" if warning else "Normal", reason, message))

    def soon(self, seconds: float = BUSY_REQUEUE) -> None:
        self.requeue = min(self.requeue, max(seconds, 0.2))


def _reset_rollout_counters(s: ModelRolloutStatus) -> None:
    s.analysis_count = 0
    s.looks = 0
    s.failed_analyses = 0
    s.inconclusive_analyses = 0
    s.consecutive_warnings = 0
    s.first_failure_at = None


def _clear_traffic(s: ModelRolloutStatus) -> None:
    """The candidate gets nothing: the router (or the pod split) goes back to stable only."""
    s.canary_weight = 0
    s.header_route = None
    s.mirror_percent = None
    s.serving_since = None


def _push_front(items: list[str] | None, value: str, limit: int) -> list[str]:
    rest = [x for x in items or [] if x != value]
    return [value, *rest][:limit]


# ---------------------------------------------------------------------------------------------- analysis


def analysis_due(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> AnalysisRequest | None:
    """Whether an analysis should run now, and of what. The shell measures and passes the report back."""
    now = _utc(now)
    interval = _secs(spec.analysis.interval)
    last = parse_ts(status.last_analysis_at)
    if status.phase in ("Progressing", "Paused") and status.canary_checkpoint and status.current_step is not None:
        if status.current_step >= len(spec.steps):
            return None
        step = spec.steps[status.current_step]
        if step.analyze is None:
            return None
        started = parse_ts(status.step_started_at) or now
        reference = last if last and last >= started else started
        if now < reference + timedelta(seconds=interval):
            return None
        # The window starts when the candidate began serving at the current share, never before it served.
        rollout_start = parse_ts(status.serving_since or status.rollout_started_at) or started
        duration = _secs(step.analyze.duration)
        step_look = (status.analysis_count or 0) + 1
        share, ahead = _window_budget(spec, status.current_step, max(0.0, (started - now).total_seconds() + duration))
        return AnalysisRequest(
            stage="canary",
            checkpoint=status.canary_checkpoint,
            stable_checkpoint=status.stable_checkpoint,
            window_seconds=max((now - rollout_start).total_seconds(), interval),
            interval_seconds=interval,
            look=(status.looks or 0) + 1,
            max_looks=sum(_planned_looks(_secs(x.analyze.duration), interval) for x in spec.steps if x.analyze),
            final=step_look >= _planned_looks(duration, interval),
            ahead_seconds=ahead,
            share=share,
        )
    if status.phase == "Promoted" and status.post_promotion_until and status.stable_checkpoint:
        until = parse_ts(status.post_promotion_until)
        promoted = parse_ts(status.promoted_at) or now
        reference = last if last and last >= promoted else promoted
        due = reference + timedelta(seconds=interval)
        # The look scheduled at the watch's end is still taken (it is the judges' final look), none after it.
        if until is None or due > until or now < due:
            return None
        watch = _secs(spec.post_promotion.watch if spec.post_promotion else None)
        look = (status.looks or 0) + 1
        return AnalysisRequest(
            stage="postPromotion",
            checkpoint=status.stable_checkpoint,
            stable_checkpoint=status.previous_checkpoint,
            window_seconds=max((now - promoted).total_seconds(), interval),
            interval_seconds=interval,
            look=look,
            max_looks=_planned_looks(watch, interval),
            final=look >= _planned_looks(watch, interval),
            ahead_seconds=max(0.0, (until - now).total_seconds()),
            recorded_baselines=_recorded_baselines(status),
        )
    return None


def _planned_looks(duration: float, interval: float) -> int:
    """Looks the schedule makes in ``duration``: one every ``interval``, the last at the end if it falls there.
    A sequential judge spends its error budget over exactly these, so overestimating them means its final,
    deciding look never comes."""
    if interval <= 0:
        return 1
    return max(1, math.floor(duration / interval + 1e-9))


def _window_budget(spec: ModelRolloutSpec, current: int, left: float) -> tuple[tuple[float, float], float]:
    """The current window's share of the rollout's error budget, and the data still planned in it.

    Each traffic step starts a new window (analysis_due), so the judges test each window apart; their
    false-rollback budgets must add up to one rollout's. A window's share is the information planned in it
    up to its last look: its analyze and timed pause steps' durations times c s / (c + s), with c and s the
    candidate's and the stable checkpoint's shares of the requests (a two-sample comparison learns in
    proportion to n_candidate n_stable / n; a mirror gives the candidate copies), over the whole rollout's.
    ``left`` is what remains of the current step.
    """

    def seconds(step: Step) -> float:
        return _secs(step.analyze.duration if step.analyze else step.pause.duration if step.pause else None)

    def rate(weight: int, mirror: int) -> float:
        c = weight / 100 + mirror / 100 * (1 - weight / 100)
        s = 1 - weight / 100
        return max(c * s / (c + s) if c + s > 0 else 0.0, 1e-4)  # a header route's share is unknown: not zero

    windows: list[tuple[int, int, float]] = []  # (first step, last analyze step, planned information)
    weight, mirror, start, info, last = 0, 0, 0, 0.0, -1
    for i, step in enumerate([*spec.steps, Step(set_weight=0)]):  # a closing traffic step ends the last window
        if step.shifts_traffic:
            if last >= start:
                windows.append((start, last, info))
            weight = step.set_weight if step.set_weight is not None else weight
            mirror = (step.set_mirror.percent or 0) if step.set_mirror is not None else mirror
            start, info, last = i + 1, 0.0, -1
            continue
        if step.analyze is not None:
            info += sum(seconds(x) for x in spec.steps[max(start, last + 1) : i + 1]) * rate(weight, mirror)
            last = i
    total = sum(w[2] for w in windows)
    before = 0.0
    for first, last, planned in windows:
        if first <= current <= last and total > 0:
            ahead = left + sum(seconds(x) for x in spec.steps[current + 1 : last + 1])
            return (before / total, min(1.0, (before + planned) / total)), ahead
        before += planned
    return (0.0, 1.0), left


def _next_analysis_in(spec: ModelRolloutSpec, status: ModelRolloutStatus, since: datetime, now: datetime) -> float:
    """Seconds until analysis_due next asks for an analysis (<= 0: due now)."""
    last = parse_ts(status.last_analysis_at)
    reference = last if last and last >= since else since
    return (reference + timedelta(seconds=_secs(spec.analysis.interval)) - now).total_seconds()


def _recorded_baselines(status: ModelRolloutStatus) -> dict[str, MetricResult]:
    """What the stable checkpoint showed during the last canary analysis of this checkpoint: values and counts."""
    for entry in status.history or []:
        if entry.stage == "canary" and entry.checkpoint == status.stable_checkpoint:
            return {m.metric: m for m in entry.metrics if m.baseline is not None or m.baseline_evidence is not None}
    return {}


def _window_start(s: ModelRolloutStatus, stage: str) -> str | None:
    """Where the window judged by an analysis began (analysis_due measures it the same way)."""
    if stage == "postPromotion":
        return s.promoted_at
    return s.serving_since or s.rollout_started_at


def _record(ctx: _Ctx, report: AnalysisReport, checkpoint: str, stage: str, step: int | None) -> HistoryEntry:
    s = ctx.s
    entry = HistoryEntry(
        id=max(s.last_history_id or 0, *(h.id for h in s.history or []), 0) + 1,
        time=ctx.now_s,
        checkpoint=checkpoint,
        step=step,
        stage="postPromotion" if stage == "postPromotion" else "canary",
        verdict=report.verdict,
        message=report.summary,
        window_start=_window_start(ctx.s, stage),
        metrics=report.metrics,
    )
    s.last_history_id = entry.id
    s.history = [entry, *(s.history or [])][: ctx.spec.history_limit]
    s.last_analysis_at = ctx.now_s
    s.last_verdict = report.verdict
    s.analysis_count = (s.analysis_count or 0) + 1
    s.looks = (s.looks or 0) + 1
    if report.problems:
        ctx.condition(cond.ANALYSIS, "False", "QueryError", "; ".join(report.problems)[:1000])
    elif report.verdict in ("passed", "warning"):
        ctx.condition(cond.ANALYSIS, "True", report.verdict.capitalize(), report.summary)
    elif report.verdict == "failed":
        ctx.condition(cond.ANALYSIS, "False", "Failed", report.summary)
    else:
        ctx.condition(cond.ANALYSIS, "False", "Inconclusive", report.summary)
    ctx.actions.append(Notify("analysis", f"analysis #{entry.id} of {checkpoint}: {report.verdict}", checkpoint))
    return entry


# ---------------------------------------------------------------------------------------------- entry point


def reconcile(
    spec: ModelRolloutSpec,
    status: ModelRolloutStatus | None,
    *,
    generation: int,
    world: World,
    now: datetime,
    gate_user: str | None = None,
) -> Decision:
    ctx = _Ctx(spec, status or ModelRolloutStatus(), generation, now)
    s = ctx.s
    s.observed_generation = generation
    if s.history and len(s.history) > spec.history_limit:
        s.history = s.history[: spec.history_limit]  # historyLimit was lowered
    if spec.source is not None:
        # The registry's alias stands in for spec.checkpoint; an outage keeps the last version it named.
        desired, problem, reason = registry.desired_checkpoint(spec, s, world.registry)
        if world.registry is not None and world.registry.resolved is not None:
            s.registry = registry.note_resolution(s.registry, world.registry, ctx.now_s)
        if desired is None:
            world = replace(world, baseline_error=problem, baseline_reason=reason)
        else:
            ctx.spec = spec = spec.model_copy(update={"checkpoint": desired})
    broken = _references_broken(ctx, world)
    _registry_and_training_conditions(ctx, world)
    if broken:
        return Decision(ctx.s, ctx.actions, ctx.requeue)
    assert world.target is not None

    if s.stable_checkpoint is None and s.canary_checkpoint is None and s.phase in (None, "Idle", "Failed"):
        # First sight: whatever the target serves now is the stable, known-good checkpoint. (A target without a
        # checkpoint yet leaves it None: the first rollout then starts from nothing, and must not restart each tick.)
        s.stable_checkpoint = world.target.checkpoint
        if world.target.checkpoint:
            s.last_good_checkpoints = _push_front(s.last_good_checkpoints, world.target.checkpoint, LAST_GOOD_LIMIT)
        s.phase = "Idle"

    _apply_gate(ctx, world)

    if s.phase in ("Progressing", "Paused") and s.canary_checkpoint:
        _progress(ctx, world)
    elif s.phase == "Promoted" and s.post_promotion_until:
        _watch_after_promotion(ctx, world)
        if s.phase == "Promoted" and not s.post_promotion_until:
            _maybe_start(ctx, world)
    else:
        _maybe_start(ctx, world)
    _guard_target(ctx)
    _registry_and_training_conditions(ctx, world)
    return Decision(ctx.s, ctx.actions, ctx.requeue)


def _registry_and_training_conditions(ctx: _Ctx, world: World) -> None:
    """RegistrySynced (with spec.source) and TrainingSuspended (once training was suspended) as status says."""
    if ctx.spec.source is not None:
        ctx.condition(cond.REGISTRY_SYNCED, *registry.synced_condition(ctx.s, world.registry))
        if registry.due(ctx.s):
            ctx.soon(10.0)  # pending verdict writes are retried while the registry is away
    had = cond.get_condition(ctx.s.conditions, cond.TRAINING_SUSPENDED) is not None
    training_state = training.condition(ctx.s.training, resumed_before=had)
    if training_state is not None:
        ctx.condition(cond.TRAINING_SUSPENDED, *training_state)
    if training.due(ctx.s.training):
        ctx.soon(10.0)


def _suspend_training(ctx: _Ctx, checkpoint: str, reason: str) -> str:
    """Record the training to suspend after rejecting ``checkpoint``; the words to add to the announcement."""
    s, refs = ctx.s, (ctx.spec.on_rollback.suspend if ctx.spec.on_rollback else [])
    if not refs:
        return ""
    entry = next((h for h in s.history or [] if h.checkpoint == checkpoint), None)
    s.training = training.on_rollback(ctx.spec, s.training, checkpoint, reason, entry.id if entry else None, ctx.now_s)
    return f"; training suspended: {training.describe(refs)}"


def _guard_target(ctx: _Ctx) -> None:
    """The target only ever receives a checkpoint this rollout validated (or served when it began); a status
    that says otherwise is reported, and plan.plan refuses to write it."""
    refusal = unvalidated_target(ctx.spec, ctx.s)
    degraded = cond.get_condition(ctx.s.conditions, cond.DEGRADED)
    if refusal is not None:
        if degraded is None or degraded.status != "True" or degraded.reason != "UnvalidatedCheckpoint":
            ctx.event("UnvalidatedCheckpoint", refusal, warning=True)
        ctx.condition(cond.DEGRADED, "True", "UnvalidatedCheckpoint", refusal)
    elif degraded is not None and degraded.status == "True":
        # A reconcile that completes cleanly ends an earlier degradation (a refusal or a reconcile error).
        ctx.condition(cond.DEGRADED, "False", "Healthy", "")


def _references_broken(ctx: _Ctx, world: World) -> bool:
    problem, reason = None, ""
    if world.target is None:
        problem, reason = f"Deployment {ctx.spec.target_ref.name!r} not found", "TargetNotFound"
    elif world.target.error:
        problem, reason = world.target.error, world.target.error_reason
    elif world.baseline_error:
        problem, reason = world.baseline_error, world.baseline_reason or "BaselineNotFound"  # never an empty reason
    previous = cond.get_condition(ctx.s.conditions, cond.READY)
    if problem is None:
        if previous is not None and previous.status == "False":
            ctx.event("ReferencesResolved", f"{previous.reason} resolved; resuming")
            if ctx.s.message == previous.message:
                # Waiting states set their message only when entered; put theirs back instead of the stale problem.
                ctx.s.message = _phase_message(ctx.s)
        ctx.condition(cond.READY, "True", "ReferencesResolved", "target, checkpoint field and baseline resolve")
        return False
    if previous is None or previous.status != "False" or previous.reason != reason:
        ctx.event(reason, problem, warning=True)
    ctx.condition(cond.READY, "False", reason, problem)
    ctx.s.message = problem
    # Back off while broken; the watch wakes the operator as soon as the object or its references change.
    since = parse_ts(previous.last_transition_time) if previous and previous.status == "False" else ctx.now
    broken_for = (ctx.now - (since or ctx.now)).total_seconds()
    ctx.requeue = min(ERROR_REQUEUE_MAX, max(2.0, broken_for / 2))
    return True


def _phase_message(s: ModelRolloutStatus) -> str | None:
    type_ = {
        "Progressing": cond.PROGRESSING,
        "Paused": cond.PAUSED,
        "Promoted": cond.PROMOTED,
        "RolledBack": cond.ROLLED_BACK,
    }.get(s.phase or "")
    c = cond.get_condition(s.conditions, type_) if type_ else None
    return c.message if c and c.message else None


# ---------------------------------------------------------------------------------------------- gates


def _apply_gate(ctx: _Ctx, world: World) -> None:
    s = ctx.s
    gate = s.gate
    if gate is None:
        return
    s.gate = None
    who = f" by {gate.requested_by}" if gate.requested_by else ""
    if gate.action == "resumeTraining":
        if s.training is None:
            ctx.event("GateIgnored", "resume-training ignored: no training is suspended")
            return
        names = ", ".join(f"{w.kind}/{w.name}" for w in s.training.workloads)
        s.training = training.resume(s.training)
        ctx.event("TrainingResumeRequested", f"resuming training ({names}){who}")
        ctx.soon()
        return
    if gate.action == "retry":
        target = gate.checkpoint or ctx.spec.checkpoint
        s.rejected_checkpoints = [c for c in s.rejected_checkpoints or [] if c != target] or None
        s.rolled_back_at = None  # an explicit retry skips the cooldown
        ctx.event("RetryRequested", f"retry of {target} requested{who}")
        ctx.soon()
        return
    running = s.phase in ("Progressing", "Paused") and s.canary_checkpoint is not None
    watching = s.phase == "Promoted" and bool(s.post_promotion_until)
    if gate.checkpoint and running and gate.checkpoint != s.canary_checkpoint:
        ctx.event("GateIgnored", f"{gate.action} for {gate.checkpoint} ignored: {s.canary_checkpoint} is rolling out")
        return
    if gate.checkpoint and watching and gate.checkpoint != s.stable_checkpoint:
        ctx.event("GateIgnored", f"{gate.action} for {gate.checkpoint} ignored: {s.stable_checkpoint} is watched")
        return
    if gate.action == "abort":
        reason = f"aborted{who}" + (f": {gate.reason}" if gate.reason else "")
        if running:
            _rollback(ctx, "Aborted", reason)
        elif watching:
            _revert(ctx, "Aborted", reason)
        else:
            ctx.event("GateIgnored", "abort ignored: no rollout in progress")
        return
    # promote: skip the current step (a pause, an analysis, a wait for data or a blocked warning).
    if running and s.current_step is not None and s.current_step < len(ctx.spec.steps):
        ctx.event("PromoteRequested", f"step {_n(ctx)} skipped{who}")
        _advance(ctx, world)
    else:
        ctx.event("GateIgnored", "promote ignored: no step to skip")


# ---------------------------------------------------------------------------------------------- start


def _maybe_start(ctx: _Ctx, world: World) -> None:
    s, spec = ctx.s, ctx.spec
    assert world.target is not None
    # A canary left over (the operator died mid-rollback) goes, and the stable checkpoint is put back into the
    # target (drift, or an unfinished revert): both follow from the stored status (plan.plan).
    if s.stable_checkpoint and world.target.checkpoint != s.stable_checkpoint == ctx.stored_stable:
        # (A stable checkpoint chosen by this very look, a revert, announces itself.)
        ctx.event("CheckpointRestored", f"target set back to stable checkpoint {s.stable_checkpoint}")
        ctx.soon(2.0)
    desired = spec.checkpoint
    assert desired is not None  # spec.source was resolved into it (reconcile)
    if desired == s.stable_checkpoint:
        promoted = cond.get_condition(s.conditions, cond.PROMOTED)
        if s.phase == "Failed" and promoted is not None and promoted.reason == "RevertImpossible":
            return  # a regressed checkpoint with nothing to revert to: Failed until a new one is asked for
        if s.phase not in ("Promoted", "Idle"):
            s.phase = "Idle"
        s.message = f"serving {s.stable_checkpoint}"
        ctx.condition(cond.PROGRESSING, "False", "Idle", f"serving {s.stable_checkpoint}")
        ctx.condition(cond.PAUSED, "False", "NotPaused", "")
        return
    if desired in (s.rejected_checkpoints or []):
        # Whoever keeps spec.checkpoint (often git) must move it on; the message says how.
        serving = f"; {s.stable_checkpoint} keeps serving" if s.stable_checkpoint else ""
        s.message = (
            f"spec.checkpoint {desired} was rejected{serving}. Set spec.checkpoint to another checkpoint (with GitOps:"
            f" revert the commit that set {desired}, or commit a new checkpoint), or run `modelratchet retry` to roll"
            f" {desired} out again"
        )
        ctx.condition(cond.PROGRESSING, "False", "CheckpointRejected", s.message)
        return
    rolled_back = parse_ts(s.rolled_back_at)
    cooldown = _secs(spec.cooldown)
    if rolled_back and cooldown and ctx.now < rolled_back + timedelta(seconds=cooldown):
        remaining = (rolled_back + timedelta(seconds=cooldown) - ctx.now).total_seconds()
        s.message = f"cooling down after a rollback; {desired} starts in {math.ceil(remaining)}s"
        ctx.condition(cond.PROGRESSING, "False", "CoolingDown", s.message)
        ctx.soon(remaining)
        return
    _start(ctx, world, desired)


def _start(ctx: _Ctx, world: World, checkpoint: str) -> None:
    s = ctx.s
    s.phase = "Progressing"
    s.canary_checkpoint = checkpoint
    s.current_step = 0
    _clear_traffic(s)
    s.rollout_started_at = ctx.now_s
    s.step_started_at = ctx.now_s
    s.post_promotion_until = None
    _reset_rollout_counters(s)
    s.message = f"rolling out {checkpoint} (stable {s.stable_checkpoint})"
    ctx.condition(cond.PROGRESSING, "True", "RolloutStarted", s.message)
    ctx.condition(cond.PAUSED, "False", "NotPaused", "")
    ctx.condition(cond.PROMOTED, "False", "RolloutInProgress", f"{checkpoint} is being rolled out")
    ctx.condition(cond.ROLLED_BACK, "False", "RolloutInProgress", "")
    ctx.event("RolloutStarted", s.message)
    ctx.actions.append(Notify("started", s.message, checkpoint))
    _run_step(ctx, world)


# ---------------------------------------------------------------------------------------------- progress


def _progress(ctx: _Ctx, world: World) -> None:
    s, spec = ctx.s, ctx.spec
    if spec.checkpoint != s.canary_checkpoint:
        # The desired checkpoint moved on mid-rollout: drop this canary (not rejected) and start over.
        old = s.canary_checkpoint
        ctx.event("RolloutSuperseded", f"{old} superseded by {spec.checkpoint}")
        s.canary_checkpoint = None
        _clear_traffic(s)
        s.current_step = None
        s.phase = "Idle"
        ctx.condition(cond.PAUSED, "False", "NotPaused", "")
        _maybe_start(ctx, world)
        return
    _run_step(ctx, world)


def _step(ctx: _Ctx) -> Step | None:
    i = ctx.s.current_step
    return ctx.spec.steps[i] if i is not None and i < len(ctx.spec.steps) else None


def _run_step(ctx: _Ctx, world: World) -> None:
    """Drive the current step; may advance through several instant steps in one reconcile."""
    for _ in range(len(ctx.spec.steps) + 1):
        before = ctx.s.current_step
        if ctx.s.phase not in ("Progressing", "Paused") or ctx.s.canary_checkpoint is None:
            return
        step = _step(ctx)
        if step is None:
            _promote(ctx, world)
            return
        if step.shifts_traffic:
            _shift_traffic(ctx, world, step)
        elif step.pause is not None:
            _pause(ctx, world, step)
        elif step.analyze is not None:
            _analyze(ctx, world, step)
        if ctx.s.current_step == before:
            return


def _advance(ctx: _Ctx, world: World) -> None:
    s = ctx.s
    s.current_step = (s.current_step or 0) + 1
    s.step_started_at = ctx.now_s
    s.phase = "Progressing"
    s.analysis_count = 0
    ctx.condition(cond.PAUSED, "False", "NotPaused", "")
    if s.current_step < len(ctx.spec.steps):
        message = f"step {_n(ctx)}: {ctx.spec.steps[s.current_step].describe()}"
        s.message = message
        ctx.condition(cond.PROGRESSING, "True", "StepAdvanced", message)
        ctx.event("StepReached", message)
        ctx.actions.append(Notify("stepReached", message, s.canary_checkpoint))
    # No requeue here: the step entered next (or the promotion) sets its own.


def _n(ctx: _Ctx) -> str:
    """The current step for people: 1-based out of the total (status.currentStep stays a 0-based index)."""
    return f"{(ctx.s.current_step or 0) + 1}/{len(ctx.spec.steps)}"


def _shift_traffic(ctx: _Ctx, world: World, step: Step) -> None:
    """A traffic step records the candidate's new share, and ends once the candidate serves it."""
    s = ctx.s
    if step.set_weight is not None:
        s.canary_weight = step.set_weight
    elif step.set_header_route is not None:
        s.header_route = list(step.set_header_route.match) or None
    elif step.set_mirror is not None:
        s.mirror_percent = step.set_mirror.percent or None
    # What was observed before this rollout began (a leftover canary, even of the same checkpoint) is not the
    # canary it asks for: that one exists only once the stored status has been acted on.
    seen = replace(world, canary=None) if s.rollout_started_at == ctx.now_s else world
    waiting = traffic.serving(ctx.spec, s, seen)
    if waiting is None:
        s.serving_since = ctx.now_s
        _advance(ctx, world)
        return
    deadline = _secs(ctx.spec.progress_deadline)
    started = parse_ts(s.step_started_at) or ctx.now
    if deadline and ctx.now >= started + timedelta(seconds=deadline):
        # A candidate that cannot even start (an image or checkpoint that does not load, pods that never fit)
        # must not hold the rollout, and its half-made canary, forever.
        _rollback(
            ctx,
            "ProgressDeadlineExceeded",
            f"step {_n(ctx)} still {waiting} after {ctx.spec.progress_deadline} (spec.progressDeadline)",
        )
        return
    s.message = waiting
    ctx.soon()


def _pause(ctx: _Ctx, world: World, step: Step) -> None:
    s = ctx.s
    assert step.pause is not None
    if step.pause.duration is None:
        if s.phase != "Paused":
            s.phase = "Paused"
            s.message = f"paused at step {_n(ctx)}: `modelratchet promote` to continue, `abort` to roll back"
            ctx.condition(cond.PAUSED, "True", "ManualGate", s.message)
            ctx.event("Paused", s.message)
            ctx.actions.append(Notify("paused", s.message, s.canary_checkpoint))
        return
    started = parse_ts(s.step_started_at) or ctx.now
    end = started + timedelta(seconds=_secs(step.pause.duration))
    if ctx.now >= end:
        _advance(ctx, world)
        return
    if s.phase != "Paused":
        s.phase = "Paused"
        s.message = f"paused at step {_n(ctx)} until {ts(end)}"
        ctx.condition(cond.PAUSED, "True", "TimedPause", s.message)
        ctx.event("Paused", s.message)
        ctx.actions.append(Notify("paused", s.message, s.canary_checkpoint))
    ctx.soon((end - ctx.now).total_seconds())


def _analyze(ctx: _Ctx, world: World, step: Step) -> None:
    s, policy = ctx.s, ctx.spec.analysis
    assert step.analyze is not None
    report = world.analysis
    request = analysis_due(ctx.spec, s, ctx.now)
    started = parse_ts(s.step_started_at) or ctx.now
    end = started + timedelta(seconds=_secs(step.analyze.duration))
    if report is not None and request is not None and request.stage == "canary":
        _record(ctx, report, s.canary_checkpoint or "", "canary", s.current_step)
        verdict = _escalate(ctx, report)
        if verdict == "failed":
            s.failed_analyses = (s.failed_analyses or 0) + 1
            s.first_failure_at = s.first_failure_at or ctx.now_s
            if s.failed_analyses > policy.failure_limit:
                _rollback(ctx, "AnalysisFailed", f"analysis failed: {report.summary}")
                return
        elif verdict == "inconclusive" and (not report.pending or ctx.now >= end):
            # A judge still asking for samples after the step's duration is as good as no data.
            s.inconclusive_analyses = (s.inconclusive_analyses or 0) + 1
            if s.inconclusive_analyses > policy.inconclusive_limit:
                if policy.on_inconclusive == "rollback":
                    _rollback(ctx, "InconclusiveLimit", f"no conclusive data: {report.summary}")
                    return
                if policy.on_inconclusive == "hold":
                    if s.phase != "Paused":
                        s.phase = "Paused"
                        s.message = f"holding: waiting for data ({report.summary})"
                        ctx.condition(cond.PAUSED, "True", "WaitingForData", s.message)
                        ctx.event("WaitingForData", s.message, warning=True)
                        ctx.actions.append(Notify("paused", s.message, s.canary_checkpoint))
                    _soon_for_analysis(ctx, started, end)
                    return
                # proceed: fail open, but say so.
                ctx.event("InconclusiveProceeding", f"proceeding without conclusive data: {report.summary}", True)
        if verdict in ("passed", "warning"):
            # inconclusiveLimit counts consecutive analyses without data: a gap that closes is forgiven.
            s.inconclusive_analyses = 0
        if verdict in ("passed", "warning") and s.phase == "Paused":
            # Data came back (hold) — resume.
            held = cond.get_condition(s.conditions, cond.PAUSED)
            if held and held.reason == "WaitingForData":
                s.phase = "Progressing"
                s.inconclusive_analyses = 0
                ctx.condition(cond.PAUSED, "False", "DataReturned", "analysis has data again")
                ctx.event("Resumed", "data returned; analysis resumed")
        if verdict == "warning" and policy.warning_policy == "block":
            blocked = cond.get_condition(s.conditions, cond.PAUSED)
            if s.phase != "Paused" or blocked is None or blocked.reason != "WarningBlocked":
                s.phase = "Paused"
                s.message = (
                    f"blocked by a warning: {report.summary}; `modelratchet promote` to accept, `abort` to reject"
                )
                ctx.condition(cond.PAUSED, "True", "WarningBlocked", s.message)
                ctx.event("WarningBlocked", s.message, warning=True)
                ctx.actions.append(Notify("paused", s.message, s.canary_checkpoint))
            _soon_for_analysis(ctx, started, end)
            return
        if verdict == "passed" and report.decided and report.verdict == "passed":
            ctx.event("AnalysisDecided", f"every judge decided pass after {s.analysis_count} look(s)")
            _advance(ctx, world)
            return
    if s.phase == "Paused":
        _soon_for_analysis(ctx, started, end)
        return
    # Fail open on missing data only past inconclusiveLimit (below it, keep looking, as the other policies do).
    acceptable = s.last_verdict in ("passed", "warning") or (
        s.last_verdict == "inconclusive"
        and policy.on_inconclusive == "proceed"
        and (s.inconclusive_analyses or 0) > policy.inconclusive_limit
    )
    if ctx.now >= end and (s.analysis_count or 0) > 0 and acceptable:
        _advance(ctx, world)
        return
    s.message = f"analyzing {s.canary_checkpoint} at step {_n(ctx)} ({s.analysis_count or 0} analyses)"
    ctx.condition(cond.PROGRESSING, "True", "Analyzing", s.message)
    _soon_for_analysis(ctx, started, end)


def _escalate(ctx: _Ctx, report: AnalysisReport) -> str:
    """The verdict that counts: escalateAfter consecutive warnings count as failed."""
    s, policy = ctx.s, ctx.spec.analysis
    verdict: str = report.verdict
    if verdict == "warning":
        s.consecutive_warnings = (s.consecutive_warnings or 0) + 1
        if policy.escalate_after and s.consecutive_warnings >= policy.escalate_after:
            verdict = "failed"
            s.last_verdict = "failed"  # so the step cannot end on it either
            message = f"{s.consecutive_warnings} consecutive warnings escalated to critical"
            ctx.condition(cond.ANALYSIS, "False", "WarningEscalated", message)
            ctx.event("WarningEscalated", message, warning=True)
    elif verdict == "passed":
        s.consecutive_warnings = 0
    return verdict


def _soon_for_analysis(ctx: _Ctx, since: datetime, end: datetime | None) -> None:
    """Wake up when the next analysis is due (or the step/watch ends), not in a busy loop."""
    wait = _next_analysis_in(ctx.spec, ctx.s, since, ctx.now)
    if end is not None and ctx.now < end:
        wait = min(wait, (end - ctx.now).total_seconds())
    ctx.soon(max(wait, BUSY_REQUEUE))


# ---------------------------------------------------------------------------------------------- endings


def _promote(ctx: _Ctx, world: World) -> None:
    s = ctx.s
    assert world.target is not None and s.canary_checkpoint is not None
    candidate = s.canary_checkpoint
    # Promoting is stored before the target is written (plan.intended_target is the candidate from here on).
    if not (world.target.checkpoint == candidate and world.target.available):
        s.message = f"promoting {candidate}: waiting for the target to become Available"
        ctx.condition(cond.PROGRESSING, "True", "Promoting", s.message)
        ctx.soon()
        return
    previous = s.stable_checkpoint
    s.previous_checkpoint = previous
    s.stable_checkpoint = candidate
    s.last_good_checkpoints = _push_front(s.last_good_checkpoints, candidate, LAST_GOOD_LIMIT)
    s.canary_checkpoint = None
    _clear_traffic(s)
    s.current_step = None
    s.phase = "Promoted"
    s.promoted_at = ctx.now_s
    _reset_rollout_counters(s)  # the post-promotion watch counts from zero
    watch = _secs(ctx.spec.post_promotion.watch if ctx.spec.post_promotion else None)
    s.post_promotion_until = ts(ctx.now + timedelta(seconds=watch)) if watch else None
    s.message = f"promoted {candidate} (was {previous})"
    if watch:
        s.message += f"; watching until {s.post_promotion_until}"
        ctx.soon()
    ctx.condition(cond.PROGRESSING, "False", "Promoted", s.message)
    ctx.condition(cond.PAUSED, "False", "NotPaused", "")
    ctx.condition(cond.PROMOTED, "True", "Promoted", s.message)
    ctx.condition(cond.ROLLED_BACK, "False", "Promoted", f"{candidate} was promoted")
    registry.record_verdict(ctx.spec, s, "promoted", candidate, s.message, ctx.now_s)
    if s.training is not None and ctx.spec.on_rollback and ctx.spec.on_rollback.resume_on == "promotion":
        s.training = training.resume(s.training)
        ctx.event("TrainingResumeRequested", f"resuming training: {candidate} was promoted")
    ctx.event("Promoted", s.message)
    ctx.actions.append(Notify("promoted", s.message, candidate))


def _rollback(ctx: _Ctx, reason: str, message: str) -> None:
    s = ctx.s
    candidate = s.canary_checkpoint or ""
    s.rejected_checkpoints = _push_front(s.rejected_checkpoints, candidate, REJECTED_LIMIT)
    s.phase = "RolledBack"
    s.rolled_back_at = ctx.now_s
    s.canary_checkpoint = None
    _clear_traffic(s)
    s.current_step = None
    text = f"rolled back {candidate}, serving {s.stable_checkpoint}: {message}"
    s.message = text
    ctx.condition(cond.PROGRESSING, "False", reason, text)
    ctx.condition(cond.PAUSED, "False", "NotPaused", "")
    ctx.condition(cond.ROLLED_BACK, "True", reason, text)
    ctx.condition(cond.PROMOTED, "False", reason, text)
    registry.record_verdict(ctx.spec, s, "rolledBack", candidate, text, ctx.now_s)
    text += _suspend_training(ctx, candidate, text)
    ctx.event("RolledBack", text, warning=True)
    ctx.actions.append(Notify("rolledBack", text, candidate))
    ctx.soon()


def _revert(ctx: _Ctx, reason: str, message: str) -> None:
    """After promotion: put the previous good checkpoint back into the target."""
    s = ctx.s
    bad = s.stable_checkpoint or ""
    previous = s.previous_checkpoint or next((c for c in s.last_good_checkpoints or [] if c != bad), None)
    if previous is None:
        # Nothing to slip back to: say so loudly (Failed, Degraded in Argo CD) and keep serving what there is.
        text = f"{bad} regressed after promotion but no earlier good checkpoint is known; it keeps serving"
        ctx.event("RevertImpossible", text, warning=True)
        s.post_promotion_until = None
        s.phase = "Failed"
        s.message = f"{text}: {message}"
        ctx.condition(cond.PROMOTED, "False", "RevertImpossible", s.message)
        return
    s.rejected_checkpoints = _push_front(s.rejected_checkpoints, bad, REJECTED_LIMIT)
    s.last_good_checkpoints = [c for c in s.last_good_checkpoints or [] if c != bad] or None
    s.stable_checkpoint = previous
    s.previous_checkpoint = None
    s.post_promotion_until = None
    s.phase = "RolledBack"
    s.rolled_back_at = ctx.now_s
    text = f"reverted {bad} to {previous}: {message}"
    s.message = text
    ctx.condition(cond.PROMOTED, "False", reason, text)
    ctx.condition(cond.ROLLED_BACK, "True", reason, text)
    registry.record_verdict(ctx.spec, s, "reverted", bad, text, ctx.now_s, restore=previous)
    text += _suspend_training(ctx, bad, text)
    ctx.event("Reverted", text, warning=True)
    ctx.actions.append(Notify("reverted", text, bad))
    ctx.soon()


def _watch_after_promotion(ctx: _Ctx, world: World) -> None:
    s, policy = ctx.s, ctx.spec.analysis
    if ctx.spec.checkpoint != s.stable_checkpoint:
        # A new checkpoint was asked for: the watch ends, the next rollout judges from here.
        s.post_promotion_until = None
        return
    until = parse_ts(s.post_promotion_until)
    report = world.analysis
    request = analysis_due(ctx.spec, s, ctx.now)
    if report is not None and request is not None and request.stage == "postPromotion":
        _record(ctx, report, s.stable_checkpoint or "", "postPromotion", None)
        verdict = _escalate(ctx, report)
        if verdict == "failed":
            s.failed_analyses = (s.failed_analyses or 0) + 1
            s.first_failure_at = s.first_failure_at or ctx.now_s
            if s.failed_analyses > policy.failure_limit:
                _revert(ctx, "PostPromotionRegression", f"regressed after promotion: {report.summary}")
                return
        elif verdict == "inconclusive" and not report.pending:
            s.inconclusive_analyses = (s.inconclusive_analyses or 0) + 1
            if s.inconclusive_analyses > policy.inconclusive_limit and policy.on_inconclusive == "rollback":
                _revert(ctx, "InconclusiveLimit", f"no conclusive data after promotion: {report.summary}")
                return
    if until is not None and ctx.now >= until:
        s.post_promotion_until = None
        s.message = f"serving {s.stable_checkpoint}; post-promotion watch passed"
        ctx.event("WatchCompleted", s.message)
        return
    _soon_for_analysis(ctx, parse_ts(s.promoted_at) or ctx.now, until)
