"""Wiring of the statistical judges (``modelratchet.judges``) into a check.

The judges module is imported on first use only: it needs scipy, which the offline ``check`` path
never loads unless a metric actually runs a statistical judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelratchet.api.baseline import MetricSpec
from modelratchet.api.common import Severity
from modelratchet.api.rollout import RecordedEvidence

from .observation import Histogram, Observation, Schedule
from .thresholds import judge_bound

if TYPE_CHECKING:
    from modelratchet.judges import JudgeResult

DEFAULT_MIN_EFFECT = 0.05
MAX_RECORDED_BUCKETS = 64  # RecordedEvidence.bounds' limit


@dataclass(frozen=True)
class JudgeRun:
    """A judge's answer, with the bound it tested, the severity a failure carries, and the baseline's counts."""

    result: JudgeResult
    bound: float
    severity: Severity
    evidence: RecordedEvidence | None = None  # the live baseline arm's counts, for a later judge to weigh


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _count_problem(obs: Observation, arm: str) -> str | None:
    assert obs.successes is not None and obs.total is not None
    if obs.successes < 0 or obs.total < 0 or obs.successes > obs.total:
        return f"inconsistent counts for the {arm}: {obs.successes:g} successes out of {obs.total:g}"
    return None


def run_sequential(
    metric: MetricSpec,
    candidate: Observation,
    baseline: Observation | None,
    schedule: Schedule | None = None,
) -> JudgeRun | str:
    """The always-valid sequential test on counts; a string says why it could not run.

    It is valid at every look of its window; when a rollout judges several windows apart it runs at the
    window's share of alpha (``schedule.share``), so the windows together keep the rollout's.
    """
    assert metric.judge is not None
    if not _finite(candidate.successes, candidate.total):
        return "the sequential judge needs the candidate's success and total counts"
    assert candidate.successes is not None and candidate.total is not None
    picked = judge_bound(metric.threshold, metric.severity)
    if picked is None:
        return f"the sequential judge needs a delta or ratio threshold, not {metric.threshold.type}"
    bound, severity = picked
    problem = _count_problem(candidate, "candidate")
    if problem:
        return problem

    # Counts of the stable arm when it was measured live; else its rate (a static or recorded value).
    base_counts = baseline is not None and _finite(baseline.successes, baseline.total)
    if base_counts:
        assert baseline is not None
        problem = _count_problem(baseline, "baseline")
        if problem:
            return problem
    rate = baseline.point_value() if baseline is not None else None

    from modelratchet import judges

    alpha = metric.judge.alpha
    share = schedule.share if schedule is not None else (0.0, 1.0)
    if share != (0.0, 1.0):
        from modelratchet.judges.spending import spent_in

        alpha = spent_in(alpha, share, 1.0)
    if not alpha > 0.0:
        return "this window has no share of the false-rollback budget (no information planned in it)"

    if rate is None or not math.isfinite(rate):
        if not base_counts:
            return "baseline missing: the sequential judge needs the baseline's rate or counts"
        # Live counts without a single trial yet: wait for the stable checkpoint, like for the candidate.
        waiting = judges.JudgeResult(
            decision="continue",
            estimate=None,
            ci_low=None,
            ci_high=None,
            samples=int(candidate.total),
            expected_more=None,
            message="the stable checkpoint has no samples yet",
        )
        return JudgeRun(waiting, bound, severity)
    min_regression = bound if metric.threshold.type == "delta" else bound * abs(rate)

    if base_counts:
        assert baseline is not None and baseline.successes is not None and baseline.total is not None
        kwargs = {"frozen_baseline": True} if baseline.frozen else {}
        result = judges.sequential_rate(
            candidate_successes=candidate.successes,
            candidate_total=candidate.total,
            baseline_successes=baseline.successes,
            baseline_total=baseline.total,
            direction=metric.direction,
            min_regression=min_regression,
            alpha=alpha,
            beta=metric.judge.beta,
            **kwargs,
        )
        if not baseline.frozen:
            evidence = RecordedEvidence(successes=baseline.successes, total=baseline.total)
            return JudgeRun(result, min_regression, severity, evidence)
    else:
        result = judges.sequential_rate(
            candidate_successes=candidate.successes,
            candidate_total=candidate.total,
            baseline_rate=rate,
            direction=metric.direction,
            min_regression=min_regression,
            alpha=alpha,
            beta=metric.judge.beta,
        )
    return JudgeRun(result, min_regression, severity)


def _min_effect(metric: MetricSpec) -> tuple[float, Severity]:
    """The relative effect a rank judge must see to fail, and the severity of its failure."""
    assert metric.judge is not None
    picked = judge_bound(metric.threshold, metric.severity)
    severity = picked[1] if picked is not None else metric.severity
    if metric.judge.min_effect is not None:
        return metric.judge.min_effect, severity
    if metric.threshold.type == "ratio" and picked is not None:
        return picked[0], severity
    return DEFAULT_MIN_EFFECT, severity


def _shared_bounds(a: Histogram, b: Histogram) -> list[int] | str:
    """Indices into ``a.bounds`` of the ``le`` values both arms have (coarser buckets, if their layouts differ)."""
    common = set(a.bounds) & set(b.bounds)
    if math.inf not in common:
        return 'a histogram needs its le="+Inf" bucket (all requests) in both arms'
    keep = [i for i, x in enumerate(a.bounds) if x in common]
    if len(keep) < 2:
        return "the two arms' histograms share no finite bucket bound (le)"
    return keep


def run_histogram(
    metric: MetricSpec, candidate: Observation, baseline: Observation | None, schedule: Schedule
) -> JudgeRun | str:
    """The stratified rank tests on bucket counts per window; a string says why they could not run."""
    assert metric.judge is not None
    cand = candidate.histogram
    if cand is None:
        return "the histogram judge needs the candidate's bucket counts over the rollout's windows"
    if baseline is None or baseline.histogram is None:
        return "baseline missing: the histogram judge needs the stable checkpoint's bucket counts"
    base = baseline.histogram
    keep = _shared_bounds(cand, base)
    if isinstance(keep, str):
        return keep
    bounds = [cand.bounds[i] for i in keep]
    base_keep = [base.bounds.index(x) for x in bounds]

    from modelratchet import judges

    def rows(h: Histogram, idx: list[int], w: int) -> judges.Counts | str:
        return judges.per_bucket(bounds, [[h.windows[w][i] for i in idx]])

    cand_rows: list[tuple[float, ...]] = []
    base_rows: list[tuple[float, ...]] = []
    dropped = 0
    if baseline.frozen:
        for w in range(len(cand.windows)):
            got = rows(cand, keep, w)
            if isinstance(got, str):
                return got
            cand_rows += got.rows
            dropped += got.dropped
        recorded = rows(base, base_keep, 0)
        if isinstance(recorded, str):
            return recorded
        if not recorded.rows:
            return "the recorded baseline's bucket counts are inconsistent"
        base_rows = list(recorded.rows)
    else:
        at = {t: i for i, t in enumerate(base.times)}
        for w, t in enumerate(cand.times):
            if t not in at:
                continue
            c, b = rows(cand, keep, w), rows(base, base_keep, at[t])
            if isinstance(c, str):
                return c
            if isinstance(b, str):
                return f"stable checkpoint: {b}"
            if c.rows and b.rows:
                cand_rows += c.rows
                base_rows += b.rows
            else:
                dropped += 1
    if not cand_rows:
        return "no window has bucket counts of both checkpoints yet"
    min_effect, severity = _min_effect(metric)
    result = judges.histogram(
        bounds=bounds,
        candidate=cand_rows,
        baseline=base_rows,
        direction=metric.direction,
        min_effect=min_effect,
        alpha=metric.judge.alpha,
        frozen_baseline=baseline.frozen,
        ahead=schedule.ahead_windows(cand.step),
        final=schedule.final,
        span=schedule.share,
    )
    if dropped:
        result.details["dropped_windows"] = float(dropped)
    evidence = None
    finite = [x for x in bounds if math.isfinite(x)]
    # Kept for the post-promotion watch; a layout too large for the status keeps only the recorded value.
    if not baseline.frozen and len(finite) <= MAX_RECORDED_BUCKETS:
        totals = [math.fsum(r[j] for r in base_rows) for j in range(len(bounds))]
        evidence = RecordedEvidence(bounds=finite, counts=totals)
    return JudgeRun(result, min_effect, severity, evidence)


def run_mann_whitney(
    metric: MetricSpec,
    candidate: Observation,
    baseline: Observation | None,
    *,
    look: int,
    max_looks: int,
) -> JudgeRun | str:
    """The rank test of candidate vs stable samples; a string says why it could not run."""
    assert metric.judge is not None
    if not candidate.series:
        return "the mannWhitney judge needs the candidate's per-request samples"
    if baseline is None or not baseline.series:
        return "baseline missing: the mannWhitney judge needs the stable checkpoint's per-request samples"
    min_effect, severity = _min_effect(metric)

    from modelratchet import judges

    result = judges.mann_whitney(
        candidate=list(candidate.series),
        baseline=list(baseline.series),
        direction=metric.direction,
        min_effect=min_effect,
        alpha=metric.judge.alpha,
        look=look,
        max_looks=max_looks,
    )
    return JudgeRun(result, min_effect, severity)
