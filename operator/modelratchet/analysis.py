"""One analysis: measure (Prometheus), judge (the pure gate engine), report (for the state machine)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime

from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.rollout import MetricResult
from modelratchet.gates import Histogram, Observation, Schedule, ValidationResult, evaluate
from modelratchet.metrics.prometheus import PrometheusSettings
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.rollout.types import AnalysisReport, AnalysisRequest


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
