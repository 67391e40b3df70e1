"""evaluate(): judge every metric of a ModelBaseline and combine the checks into a verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelratchet.api.baseline import MetricSpec, ModelBaselineSpec, Verdict
from modelratchet.api.common import Severity
from modelratchet.api.rollout import (
    Classification,
    JudgeFigures,
    MetricResult,
    Outcome,
    RecordedEvidence,
    ThresholdSummary,
)

from . import thresholds
from .classify import classify
from .format import num, threshold_message
from .judging import JudgeRun, run_histogram, run_mann_whitney, run_sequential
from .observation import Input, Measured, Observation, Schedule, measured, problem

OnMissing = Literal["fail", "ignore"]
Status = Literal["passed", "warning", "failed"]
_STATUS: dict[Verdict, Status] = {
    "passed": "passed",
    "warning": "warning",
    "failed": "failed",
    "inconclusive": "failed",  # fail closed
}
_DECISION: dict[str, Outcome] = {"pass": "passed", "fail": "failed", "continue": "inconclusive"}


@dataclass(frozen=True)
class ValidationResult:
    """The judgement of one candidate against one ModelBaseline."""

    model: str
    verdict: Verdict
    results: list[MetricResult]  # one per spec metric, in spec order
    summary: str  # e.g. "3 passed, 1 failed (accuracy), 0 inconclusive"
    pending: bool  # a statistical judge needs more samples, and nothing else failed or is missing
    decided: bool  # a failure settled the verdict, or every metric's statistical judge reached its decision
    waiting: tuple[str, ...] = ()  # metrics whose statistical judge asked for more samples

    @property
    def status(self) -> Status:
        """For ``check``: inconclusive counts as failed (fail closed)."""
        return _STATUS[self.verdict]

    def to_json(self) -> dict[str, Any]:
        """The ``check --format json`` object."""
        from .report import to_json

        return to_json(self)


@dataclass(frozen=True)
class _Checked:
    result: MetricResult
    waiting: bool = False  # inconclusive only because a judge wants more samples


def _clean(x: float | None) -> float | None:
    """Drop float noise of a subtraction (0.75 - 0.70 = 0.050000000000000044) and non-finite values."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.12g}")


def _resolve_baseline(metric: MetricSpec, supplied: Measured | None) -> Observation | None:
    """A supplied baseline (live value or override) wins; else the static value, with its evidence; else none."""
    if supplied is not None:
        return supplied.obs
    if isinstance(metric.baseline, float):
        evidence = metric.baseline_evidence
        if evidence is not None and evidence.samples is not None:
            # The value is a rate measured on `samples` trials: those counts, frozen, are the baseline arm.
            n = float(evidence.samples)
            return Observation(value=metric.baseline, successes=metric.baseline * n, total=n, frozen=True)
        return Observation(value=metric.baseline, exact=evidence is not None and bool(evidence.exact))
    return None


def _samples_problem(metric: MetricSpec, obs: Observation, arm: str, fallback: float | None = None) -> str | None:
    """minSamples: a live observation with too few samples (or an unmeasured count) is inconclusive."""
    if metric.min_samples is None:
        return None
    samples = obs.samples if obs.samples is not None else fallback
    if samples is None or math.isnan(samples):
        return f"{arm}sample count not measured (minSamples {metric.min_samples})"
    if samples < metric.min_samples:
        return f"{arm}only {num(samples)} samples, minSamples is {metric.min_samples}"
    return None


def _baseline_problem(metric: MetricSpec, base: Observation | None) -> str | None:
    """Why a delta or ratio threshold cannot compare against this baseline."""
    if base is None:
        source = "no live baseline value for the stable checkpoint" if metric.is_live else "no baseline value"
        return f"baseline missing: {source}"
    if base.error:
        return f"baseline could not be measured: {base.error}"
    value = base.point_value()
    issue = problem(value)
    if issue is not None:
        return "baseline missing: no value" if value is None else f"baseline {issue}"
    if metric.threshold.type == "ratio" and value == 0:
        return "baseline is 0; a ratio threshold needs a non-zero baseline"
    return None


def _judge_figures(kind: str, run: JudgeRun) -> JudgeFigures:
    r = run.result
    fraction = r.details.get("information_fraction") if kind == "histogram" else None
    return JudgeFigures(
        judge=kind,
        estimate=r.estimate,
        ci_low=r.ci_low,
        ci_high=r.ci_high,
        samples=r.samples,
        expected_more=r.expected_more,
        information_fraction=_clean(fraction),
    )


def _judge_message(name: str, kind: str, run: JudgeRun) -> str:
    r = run.result
    if r.decision != "continue":
        return f"{name}: {r.message} ({kind} judge)"
    more = f"about {r.expected_more} more expected" if r.expected_more is not None else "more needed"
    return f"{name}: undecided after {r.samples} samples, {more} ({kind} judge: {r.message})"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class _Metric:
    """One metric's inputs, resolved: the candidate, the baseline arm and how they compare."""

    spec: MetricSpec
    candidate: Measured | None
    supplied: Measured | None  # the baseline mapping's entry
    baseline: Observation | None  # the arm compared against: supplied, else static
    value: float | None
    baseline_value: float | None
    delta: float | None
    classification: Classification | None

    @classmethod
    def resolve(cls, spec: ModelBaselineSpec, metric: MetricSpec, cand_raw: Input, base_raw: Input) -> _Metric:
        candidate, supplied = measured(cand_raw), measured(base_raw)
        baseline = _resolve_baseline(metric, supplied)
        value = candidate.obs.point_value() if candidate is not None else None
        base_value = baseline.point_value() if baseline is not None else None
        delta: float | None = None
        classification: Classification | None = None
        v, b = _finite(value), _finite(base_value)
        if v is not None and b is not None:
            delta = _clean(v - b)
            band = metric.neutral_band if metric.neutral_band is not None else spec.neutral_band
            classification = classify(v, b, metric.direction, band)
        return cls(metric, candidate, supplied, baseline, value, base_value, delta, classification)

    def result(
        self,
        outcome: Outcome,
        message: str,
        severity: Severity | None = None,
        bound: float | None = None,
        judge: JudgeFigures | None = None,
        evidence: RecordedEvidence | None = None,
    ) -> MetricResult:
        threshold = self.spec.threshold
        if bound is None:
            # Until a bound is crossed, show the first one that would fail (the lowest tier).
            bound = threshold.value if threshold.tiers is None else threshold.tiers[0].value
        return MetricResult(
            metric=self.spec.name,
            value=_clean(self.value),
            baseline=_clean(self.baseline_value),
            delta=self.delta,
            classification=self.classification,
            outcome=outcome,
            severity=severity or self.spec.severity,
            threshold=ThresholdSummary(
                type=threshold.type, value=bound, symmetric=True if threshold.symmetric else None
            ),
            message=message,
            judge=judge,
            baseline_evidence=evidence,
        )

    def inconclusive(self, why: str) -> _Checked:
        return _Checked(self.result("inconclusive", f"{self.spec.name}: {why}"))


def _trials(kind: str, obs: Observation) -> float | None:
    """What minSamples counts when no samplesQuery measured it: trials, samples or requests."""
    if kind == "sequential":
        return obs.total
    if kind == "histogram":
        return obs.histogram.pooled()[-1] if obs.histogram is not None and obs.histogram.bounds else None
    return None if obs.series is None else float(len(obs.series))


def _judged(m: _Metric, kind: str, schedule: Schedule) -> _Checked:
    """A live observation judged by a statistical judge."""
    assert m.candidate is not None
    metric, obs = m.spec, m.candidate.obs
    why = _samples_problem(metric, obs, "", _trials(kind, obs))
    if why:
        return m.inconclusive(why)
    if metric.is_live and m.baseline is None:
        return m.inconclusive("baseline missing: no live baseline value for the stable checkpoint")
    try:
        if kind == "sequential":
            run = run_sequential(metric, obs, m.baseline, schedule)
        elif kind == "histogram":
            run = run_histogram(metric, obs, m.baseline, schedule)
        else:
            run = run_mann_whitney(metric, obs, m.baseline, look=schedule.look, max_looks=schedule.planned)
    except (ValueError, ArithmeticError) as e:
        # A configuration the judge cannot work with (e.g. a regression size outside (0, 1) for a rate).
        return m.inconclusive(f"the {kind} judge could not run: {e}")
    if isinstance(run, str):
        return m.inconclusive(run)
    outcome = _DECISION[run.result.decision]
    severity = run.severity if outcome == "failed" else metric.severity
    figures = _judge_figures(kind, run)
    message = _judge_message(metric.name, kind, run)
    checked = m.result(outcome, message, severity, run.bound, figures, run.evidence)
    return _Checked(checked, waiting=outcome == "inconclusive")


def _thresholded(m: _Metric) -> _Checked:
    """A value held against the threshold."""
    assert m.candidate is not None
    metric, threshold = m.spec, m.spec.threshold
    issue = problem(m.value)
    if issue is not None:
        return m.inconclusive(issue)
    assert m.value is not None
    if not m.candidate.offline:
        why = _samples_problem(metric, m.candidate.obs, "")
        if why:
            return m.inconclusive(why)
    compare_to: float | None = None
    if threshold.type in ("delta", "ratio"):
        why = _baseline_problem(metric, m.baseline)
        if why:
            return m.inconclusive(why)
        assert m.baseline is not None
        if m.supplied is not None and not m.supplied.offline and m.baseline.samples is not None:
            why = _samples_problem(metric, m.baseline, "baseline: ")
            if why:
                return m.inconclusive(why)
        compare_to = m.baseline_value
    check = thresholds.check(threshold, metric.direction, metric.severity, m.value, compare_to)
    message = threshold_message(metric.name, threshold, metric.direction, check, m.value, _finite(m.baseline_value))
    return _Checked(m.result("passed" if check.passed else "failed", message, check.severity, check.bound))


def _check_metric(
    spec: ModelBaselineSpec,
    metric: MetricSpec,
    cand_raw: Input,
    base_raw: Input,
    schedule: Schedule,
) -> _Checked:
    m = _Metric.resolve(spec, metric, cand_raw, base_raw)
    # Candidate data problems come first: without a candidate value nothing else matters.
    if m.candidate is None:
        return m.inconclusive("no value for the candidate")
    if m.candidate.obs.error:
        return m.inconclusive(f"could not be measured: {m.candidate.obs.error}")
    kind = metric.judge.type if metric.judge is not None else "threshold"
    # Statistical judges need live sample data; a plain number is a final offline value for the threshold.
    if kind != "threshold" and not m.candidate.offline:
        return _judged(m, kind, schedule)
    return _thresholded(m)


def _verdict(results: list[MetricResult], on_missing: OnMissing) -> Verdict:
    failed = {r.severity for r in results if r.outcome == "failed"}
    missing = {r.severity for r in results if r.outcome == "inconclusive"} if on_missing == "fail" else set()
    if "critical" in failed:
        return "failed"
    if "critical" in missing:
        return "inconclusive"
    if "warning" in failed or "warning" in missing:
        return "warning"
    return "passed"


def _names(results: list[MetricResult]) -> str:
    if not results:
        return ""
    named = [r.metric if r.severity == "critical" else f"{r.metric} [{r.severity}]" for r in results]
    return f" ({', '.join(named)})"


def summarize(results: list[MetricResult]) -> str:
    """``3 passed, 1 failed (accuracy), 0 inconclusive``; non-critical checks carry their severity."""
    passed = [r for r in results if r.outcome == "passed"]
    failed = [r for r in results if r.outcome == "failed"]
    unknown = [r for r in results if r.outcome == "inconclusive"]
    return f"{len(passed)} passed, {len(failed)} failed{_names(failed)}, {len(unknown)} inconclusive{_names(unknown)}"


def evaluate(
    spec: ModelBaselineSpec,
    candidate: Mapping[str, float | Observation | None],
    baseline: Mapping[str, float | Observation | None] | None = None,
    *,
    on_missing: OnMissing | None = None,
    look: int = 1,
    max_looks: int = 1,
    schedule: Schedule | None = None,
) -> ValidationResult:
    """Judge ``candidate`` against ``spec``.

    ``baseline`` holds values of the stable arm: it supplies ``baseline: live`` metrics and overrides
    static baselines, metric by metric (a None entry counts as absent). Plain numbers are final offline
    values; Observations are live measurements, to which minSamples and the statistical judges apply.
    ``schedule`` places this look in its rollout for the judges that spend a false-rollback budget over
    looks (histogram, mannWhitney); ``look`` / ``max_looks`` describe equally spaced looks of one analysis
    when no schedule is given.
    """
    policy: OnMissing = on_missing or spec.on_missing
    supplied = baseline or {}
    plan = schedule or Schedule.of(look, max_looks)
    checked = [_check_metric(spec, m, candidate.get(m.name), supplied.get(m.name), plan) for m in spec.metrics]
    results = [c.result for c in checked]
    verdict = _verdict(results, policy)
    waiting = tuple(c.result.metric for c in checked if c.waiting)
    # Missing data that the verdict counts is a data problem, not a judge waiting for samples.
    data_missing = policy == "fail" and any(
        c.result.outcome == "inconclusive" and not c.waiting and c.result.severity != "info" for c in checked
    )
    return ValidationResult(
        model=spec.model,
        verdict=verdict,
        results=results,
        summary=summarize(results),
        pending=bool(waiting) and verdict != "failed" and not data_missing,
        # A threshold looked at once settles nothing about the next look; only statistical judges accumulate
        # evidence, so only when every metric has one can a pass end an analysis early.
        decided=verdict == "failed"
        or all(
            r.outcome != "inconclusive" and (m.judge is not None and m.judge.type != "threshold")
            for r, m in zip(results, spec.metrics, strict=True)
        ),
        waiting=waiting,
    )
