"""One analysis: measure (Prometheus), judge (the pure gate engine), report (for the state machine)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta

from prometheus_client import Histogram as LagHistogram

from modelratchet import telemetry
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.common import parse_duration
from modelratchet.api.rollout import MetricResult, ModelRolloutSpec, ModelRolloutStatus
from modelratchet.gates import Histogram, Observation, Schedule, ValidationResult, evaluate
from modelratchet.metrics.prometheus import PrometheusSettings
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.rollout.machine import parse_ts
from modelratchet.rollout.types import AnalysisReport, AnalysisRequest

ANALYSIS_LAG = LagHistogram(
    "modelratchet_analysis_lag_seconds",
    "From the time an analysis fell due to the time it started (how late the operator looks).",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120),
    registry=telemetry.REGISTRY,
)


def due_at(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> datetime | None:
    """When the analysis the state machine now asks for fell due: an interval after the last one (or after the
    step began or the promotion, when no analysis was made since). None when no analysis is scheduled."""
    last = parse_ts(status.last_analysis_at)
    if status.phase in ("Progressing", "Paused") and status.current_step is not None:
        since = parse_ts(status.step_started_at)
    elif status.phase == "Promoted":
        since = parse_ts(status.promoted_at)
    else:
        return None
    if since is None:
        return None
    reference = last if last is not None and last >= since else since
    return reference + timedelta(seconds=parse_duration(spec.analysis.interval))


def observe_lag(spec: ModelRolloutSpec, status: ModelRolloutStatus, started: datetime) -> None:
    """Records how late an analysis that starts at ``started`` (wall clock) is."""
    due = due_at(spec, status)
    if due is not None:
        ANALYSIS_LAG.observe(max(0.0, (started - due).total_seconds()))


def live_spec(spec: ModelBaselineSpec) -> ModelBaselineSpec:
    """Only the metrics that can be measured live (those with a query)."""
    metrics = [m for m in spec.metrics if m.query or (m.judge and (m.judge.success_query or m.judge.bucket_query))]
    return spec.model_copy(update={"metrics": metrics}) if metrics else spec


def recorded_observation(result: MetricResult | None) -> Observation | None:
    """What the stable checkpoint measured during the canary, as a baseline arm whose counts are frozen."""
    if result is None:
        return None
    evidence = result.baseline_evidence
    if evidence is not None and evidence.successes is not None and evidence.total:
        return Observation(value=result.baseline, successes=evidence.successes, total=evidence.total, frozen=True)
    counts = evidence.counts if evidence is not None else None
    if evidence is not None and evidence.bounds and counts and len(counts) == len(evidence.bounds) + 1:
        cumulative = tuple(itertools.accumulate(counts))
        histogram = Histogram((*evidence.bounds, math.inf), (0.0,), (cumulative,), step=0.0)
        return Observation(histogram=histogram, frozen=True)
    if result.baseline is None:
        return None
    return Observation(value=result.baseline)


def run_analysis(
    provider: MetricsProvider,
    spec: ModelBaselineSpec,
    request: AnalysisRequest,
    *,
    namespace: str,
    settings: PrometheusSettings,
    now: datetime,
) -> tuple[AnalysisReport, ValidationResult, list[str]]:
    """Returns the report, the engine's result, and configuration errors (queries that do not parse)."""
    live = live_spec(spec)
    observed = provider.observe(
        live,
        namespace=namespace,
        checkpoint=request.checkpoint,
        stable_checkpoint=request.stable_checkpoint,
        window_seconds=request.window_seconds,
        interval_seconds=request.interval_seconds,
        now=now,
        settings=settings,
    )
    baseline: dict[str, float | Observation | None] = dict(observed.baseline)
    post = request.stage == "postPromotion"
    if post:
        # The previous checkpoint no longer serves: compare with what it measured side by side during the canary,
        # its counts frozen (a two-sample test), not its estimate taken as the truth.
        for m in live.metrics:
            if m.is_live:
                baseline[m.name] = recorded_observation(request.recorded_baselines.get(m.name))
    schedule = Schedule(
        look=request.look,
        planned=request.max_looks,
        final=request.final,
        ahead=request.ahead_seconds / request.interval_seconds if request.interval_seconds > 0 else 0.0,
        interval_seconds=request.interval_seconds,
        share=request.share,
    )
    result = evaluate(live, dict(observed.candidate), baseline, schedule=schedule)
    metrics = list(result.results)
    if post:
        # The evidence is the recorded one: history keeps it once, with the canary's analyses.
        metrics = [r.model_copy(update={"baseline_evidence": None}) for r in metrics]
    problems = [f"{p.metric} ({p.arm}): {p.message}" for p in observed.problems]
    report = AnalysisReport(
        verdict=result.verdict,
        metrics=metrics,
        summary=result.summary,
        pending=result.pending,
        decided=result.decided,
        problems=problems,
    )
    invalid = [f"{p.metric}: {p.message}" for p in observed.problems if p.kind == "invalid_query"]
    return report, result, invalid
