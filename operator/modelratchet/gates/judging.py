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

from .observation import Observation
from .thresholds import judge_bound

if TYPE_CHECKING:
    from modelratchet.judges import JudgeResult

DEFAULT_MIN_EFFECT = 0.05


@dataclass(frozen=True)
class JudgeRun:
    """A judge's answer, with the bound it tested and the severity a failure carries."""

    result: JudgeResult
    bound: float
    severity: Severity


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
) -> JudgeRun | str:
    """The always-valid sequential test on counts; a string says why it could not run."""
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
        result = judges.sequential_rate(
            candidate_successes=candidate.successes,
            candidate_total=candidate.total,
            baseline_successes=baseline.successes,
            baseline_total=baseline.total,
            direction=metric.direction,
            min_regression=min_regression,
            alpha=metric.judge.alpha,
            beta=metric.judge.beta,
        )
    else:
        result = judges.sequential_rate(
            candidate_successes=candidate.successes,
            candidate_total=candidate.total,
            baseline_rate=rate,
            direction=metric.direction,
            min_regression=min_regression,
            alpha=metric.judge.alpha,
            beta=metric.judge.beta,
        )
    return JudgeRun(result, min_regression, severity)


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
        return "the mannWhitney judge needs the candidate's samples over the window"
    if baseline is None or not baseline.series:
        return "baseline missing: the mannWhitney judge needs the stable checkpoint's samples over the window"
    picked = judge_bound(metric.threshold, metric.severity)
    severity = picked[1] if picked is not None else metric.severity
    if metric.judge.min_effect is not None:
        min_effect = metric.judge.min_effect
    elif metric.threshold.type == "ratio" and picked is not None:
        min_effect = picked[0]
    else:
        min_effect = DEFAULT_MIN_EFFECT

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
