"""Wiring of the statistical judges: what evaluate() asks them and how their answers become checks.

The judges are replaced by a recording stand-in with the same interface, so these tests pin the wiring
(arguments, decisions, pending/decided) independently of the statistics.
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import modelratchet
import modelratchet.judges.buckets as real_buckets
import modelratchet.judges.spending as real_spending
import pytest
from modelratchet.api.baseline import ModelBaselineSpec, Threshold
from modelratchet.api.rollout import MetricResult, RecordedEvidence
from modelratchet.gates import Histogram, Observation, Schedule, evaluate


@dataclass(frozen=True)
class Answer:
    decision: str = "pass"
    estimate: float | None = -0.004
    ci_low: float | None = -0.02
    ci_high: float | None = 0.01
    samples: int = 1000
    expected_more: int | None = None
    message: str = "no regression of 0.03 or more"
    details: dict[str, float] = field(default_factory=dict)


class Judges:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer = Answer()
        self.error: Exception | None = None

    def _called(self, kind: str, kwargs: dict[str, Any]) -> Answer:
        self.calls.append((kind, kwargs))
        if self.error is not None:
            raise self.error
        return self.answer

    def sequential_rate(self, **kwargs: Any) -> Answer:
        return self._called("sequential", kwargs)

    def mann_whitney(self, **kwargs: Any) -> Answer:
        return self._called("mannWhitney", kwargs)

    def histogram(self, **kwargs: Any) -> Answer:
        return self._called("histogram", kwargs)


@pytest.fixture
def judges(monkeypatch: pytest.MonkeyPatch) -> Judges:
    fake = Judges()
    module = types.ModuleType("modelratchet.judges")
    module.sequential_rate = fake.sequential_rate  # type: ignore[attr-defined]
    module.mann_whitney = fake.mann_whitney  # type: ignore[attr-defined]
    module.histogram = fake.histogram  # type: ignore[attr-defined]
    module.per_bucket = real_buckets.per_bucket  # type: ignore[attr-defined]
    module.Counts = real_buckets.Counts  # type: ignore[attr-defined]
    module.JudgeResult = Answer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modelratchet.judges", module)
    monkeypatch.setitem(sys.modules, "modelratchet.judges.spending", real_spending)
    monkeypatch.setattr(modelratchet, "judges", module, raising=False)
    return fake


SEQUENTIAL = {"type": "sequential", "successQuery": "s", "totalQuery": "t"}


def sequential(threshold: dict[str, Any], baseline: Any = 0.92, **extra: Any) -> dict[str, Any]:
    return {"name": "accuracy", "baseline": baseline, "threshold": threshold, "judge": SEQUENTIAL, **extra}


def spec_of(*metrics: dict[str, Any], **fields: Any) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate({"model": "m", "metrics": list(metrics), **fields})


COUNTS = Observation(successes=870, total=1000)


def test_sequential_against_a_static_rate(judges: Judges) -> None:
    metric = sequential({"type": "delta", "value": 0.03})
    metric["judge"] = {**SEQUENTIAL, "alpha": 0.02, "beta": 0.1}
    result = evaluate(spec_of(metric), {"accuracy": COUNTS})
    assert judges.calls == [
        (
            "sequential",
            {
                "candidate_successes": 870,
                "candidate_total": 1000,
                "baseline_rate": 0.92,
                "direction": "higherIsBetter",
                "min_regression": 0.03,
                "alpha": 0.02,
                "beta": 0.1,
            },
        )
    ]
    [r] = result.results
    assert (r.outcome, r.severity, r.value, r.baseline, r.delta) == ("passed", "critical", 0.87, 0.92, -0.05)
    assert r.message == "accuracy: no regression of 0.03 or more (sequential judge)"
    assert r.judge is not None
    assert r.judge.model_dump() == {
        "judge": "sequential",
        "estimate": -0.004,
        "ci_low": -0.02,
        "ci_high": 0.01,
        "samples": 1000,
        "expected_more": None,
        "information_fraction": None,
    }
    assert r.threshold is not None and r.threshold.value == 0.03
    assert (result.verdict, result.pending, result.decided, result.waiting) == ("passed", False, True, ())
    assert result.to_json()["results"][0]["judge"] == {
        "judge": "sequential",
        "estimate": -0.004,
        "ciLow": -0.02,
        "ciHigh": 0.01,
        "samples": 1000,
        "expectedMore": None,
        "informationFraction": None,
    }


def test_sequential_ratio_regression_is_relative_to_the_baseline_rate(judges: Judges) -> None:
    evaluate(spec_of(sequential({"type": "ratio", "value": 0.05}, baseline=0.9)), {"accuracy": COUNTS})
    assert judges.calls[0][1]["min_regression"] == pytest.approx(0.045)


def test_sequential_against_live_counts(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "ratio", "value": 0.1}, baseline="live"))
    evaluate(spec, {"accuracy": COUNTS}, {"accuracy": Observation(successes=900, total=1000)})
    [(_, kwargs)] = judges.calls
    assert kwargs["baseline_successes"] == 900 and kwargs["baseline_total"] == 1000
    assert "baseline_rate" not in kwargs
    assert kwargs["min_regression"] == pytest.approx(0.09)


def test_sequential_against_a_recorded_live_rate(judges: Judges) -> None:
    # After promotion the stable arm is gone; its recorded value stands in as a rate.
    spec = spec_of(sequential({"type": "delta", "value": 0.03}, baseline="live"))
    evaluate(spec, {"accuracy": COUNTS}, {"accuracy": 0.91})
    assert judges.calls[0][1]["baseline_rate"] == 0.91


def test_sequential_without_a_live_baseline_is_inconclusive(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "delta", "value": 0.03}, baseline="live"))
    [r] = evaluate(spec, {"accuracy": COUNTS}).results
    assert (r.outcome, r.message) == (
        "inconclusive",
        "accuracy: baseline missing: no live baseline value for the stable checkpoint",
    )
    assert judges.calls == []


@pytest.mark.parametrize(
    ("threshold", "severity", "bound", "verdict"),
    [
        ({"type": "delta", "value": 0.03}, "critical", 0.03, "failed"),
        (
            {"type": "delta", "tiers": [{"value": 0.01, "severity": "info"}, {"value": 0.03, "severity": "critical"}]},
            "critical",
            0.03,
            "failed",
        ),
        (
            {"type": "delta", "tiers": [{"value": 0.01, "severity": "warning"}, {"value": 0.03, "severity": "info"}]},
            "warning",
            0.01,
            "warning",
        ),
    ],
)
def test_a_fail_decision_fails_with_the_tested_bound(
    judges: Judges, threshold: dict[str, Any], severity: str, bound: float, verdict: str
) -> None:
    judges.answer = Answer(decision="fail", message="regressed by 0.05 (CI 0.04..0.06)")
    result = evaluate(spec_of(sequential(threshold)), {"accuracy": COUNTS})
    [r] = result.results
    assert (r.outcome, r.severity, result.verdict) == ("failed", severity, verdict)
    assert judges.calls[0][1]["min_regression"] == bound
    assert r.threshold is not None and r.threshold.value == bound
    assert result.decided is True  # the judge reached a final decision


def test_a_warning_metric_fails_as_a_warning(judges: Judges) -> None:
    judges.answer = Answer(decision="fail")
    result = evaluate(spec_of(sequential({"type": "delta", "value": 0.03}, severity="warning")), {"accuracy": COUNTS})
    assert (result.results[0].severity, result.verdict) == ("warning", "warning")


CONTINUE = Answer(decision="continue", samples=120, expected_more=400, estimate=-0.01, message="undecided")


def test_continue_is_pending_not_missing_data(judges: Judges) -> None:
    judges.answer = CONTINUE
    result = evaluate(spec_of(sequential({"type": "delta", "value": 0.03})), {"accuracy": COUNTS})
    [r] = result.results
    assert (r.outcome, r.severity) == ("inconclusive", "critical")
    assert r.message == "accuracy: undecided after 120 samples, about 400 more expected (sequential judge: undecided)"
    assert r.judge is not None and (r.judge.samples, r.judge.expected_more) == (120, 400)
    assert (result.verdict, result.pending, result.decided, result.waiting) == (
        "inconclusive",
        True,
        False,
        ("accuracy",),
    )


def test_continue_without_an_estimate_of_samples(judges: Judges) -> None:
    judges.answer = Answer(decision="continue", samples=50, expected_more=None, message="undecided")
    [r] = evaluate(spec_of(sequential({"type": "delta", "value": 0.03})), {"accuracy": COUNTS}).results
    assert r.message == "accuracy: undecided after 50 samples, more needed (sequential judge: undecided)"


LOSS = {"name": "loss", "direction": "lowerIsBetter", "threshold": {"type": "max", "value": 0.5}}


@pytest.mark.parametrize(
    ("loss_severity", "loss", "on_missing", "verdict", "pending", "decided"),
    [
        ("critical", 0.4, "fail", "inconclusive", True, False),  # only the judge is waiting
        ("critical", None, "fail", "inconclusive", False, False),  # a data problem too: not merely pending
        ("warning", None, "fail", "inconclusive", False, False),
        ("info", None, "fail", "inconclusive", True, False),  # missing info data does not count
        ("critical", None, "ignore", "passed", True, False),
        ("critical", 0.6, "fail", "failed", False, True),  # a critical failure settles it
        ("warning", 0.6, "fail", "inconclusive", True, False),
    ],
)
def test_pending_and_decided(
    judges: Judges,
    loss_severity: str,
    loss: float | None,
    on_missing: Any,
    verdict: str,
    pending: bool,
    decided: bool,
) -> None:
    judges.answer = CONTINUE
    spec = spec_of(sequential({"type": "delta", "value": 0.03}), {**LOSS, "severity": loss_severity})
    result = evaluate(spec, {"accuracy": COUNTS, "loss": loss}, on_missing=on_missing)
    assert (result.verdict, result.pending, result.decided) == (verdict, pending, decided)


def test_sequential_needs_counts(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "delta", "value": 0.03}))
    for obs in (Observation(value=0.9), Observation(successes=870), Observation(successes=870, total=float("nan"))):
        [r] = evaluate(spec, {"accuracy": obs}).results
        assert (r.outcome, r.message) == (
            "inconclusive",
            "accuracy: the sequential judge needs the candidate's success and total counts",
        )
    assert judges.calls == []


def test_sequential_judge_needs_a_delta_or_ratio_threshold(judges: Judges) -> None:
    with pytest.raises(ValueError, match="accuracy: a sequential judge needs a delta or ratio threshold"):
        spec_of(sequential({"type": "min", "value": 0.9}))
    # Should such a spec get past validation, the check is inconclusive, not a crash or a pass.
    spec = spec_of(sequential({"type": "delta", "value": 0.03}))
    metric = spec.metrics[0].model_copy(update={"threshold": Threshold(type="min", value=0.9)})
    [r] = evaluate(spec.model_copy(update={"metrics": [metric]}), {"accuracy": COUNTS}).results
    assert (r.outcome, r.message) == (
        "inconclusive",
        "accuracy: the sequential judge needs a delta or ratio threshold, not min",
    )


def test_mann_whitney_judge_needs_a_live_baseline() -> None:
    with pytest.raises(ValueError, match="latency: a mannWhitney judge compares with the stable checkpoint: it needs"):
        spec_of({**latency({"type": "ratio", "value": 0.2}), "baseline": 0.02})


def test_offline_numbers_use_the_threshold(judges: Judges) -> None:
    # `modelratchet check` has final values, not counts: the threshold decides.
    [r] = evaluate(spec_of(sequential({"type": "delta", "value": 0.03})), {"accuracy": 0.87}).results
    assert (r.outcome, r.judge) == ("failed", None)
    assert r.message == "accuracy: dropped 0.05 from 0.92, beyond 0.03 (delta)"
    assert judges.calls == []


@pytest.mark.parametrize(("total", "called"), [(50, False), (99, False), (100, True), (150, True)])
def test_min_samples_counts_the_trials(judges: Judges, total: float, called: bool) -> None:
    metric = sequential({"type": "delta", "value": 0.03}, minSamples=100, samplesQuery="sum(x)")
    [r] = evaluate(spec_of(metric), {"accuracy": Observation(successes=total * 0.9, total=total)}).results
    assert bool(judges.calls) is called
    if not called:
        assert r.message == f"accuracy: only {total} samples, minSamples is 100"


def test_candidate_error_skips_the_judge(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "delta", "value": 0.03}))
    [r] = evaluate(spec, {"accuracy": Observation(error="no data")}).results
    assert (r.outcome, r.message, judges.calls) == ("inconclusive", "accuracy: could not be measured: no data", [])


def test_judge_rejecting_its_inputs_is_inconclusive(judges: Judges) -> None:
    judges.error = ValueError("successes exceed total")
    [r] = evaluate(spec_of(sequential({"type": "delta", "value": 0.03})), {"accuracy": COUNTS}).results
    assert (r.outcome, r.message) == (
        "inconclusive",
        "accuracy: the sequential judge could not run: successes exceed total",
    )


def latency(threshold: dict[str, Any], **judge: Any) -> dict[str, Any]:
    return {
        "name": "latency",
        "direction": "lowerIsBetter",
        "baseline": "live",
        "threshold": threshold,
        "judge": {"type": "mannWhitney", **judge},
    }


FAST = Observation(series=(0.03, 0.01, 0.02))
SLOW = Observation(series=(0.05, 0.04, 0.06, 0.07))


@pytest.mark.parametrize(
    ("threshold", "judge", "min_effect"),
    [
        ({"type": "ratio", "value": 0.2}, {"minEffect": 0.1}, 0.1),
        ({"type": "ratio", "value": 0.2}, {}, 0.2),
        (
            {"type": "ratio", "tiers": [{"value": 0.1, "severity": "warning"}, {"value": 0.3, "severity": "critical"}]},
            {},
            0.3,
        ),
        ({"type": "delta", "value": 0.01}, {}, 0.05),
        ({"type": "max", "value": 0.1}, {}, 0.05),
    ],
)
def test_mann_whitney_arguments(
    judges: Judges, threshold: dict[str, Any], judge: dict[str, Any], min_effect: float
) -> None:
    result = evaluate(spec_of(latency(threshold, **judge)), {"latency": SLOW}, {"latency": FAST}, look=3, max_looks=10)
    assert judges.calls == [
        (
            "mannWhitney",
            {
                "candidate": [0.05, 0.04, 0.06, 0.07],
                "baseline": [0.03, 0.01, 0.02],
                "direction": "lowerIsBetter",
                "min_effect": min_effect,
                "alpha": 0.01,
                "look": 3,
                "max_looks": 10,
            },
        )
    ]
    [r] = result.results
    assert (r.value, r.baseline, r.outcome) == (0.055, 0.02, "passed")  # medians of the series
    assert r.judge is not None and r.judge.judge == "mannWhitney"


def test_mann_whitney_needs_both_series(judges: Judges) -> None:
    spec = spec_of(latency({"type": "ratio", "value": 0.2}))
    no_candidate = evaluate(spec, {"latency": Observation(value=0.05)}, {"latency": FAST}).results[0]
    assert no_candidate.message == "latency: the mannWhitney judge needs the candidate's per-request samples"
    no_baseline = evaluate(spec, {"latency": SLOW}, {"latency": Observation(value=0.02)}).results[0]
    assert no_baseline.message == (
        "latency: baseline missing: the mannWhitney judge needs the stable checkpoint's per-request samples"
    )
    assert [no_candidate.outcome, no_baseline.outcome] == ["inconclusive", "inconclusive"]
    assert judges.calls == []


@pytest.mark.parametrize(
    ("candidate", "baseline", "message"),
    [
        (Observation(successes=30, total=20), None, "inconsistent counts for the candidate: 30 successes out of 20"),
        (Observation(successes=-1, total=20), None, "inconsistent counts for the candidate: -1 successes out of 20"),
        (COUNTS, Observation(successes=5, total=4), "inconsistent counts for the baseline: 5 successes out of 4"),
    ],
)
def test_inconsistent_counts_are_a_data_problem(
    judges: Judges, candidate: Observation, baseline: Observation | None, message: str
) -> None:
    spec = spec_of(sequential({"type": "delta", "value": 0.03}, baseline="live" if baseline else 0.92))
    result = evaluate(spec, {"accuracy": candidate}, {"accuracy": baseline} if baseline else None)
    assert (result.results[0].outcome, result.results[0].message) == ("inconclusive", f"accuracy: {message}")
    assert (result.pending, judges.calls) == (False, [])


def test_a_stable_arm_without_samples_yet_is_pending(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "ratio", "value": 0.05}, baseline="live"))
    result = evaluate(
        spec, {"accuracy": Observation(successes=3, total=4)}, {"accuracy": Observation(successes=0, total=0)}
    )
    assert result.results[0].message == (
        "accuracy: undecided after 4 samples, more needed (sequential judge: the stable checkpoint has no samples yet)"
    )
    assert (result.verdict, result.pending, judges.calls) == ("inconclusive", True, [])


# ------------------------------------------------------------------------------------ the real judges

REAL = spec_of(
    {**sequential({"type": "delta", "value": 0.03}, baseline="live"), "name": "accuracy"},
    latency({"type": "ratio", "value": 0.2}),
)
FAST_60 = Observation(series=tuple(0.020 + 0.0001 * (i % 7) for i in range(60)))
SLOW_60 = Observation(series=tuple(0.030 + 0.0001 * (i % 7) for i in range(60)))


def test_real_judges_catch_an_obvious_regression() -> None:
    result = evaluate(
        REAL,
        {"accuracy": Observation(successes=700, total=1000), "latency": SLOW_60},
        {"accuracy": Observation(successes=920, total=1000), "latency": FAST_60},
    )
    assert [r.outcome for r in result.results] == ["failed", "failed"]
    assert (result.verdict, result.decided, result.pending) == ("failed", True, False)
    assert all(r.judge is not None and r.judge.samples for r in result.results)


def test_real_judges_pass_a_clear_non_regression() -> None:
    result = evaluate(
        REAL,
        {"accuracy": Observation(successes=9200, total=10000), "latency": FAST_60},
        {"accuracy": Observation(successes=9210, total=10000), "latency": FAST_60},
    )
    assert [r.outcome for r in result.results] == ["passed", "passed"]
    assert (result.verdict, result.decided) == ("passed", True)


def test_real_sequential_judge_waits_for_samples() -> None:
    result = evaluate(
        REAL,
        {"accuracy": Observation(successes=18, total=20), "latency": FAST_60},
        {"accuracy": Observation(successes=19, total=20), "latency": FAST_60},
    )
    [accuracy, _] = result.results
    assert accuracy.outcome == "inconclusive"
    assert accuracy.judge is not None and accuracy.judge.expected_more is not None and accuracy.judge.expected_more > 0
    assert (result.verdict, result.pending, result.decided, result.waiting) == (
        "inconclusive",
        True,
        False,
        ("accuracy",),
    )


# ------------------------------------------------------------------------------------ histogram judge wiring

INF = math.inf


def histogram_metric(**judge: Any) -> dict[str, Any]:
    return {
        "name": "latency",
        "direction": "lowerIsBetter",
        "baseline": "live",
        "threshold": {"type": "ratio", "value": 0.1},
        "judge": {"type": "histogram", "bucketQuery": "q", **judge},
    }


# The candidate has an extra bucket (0.2) the stable checkpoint lacks; their windows overlap at t = 30 and 60 only.
CANDIDATE_H = Histogram(
    bounds=(0.1, 0.2, 0.5, INF),
    times=(30.0, 60.0, 90.0),
    windows=((2, 3, 5, 6), (1, 1, 4, 4), (9, 9, 9, 9)),
    step=30.0,
)
STABLE_H = Histogram(
    bounds=(0.1, 0.5, INF), times=(0.0, 30.0, 60.0), windows=((7, 7, 7), (20, 40, 45), (10, 30, 30)), step=30.0
)


def test_histogram_judge_gets_aligned_windows_on_shared_buckets(judges: Judges) -> None:
    schedule = Schedule(look=7, planned=20, final=False, ahead=12.0, interval_seconds=15.0, share=(0.25, 1.0))
    result = evaluate(
        spec_of(histogram_metric()),
        {"latency": Observation(histogram=CANDIDATE_H)},
        {"latency": Observation(histogram=STABLE_H)},
        schedule=schedule,
    )
    [(kind, kwargs)] = judges.calls
    assert kind == "histogram"
    assert kwargs == {
        "bounds": [0.1, 0.5, INF],  # the 0.2 bucket folds into the next one both arms share
        "candidate": [(2.0, 3.0, 1.0), (1.0, 3.0, 0.0)],
        "baseline": [(20.0, 20.0, 5.0), (10.0, 20.0, 0.0)],
        "direction": "lowerIsBetter",
        "min_effect": 0.1,
        "alpha": 0.01,
        "frozen_baseline": False,
        "ahead": 6.0,  # 12 intervals of 15 s are 6 windows of 30 s
        "final": False,
        "span": (0.25, 1.0),
    }
    [r] = result.results
    # The value shown is Prometheus's histogram_quantile(0.5) of all the candidate's windows: 9.5 of 19 in le=0.1.
    assert r.value == pytest.approx(0.1 * 9.5 / 12) and r.judge is not None
    assert r.baseline_evidence == RecordedEvidence(bounds=[0.1, 0.5], counts=[30.0, 40.0, 5.0])


def test_histogram_judge_refuses_extrapolated_counts(judges: Judges) -> None:
    extrapolated = Histogram(bounds=(0.1, INF), times=(30.0,), windows=((1.2, 3.6),), step=30.0)
    stable = Histogram(bounds=(0.1, INF), times=(30.0,), windows=((1.0, 3.0),), step=30.0)
    [r] = evaluate(
        spec_of(histogram_metric()),
        {"latency": Observation(histogram=extrapolated)},
        {"latency": Observation(histogram=stable)},
    ).results
    assert r.outcome == "inconclusive" and "not whole numbers" in r.message
    assert judges.calls == []


def test_histogram_judge_needs_the_inf_bucket_in_both_arms(judges: Judges) -> None:
    cut = Histogram(bounds=(0.1, 0.5), times=(30.0,), windows=((1.0, 3.0),), step=30.0)
    [r] = evaluate(
        spec_of(histogram_metric(minEffect=0.02)),
        {"latency": Observation(histogram=CANDIDATE_H)},
        {"latency": Observation(histogram=cut)},
    ).results
    assert r.outcome == "inconclusive" and 'le="+Inf"' in r.message
    assert judges.calls == []


def test_histogram_judge_against_recorded_counts_after_promotion(judges: Judges) -> None:
    from modelratchet.analysis import recorded_observation

    recorded = MetricResult(
        metric="latency",
        baseline=0.2,
        outcome="passed",
        severity="critical",
        baseline_evidence=RecordedEvidence(bounds=[0.1, 0.5], counts=[30.0, 40.0, 5.0]),
    )
    base = recorded_observation(recorded)
    assert base is not None and base.frozen
    [r] = evaluate(
        spec_of(histogram_metric(minEffect=0.02)), {"latency": Observation(histogram=CANDIDATE_H)}, {"latency": base}
    ).results
    [(_, kwargs)] = judges.calls
    # Every candidate window (no alignment needed), against one row of frozen counts.
    assert kwargs["frozen_baseline"] is True and kwargs["min_effect"] == 0.02
    assert kwargs["baseline"] == [(30.0, 40.0, 5.0)]
    assert kwargs["candidate"] == [(2.0, 3.0, 1.0), (1.0, 3.0, 0.0), (9.0, 0.0, 0.0)]
    assert r.baseline_evidence is None  # recorded evidence is not recorded again


def test_static_baseline_with_evidence_is_a_frozen_two_sample_arm(judges: Judges) -> None:
    metric = sequential({"type": "delta", "value": 0.03}, baseline=0.92, baselineEvidence={"samples": 2000})
    evaluate(spec_of(metric), {"accuracy": COUNTS})
    [(_, kwargs)] = judges.calls
    assert kwargs["baseline_successes"] == pytest.approx(1840.0) and kwargs["baseline_total"] == 2000.0
    assert kwargs["frozen_baseline"] is True and "baseline_rate" not in kwargs


def test_static_baseline_declared_exact_is_a_known_rate(judges: Judges) -> None:
    metric = sequential({"type": "delta", "value": 0.03}, baseline=0.92, baselineEvidence={"exact": True})
    evaluate(spec_of(metric), {"accuracy": COUNTS})
    assert judges.calls[0][1]["baseline_rate"] == 0.92


def test_recorded_counts_replace_the_recorded_point_after_promotion(judges: Judges) -> None:
    from modelratchet.analysis import recorded_observation

    recorded = MetricResult(
        metric="accuracy",
        baseline=0.9,
        outcome="passed",
        severity="critical",
        baseline_evidence=RecordedEvidence(successes=900.0, total=1000.0),
    )
    spec = spec_of(sequential({"type": "delta", "value": 0.03}, baseline="live"))
    evaluate(spec, {"accuracy": COUNTS}, {"accuracy": recorded_observation(recorded)})
    [(_, kwargs)] = judges.calls
    assert (kwargs["baseline_successes"], kwargs["baseline_total"], kwargs["frozen_baseline"]) == (900.0, 1000.0, True)
    # An entry recorded before counts were kept still works, as a point.
    old = recorded.model_copy(update={"baseline_evidence": None})
    assert recorded_observation(old) == Observation(value=0.9)


def test_live_counts_are_recorded_as_evidence(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "delta", "value": 0.03}, baseline="live"))
    [r] = evaluate(spec, {"accuracy": COUNTS}, {"accuracy": Observation(successes=900, total=1000)}).results
    assert r.baseline_evidence == RecordedEvidence(successes=900, total=1000)


def test_a_windows_share_of_the_budget_lowers_the_sequential_judges_alpha(judges: Judges) -> None:
    spec = spec_of(sequential({"type": "delta", "value": 0.03}))
    evaluate(spec, {"accuracy": COUNTS}, schedule=Schedule(share=(0.0, 0.5)))
    evaluate(spec, {"accuracy": COUNTS}, schedule=Schedule(share=(0.5, 1.0)))
    first, second = (kw["alpha"] for _, kw in judges.calls)
    assert first + second == pytest.approx(0.01)
    assert first == pytest.approx(real_spending.spent(0.01, 0.5))


def test_real_histogram_judge_catches_a_slower_candidate() -> None:
    slow = Histogram(bounds=(0.05, 0.1, 0.25, INF), times=(30.0,), windows=((10, 60, 380, 400),), step=30.0)
    fast = Histogram(bounds=(0.05, 0.1, 0.25, INF), times=(30.0,), windows=((80, 220, 390, 400),), step=30.0)
    spec = spec_of(histogram_metric())
    [r] = evaluate(spec, {"latency": Observation(histogram=slow)}, {"latency": Observation(histogram=fast)}).results
    assert r.outcome == "failed" and r.judge is not None and r.judge.judge == "histogram"
    assert r.judge.estimate is not None and r.judge.estimate > 0.1
    assert r.judge.information_fraction == pytest.approx(1.0)


def test_a_bucket_layout_too_large_for_the_status_records_no_counts(judges: Judges) -> None:
    bounds = (*(0.001 * (i + 1) for i in range(70)), INF)
    many = Histogram(bounds=bounds, times=(30.0,), windows=(tuple(float(i) for i in range(71)),), step=30.0)
    [r] = evaluate(
        spec_of(histogram_metric()), {"latency": Observation(histogram=many)}, {"latency": Observation(histogram=many)}
    ).results
    assert judges.calls and r.outcome == "passed" and r.baseline_evidence is None
