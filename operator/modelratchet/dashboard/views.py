"""What the dashboard shows, as data: rollouts to overview rows, steps to a progress line, history to chart
series. Pure: no I/O, no HTML; the pages render these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelratchet.api.rollout import HistoryEntry, MetricResult, ModelRollout, Step
from modelratchet.cli.render_report import select_entries, subject
from modelratchet.cli.render_status import age, parse_time, running, status_of

StepState = Literal["done", "current", "pending", "stopped"]
Direction = Literal["higherIsBetter", "lowerIsBetter"]
# Judges whose figures carry a confidence interval worth drawing per analysis.
INTERVAL_JUDGES = ("sequential", "mannWhitney", "histogram")


@dataclass(frozen=True)
class OverviewRow:
    """One ModelRollout in the overview table (and in the live updates the browser receives)."""

    namespace: str
    name: str
    phase: str
    step: str  # "2/4" or "-"
    step_fraction: float | None  # steps done / steps, for the progress bar
    weight: int | None
    stable: str
    candidate: str
    last_verdict: str
    age: str
    key: str  # namespace/name, the row's id in the page

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def overview_row(ro: ModelRollout, now: datetime) -> OverviewRow:
    s = status_of(ro)
    meta = ro.metadata
    namespace, name = str(meta.get("namespace") or "-"), str(meta.get("name") or "-")
    n = len(ro.spec.steps)
    if running(ro) and s.current_step is not None:
        done = min(s.current_step, n)
        step, fraction = f"{min(done + 1, n)}/{n}", done / n
    elif s.phase == "Promoted":
        step, fraction = f"{n}/{n}", 1.0
    else:
        step, fraction = "-", None
    return OverviewRow(
        namespace=namespace,
        name=name,
        phase=s.phase or "Pending",
        step=step,
        step_fraction=fraction,
        weight=s.canary_weight if running(ro) else None,
        stable=s.stable_checkpoint or "-",
        candidate=s.canary_checkpoint or "-",
        last_verdict=s.last_verdict or "-",
        age=age(meta.get("creationTimestamp"), now),
        key=f"{namespace}/{name}",
    )


@dataclass(frozen=True)
class StepItem:
    index: int  # 0-based
    label: str
    state: StepState
    weight: int  # the candidate's traffic share once the step is reached


def step_weights(steps: Sequence[Step]) -> list[int]:
    """The candidate's weight at each step: the last setWeight at or before it (0 before the first)."""
    out, weight = [], 0
    for st in steps:
        if st.set_weight is not None:
            weight = st.set_weight
        out.append(weight)
    return out


def _stopped_at(ro: ModelRollout) -> int | None:
    """The step a rolled-back candidate's last canary analysis ran at: where the rollout stopped."""
    s = status_of(ro)
    if s.phase not in ("RolledBack", "Failed"):
        return None
    candidate, _ = subject(ro)
    for e in s.history or []:  # newest first
        if e.checkpoint == candidate and e.stage == "canary" and e.step is not None:
            return e.step
    return None


def steps_progress(ro: ModelRollout) -> list[StepItem]:
    """Every step, done, current or pending: a finished promotion has all done, a rollback the steps before the
    one it stopped at, anything else not running none."""
    s = status_of(ro)
    weights = step_weights(ro.spec.steps)
    stopped = _stopped_at(ro)
    if running(ro) and s.current_step is not None:
        current = s.current_step
    elif s.phase == "Promoted":
        current = len(ro.spec.steps)
    elif stopped is not None:
        current = stopped
    else:
        current = -1
    items = []
    for i, st in enumerate(ro.spec.steps):
        state: StepState = "pending" if current < 0 or i > current else "done" if i < current else "current"
        if i == stopped:
            state = "stopped"
        items.append(StepItem(i, st.describe(), state, weights[i]))
    return items


@dataclass(frozen=True)
class ChartPoint:
    """One analysis of one metric."""

    history_id: int
    time: str
    step: int | None
    weight: int | None  # the candidate's traffic share at that step
    value: float | None
    baseline: float | None
    bounds: tuple[float, ...]  # the threshold as values on the metric's scale (two for a symmetric delta)
    outcome: str  # passed, failed, inconclusive
    severity: str
    mark: Literal["ok", "failed", "warning", "inconclusive", "info"]
    message: str
    judge: str | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    samples: int | None = None


@dataclass(frozen=True)
class MetricChart:
    metric: str
    direction: Direction
    points: list[ChartPoint] = field(default_factory=list)

    @property
    def has_interval(self) -> bool:
        return any(p.ci_low is not None and p.ci_high is not None for p in self.points)


def threshold_bounds(m: MetricResult, direction: Direction) -> tuple[float, ...]:
    """The threshold on the value's scale: where the candidate would start failing the check."""
    t = m.threshold
    if t is None or t.value is None:
        return ()
    v, b = t.value, m.baseline
    higher = direction == "higherIsBetter"
    if t.type in ("min", "max"):
        return (v,)
    if b is None:
        return ()
    if t.type == "delta":
        if t.symmetric:
            return (b - v, b + v)
        return (b - v,) if higher else (b + v,)
    if t.type == "ratio":
        return (b * (1 - v),) if higher else (b * (1 + v),)
    return ()


def _mark(m: MetricResult) -> Literal["ok", "failed", "warning", "inconclusive", "info"]:
    if m.outcome == "inconclusive":
        return "inconclusive"
    if m.outcome == "failed":
        return "failed" if m.severity == "critical" else "warning" if m.severity == "warning" else "info"
    return "ok"


def chart_series(
    entries: Sequence[HistoryEntry], steps: Sequence[Step], directions: Mapping[str, Direction] | None = None
) -> list[MetricChart]:
    """Per metric, one point per analysis in ``entries`` (oldest first), in the order metrics first appear."""
    weights = step_weights(steps)
    directions = directions or {}
    charts: dict[str, MetricChart] = {}
    for e in entries:
        weight = weights[e.step] if e.step is not None and 0 <= e.step < len(weights) else None
        if e.stage == "postPromotion":
            weight = 100
        for m in e.metrics:
            direction = directions.get(m.metric, "higherIsBetter")
            chart = charts.setdefault(m.metric, MetricChart(m.metric, direction))
            j = m.judge if m.judge is not None and m.judge.judge in INTERVAL_JUDGES else None
            chart.points.append(
                ChartPoint(
                    history_id=e.id,
                    time=e.time,
                    step=e.step,
                    weight=weight,
                    value=m.value,
                    baseline=m.baseline,
                    bounds=threshold_bounds(m, direction),
                    outcome=m.outcome,
                    severity=m.severity,
                    mark=_mark(m),
                    message=m.message,
                    judge=m.judge.judge if m.judge is not None else None,
                    estimate=j.estimate if j else None,
                    ci_low=j.ci_low if j else None,
                    ci_high=j.ci_high if j else None,
                    samples=j.samples if j else None,
                )
            )
    return list(charts.values())


def baseline_directions(baseline: Mapping[str, Any] | None) -> dict[str, Direction]:
    """metric name -> direction, from a ModelBaseline object as the API returns it (absent: higher is better)."""
    metrics = ((baseline or {}).get("spec") or {}).get("metrics") or []
    out: dict[str, Direction] = {}
    for m in metrics:
        if isinstance(m, dict) and isinstance(m.get("name"), str):
            out[m["name"]] = "lowerIsBetter" if m.get("direction") == "lowerIsBetter" else "higherIsBetter"
    return out


@dataclass(frozen=True)
class VerdictItem:
    history_id: int
    time: str
    checkpoint: str
    stage: str
    step: int | None
    verdict: str
    message: str


def verdict_timeline(entries: Sequence[HistoryEntry]) -> list[VerdictItem]:
    return [VerdictItem(e.id, e.time, e.checkpoint, e.stage, e.step, e.verdict, e.message) for e in entries]


@dataclass(frozen=True)
class RolloutView:
    row: OverviewRow
    candidate: str | None
    judged_against: str | None
    desired: str
    message: str
    steps: list[StepItem]
    charts: list[MetricChart]
    verdicts: list[VerdictItem]
    can_promote: bool
    can_abort: bool
    can_retry: bool
    rejected: list[str]
    pending_gate: str | None


def rollout_view(
    ro: ModelRollout, now: datetime, *, baseline: Mapping[str, Any] | None = None, all_checkpoints: bool = False
) -> RolloutView:
    s = status_of(ro)
    entries = select_entries(ro, all_checkpoints)
    candidate, against = subject(ro)
    n = len(ro.spec.steps)
    promotable = running(ro) and s.current_step is not None and s.current_step < n
    watch_end = parse_time(s.post_promotion_until)
    watching = s.phase == "Promoted" and watch_end is not None and watch_end > now
    gate = s.gate
    return RolloutView(
        row=overview_row(ro, now),
        candidate=candidate,
        judged_against=against,
        desired=ro.spec.checkpoint or "-",
        message=s.message or "",
        steps=steps_progress(ro),
        charts=chart_series(entries, ro.spec.steps, baseline_directions(baseline)),
        verdicts=verdict_timeline(entries),
        can_promote=promotable,
        can_abort=running(ro) or watching,
        can_retry=ro.spec.checkpoint in (s.rejected_checkpoints or []),
        rejected=list(s.rejected_checkpoints or []),
        pending_gate=None
        if gate is None
        else f"{gate.action} of {gate.checkpoint or '-'} by "
        f"{gate.requested_by or 'unknown'} at {gate.requested_at or '-'}",
    )
