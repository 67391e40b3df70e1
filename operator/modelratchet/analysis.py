"""One analysis: measure (Prometheus), judge (the pure gate engine), report (for the state machine)."""

from __future__ import annotations

from datetime import datetime

from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import Observation, ValidationResult, evaluate
from modelratchet.metrics.prometheus import PrometheusSettings
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.rollout.types import AnalysisReport, AnalysisRequest


def live_spec(spec: ModelBaselineSpec) -> ModelBaselineSpec:
    """Only the metrics that can be measured live (those with a query)."""
    metrics = [m for m in spec.metrics if m.query or (m.judge and m.judge.success_query)]
    return spec.model_copy(update={"metrics": metrics}) if metrics else spec


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
    if request.stage == "postPromotion":
        # The previous checkpoint no longer serves: compare with what it measured side by side during the canary.
        for m in live.metrics:
            if m.is_live:
                recorded = request.recorded_baselines.get(m.name)
                baseline[m.name] = recorded
    result = evaluate(
        live,
        dict(observed.candidate),
        baseline,
        look=request.look,
        max_looks=request.max_looks,
    )
    problems = [f"{p.metric} ({p.arm}): {p.message}" for p in observed.problems]
    report = AnalysisReport(
        verdict=result.verdict,
        metrics=list(result.results),
        summary=result.summary,
        pending=result.pending,
        decided=result.decided,
        problems=problems,
    )
    invalid = [f"{p.metric}: {p.message}" for p in observed.problems if p.kind == "invalid_query"]
    return report, result, invalid
