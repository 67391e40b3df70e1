"""Every threshold type x direction x severity, boundaries (inclusive, rounding-tolerant) and tiers."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec, Threshold
from modelratchet.gates import Observation, ValidationResult, evaluate
from modelratchet.gates.thresholds import check, judge_bound, worsening


def judge_one(
    metric: dict[str, Any], value: float | Observation | None, baseline: float | None = None, name: str = "x"
) -> ValidationResult:
    spec = ModelBaselineSpec.model_validate({"model": "m", "metrics": [{"name": name, **metric}]})
    return evaluate(spec, {name: value}, None if baseline is None else {name: baseline})


# (threshold, direction, static baseline, value, expected outcome)
CASES = [
    # min: value >= threshold; direction does not matter
    ({"type": "min", "value": 0.9}, "higherIsBetter", None, 0.95, "passed"),
    ({"type": "min", "value": 0.9}, "higherIsBetter", None, 0.9, "passed"),
    ({"type": "min", "value": 0.9}, "higherIsBetter", None, 0.8999, "failed"),
    ({"type": "min", "value": 0.9}, "lowerIsBetter", None, 0.8999, "failed"),
    ({"type": "min", "value": 0.9}, "lowerIsBetter", None, 0.95, "passed"),
    ({"type": "min", "value": 0.3}, "higherIsBetter", None, 0.7 - 0.4, "passed"),  # 0.29999999999999993
    ({"type": "min", "value": -1}, "higherIsBetter", None, -1.5, "failed"),
    ({"type": "min", "value": 0}, "higherIsBetter", None, 0.0, "passed"),
    # max: value <= threshold
    ({"type": "max", "value": 0.5}, "lowerIsBetter", 0.45, 0.43, "passed"),
    ({"type": "max", "value": 0.5}, "lowerIsBetter", 0.45, 0.5, "passed"),
    ({"type": "max", "value": 0.5}, "lowerIsBetter", 0.45, 0.5001, "failed"),
    ({"type": "max", "value": 0.5}, "higherIsBetter", None, 0.5001, "failed"),
    ({"type": "max", "value": 0.3}, "lowerIsBetter", None, 0.1 + 0.2, "passed"),  # 0.30000000000000004
    ({"type": "max", "value": 0}, "lowerIsBetter", None, 0.0001, "failed"),
    # delta, higherIsBetter: baseline - value <= threshold
    ({"type": "delta", "value": 0.05}, "higherIsBetter", 0.92, 0.95, "passed"),
    ({"type": "delta", "value": 0.05}, "higherIsBetter", 0.92, 0.90, "passed"),
    ({"type": "delta", "value": 0.05}, "higherIsBetter", 0.92, 0.87, "passed"),  # 0.92-0.87 = 0.05000000000000004
    ({"type": "delta", "value": 0.05}, "higherIsBetter", 0.92, 0.8699, "failed"),
    ({"type": "delta", "value": 0.05}, "higherIsBetter", 0.92, 0.5, "failed"),
    ({"type": "delta", "value": 0}, "higherIsBetter", 0.92, 0.92, "passed"),
    ({"type": "delta", "value": 0}, "higherIsBetter", 0.92, 0.9199, "failed"),
    # delta, lowerIsBetter: value - baseline <= threshold
    ({"type": "delta", "value": 0.05}, "lowerIsBetter", 0.45, 0.50, "passed"),  # exactly at the threshold
    ({"type": "delta", "value": 0.05}, "lowerIsBetter", 0.45, 0.5001, "failed"),
    ({"type": "delta", "value": 0.05}, "lowerIsBetter", 0.45, 0.40, "passed"),
    ({"type": "delta", "value": 0.05}, "lowerIsBetter", 0.45, 0.10, "passed"),
    ({"type": "delta", "value": 0.05}, "lowerIsBetter", 0.87, 0.92, "passed"),  # rounds up to 0.05000000000000004
    # symmetric delta: abs(value - baseline) <= threshold, in both directions, whatever the direction
    ({"type": "delta", "value": 0.2, "symmetric": True}, "lowerIsBetter", 1.568, 1.52, "passed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "lowerIsBetter", 1.568, 1.768, "passed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "lowerIsBetter", 1.568, 1.368, "passed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "lowerIsBetter", 1.568, 1.7681, "failed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "lowerIsBetter", 1.568, 1.3679, "failed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "higherIsBetter", 3.1, 3.4, "failed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "higherIsBetter", 3.1, 2.8, "failed"),
    ({"type": "delta", "value": 0.2, "symmetric": True}, "higherIsBetter", 3.1, 3.3, "passed"),
    # ratio, higherIsBetter: value / baseline >= 1 - threshold
    ({"type": "ratio", "value": 0.05}, "higherIsBetter", 0.92, 0.95, "passed"),
    ({"type": "ratio", "value": 0.05}, "higherIsBetter", 0.92, 0.90, "passed"),
    ({"type": "ratio", "value": 0.05}, "higherIsBetter", 0.92, 0.874, "passed"),  # exactly 5% below
    ({"type": "ratio", "value": 0.05}, "higherIsBetter", 0.92, 0.8739, "failed"),
    ({"type": "ratio", "value": 0.05}, "higherIsBetter", 0.92, 0.87, "failed"),
    ({"type": "ratio", "value": 0.05}, "higherIsBetter", 100, 95, "passed"),
    ({"type": "ratio", "value": 0.1}, "higherIsBetter", -10, -10.5, "passed"),  # negative baseline: 5% worse
    ({"type": "ratio", "value": 0.1}, "higherIsBetter", -10, -11.5, "failed"),  # 15% worse
    ({"type": "ratio", "value": 0.1}, "higherIsBetter", -10, -5, "passed"),  # better
    # ratio, lowerIsBetter: value / baseline <= 1 + threshold
    ({"type": "ratio", "value": 0.1}, "lowerIsBetter", 0.2, 0.22, "passed"),  # exactly 10% above
    ({"type": "ratio", "value": 0.1}, "lowerIsBetter", 0.2, 0.2201, "failed"),
    ({"type": "ratio", "value": 0.1}, "lowerIsBetter", 0.2, 0.1, "passed"),
    ({"type": "ratio", "value": 0.1}, "lowerIsBetter", 0.2, 0.4, "failed"),
]


@pytest.mark.parametrize(("threshold", "direction", "baseline", "value", "outcome"), CASES)
@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_threshold_outcome_severity_and_verdict(
    threshold: dict[str, Any], direction: str, baseline: float | None, value: float, outcome: str, severity: str
) -> None:
    metric: dict[str, Any] = {"threshold": threshold, "direction": direction, "severity": severity}
    if baseline is not None:
        metric["baseline"] = baseline
    result = judge_one(metric, value)
    [r] = result.results
    assert (r.outcome, r.severity) == (outcome, severity)
    expected_verdict = {"critical": "failed", "warning": "warning", "info": "passed"}[severity]
    assert result.verdict == (expected_verdict if outcome == "failed" else "passed")
    assert r.threshold is not None
    assert (r.threshold.type, r.threshold.value) == (threshold["type"], threshold["value"])
    assert r.threshold.symmetric == (True if threshold.get("symmetric") else None)


@pytest.mark.parametrize(
    ("kind", "direction", "symmetric", "value", "baseline", "expected"),
    [
        ("delta", "higherIsBetter", False, 0.87, 0.92, 0.05),
        ("delta", "higherIsBetter", False, 0.95, 0.92, -0.03),
        ("delta", "lowerIsBetter", False, 0.5, 0.45, 0.05),
        ("delta", "lowerIsBetter", False, 0.4, 0.45, -0.05),
        ("delta", "higherIsBetter", True, 0.95, 0.92, 0.03),
        ("delta", "lowerIsBetter", True, 0.4, 0.45, 0.05),
        ("ratio", "higherIsBetter", False, 0.874, 0.92, 0.05),
        ("ratio", "lowerIsBetter", False, 0.22, 0.2, 0.1),
        ("ratio", "higherIsBetter", False, -11, -10, 0.1),
        ("ratio", "lowerIsBetter", False, -11, -10, -0.1),
    ],
)
def test_worsening(kind: str, direction: Any, symmetric: bool, value: float, baseline: float, expected: float) -> None:
    assert worsening(kind, direction, value, baseline, symmetric=symmetric) == pytest.approx(expected)


def test_delta_and_ratio_need_a_baseline() -> None:
    with pytest.raises(ValueError, match="needs a baseline"):
        check(Threshold(type="delta", value=1), "higherIsBetter", "critical", 1.0, None)
    with pytest.raises(ValueError, match="non-zero"):
        check(Threshold(type="ratio", value=1), "higherIsBetter", "critical", 1.0, 0.0)


def test_tolerance_is_rounding_not_slack() -> None:
    # A billionth of the magnitude is rounding; a millionth is a real difference.
    t = Threshold(type="max", value=0.5)
    assert check(t, "lowerIsBetter", "critical", 0.5 * (1 + 1e-12), None).passed
    assert not check(t, "lowerIsBetter", "critical", 0.5 * (1 + 1e-6), None).passed
    big = Threshold(type="delta", value=0.05)
    assert check(big, "lowerIsBetter", "critical", 1e6 + 0.05, 1e6).passed  # rounding of 1e6 + 0.05
    assert not check(big, "lowerIsBetter", "critical", 1e6 + 0.051, 1e6).passed
    assert not check(big, "lowerIsBetter", "critical", 1e6 + 0.0500001, 1e6).passed


# Elo with the seed's four drop levels as tiers: MINOR >= 20, MODERATE >= 35, SEVERE >= 50, CRITICAL >= 75.
# Comparisons are inclusive, so a drop of exactly a bound does not cross it (the seed's ">=" counts it).
SEED_LEVELS = [
    {"value": 20, "severity": "info"},
    {"value": 35, "severity": "warning"},
    {"value": 50, "severity": "critical"},
    {"value": 75, "severity": "critical"},
]


@pytest.mark.parametrize(
    ("current", "outcome", "severity", "bound", "verdict"),
    [
        (1500, "passed", "critical", 20, "passed"),  # better: no drop
        (1485, "passed", "critical", 20, "passed"),
        (1466, "passed", "critical", 20, "passed"),  # drop 19
        (1465, "passed", "critical", 20, "passed"),  # drop 20: at the MINOR bound
        (1464.5, "failed", "info", 20, "passed"),  # MINOR: recorded only
        (1450, "failed", "info", 20, "passed"),  # drop 35: at the MODERATE bound
        (1449.5, "failed", "warning", 35, "warning"),  # MODERATE
        (1435, "failed", "warning", 35, "warning"),  # drop 50: at the SEVERE bound
        (1430, "failed", "critical", 50, "failed"),  # SEVERE
        (1405, "failed", "critical", 75, "failed"),  # CRITICAL: the furthest bound of equal severity is reported
    ],
)
def test_seed_elo_drop_levels_as_tiers(current: float, outcome: str, severity: str, bound: float, verdict: str) -> None:
    metric = {"baseline": "live", "threshold": {"type": "delta", "tiers": SEED_LEVELS}}
    result = judge_one(metric, current, 1485)
    [r] = result.results
    assert (r.outcome, r.severity, result.verdict) == (outcome, severity, verdict)
    assert r.threshold is not None and r.threshold.value == bound


# DESIGN's encoding of the rollback seed: a 20-point drop is recorded, beyond 30 rolls back.
@pytest.mark.parametrize(
    ("current", "outcome", "severity", "verdict", "message"),
    [
        (1490, "passed", "critical", "passed", "elo: rose 5 from 1485, no regression (delta)"),
        (1470, "passed", "critical", "passed", "elo: dropped 15 from 1485, within 20 (delta)"),
        (1460, "failed", "info", "passed", "elo: dropped 25 from 1485, beyond 20 (delta, info tier)"),
        (1455, "failed", "info", "passed", "elo: dropped 30 from 1485, beyond 20 (delta, info tier)"),
        (1454.9, "failed", "critical", "failed", "elo: dropped 30.1 from 1485, beyond 30 (delta, critical tier)"),
        (1450, "failed", "critical", "failed", "elo: dropped 35 from 1485, beyond 30 (delta, critical tier)"),
    ],
)
def test_design_elo_tiers_and_the_35_point_drop(
    current: float, outcome: str, severity: str, verdict: str, message: str
) -> None:
    metric = {
        "baseline": "live",
        "threshold": {
            "type": "delta",
            "tiers": [{"value": 20, "severity": "info"}, {"value": 30, "severity": "critical"}],
        },
    }
    result = judge_one(metric, current, 1485, name="elo")
    [r] = result.results
    assert (r.outcome, r.severity, result.verdict, r.message) == (outcome, severity, verdict, message)
    assert (r.value, r.baseline, r.delta) == (current, 1485, pytest.approx(current - 1485))


@pytest.mark.parametrize(
    ("tiers", "drop", "severity", "bound"),
    [
        # The worst severity crossed decides, whatever the order of severities along the bounds.
        ([{"value": 10, "severity": "warning"}, {"value": 20, "severity": "info"}], 25, "warning", 10),
        ([{"value": 10, "severity": "critical"}, {"value": 20, "severity": "warning"}], 25, "critical", 10),
        ([{"value": 10, "severity": "critical"}, {"value": 20, "severity": "warning"}], 15, "critical", 10),
        ([{"value": 10, "severity": "info"}, {"value": 20, "severity": "warning"}], 15, "info", 10),
        ([{"value": 10, "severity": "info"}, {"value": 20, "severity": "warning"}], 25, "warning", 20),
        ([{"value": 10, "severity": "warning"}, {"value": 20, "severity": "warning"}], 25, "warning", 20),
    ],
)
def test_worst_crossed_tier_wins(tiers: list[dict[str, Any]], drop: float, severity: str, bound: float) -> None:
    result = judge_one({"baseline": 100, "threshold": {"type": "delta", "tiers": tiers}}, 100 - drop)
    [r] = result.results
    assert (r.outcome, r.severity) == ("failed", severity)
    assert r.threshold is not None and r.threshold.value == bound


@pytest.mark.parametrize(
    ("value", "outcome", "severity", "verdict"),
    [
        (0.035, "passed", "critical", "passed"),  # faster than stable
        (0.048, "passed", "critical", "passed"),  # exactly 20% slower
        (0.05, "failed", "warning", "warning"),  # 25% slower
        (0.06, "failed", "warning", "warning"),  # exactly 50% slower
        (0.0601, "failed", "critical", "failed"),
    ],
)
def test_ratio_tiers_lower_is_better(value: float, outcome: str, severity: str, verdict: str) -> None:
    metric = {
        "direction": "lowerIsBetter",
        "baseline": "live",
        "threshold": {
            "type": "ratio",
            "tiers": [{"value": 0.2, "severity": "warning"}, {"value": 0.5, "severity": "critical"}],
        },
    }
    result = judge_one(metric, value, 0.04)
    [r] = result.results
    assert (r.outcome, r.severity, result.verdict) == (outcome, severity, verdict)


def test_tiered_lower_is_better_delta() -> None:
    metric = {
        "direction": "lowerIsBetter",
        "baseline": 0.45,
        "threshold": {
            "type": "delta",
            "tiers": [{"value": 0.02, "severity": "warning"}, {"value": 0.05, "severity": "critical"}],
        },
    }
    assert [judge_one(metric, v).results[0].severity for v in (0.46, 0.48, 0.50, 0.51)] == [
        "critical",  # passed: the metric's own severity
        "warning",
        "warning",  # exactly 0.05 worse: at the critical bound
        "critical",
    ]
    assert [judge_one(metric, v).results[0].outcome for v in (0.46, 0.48, 0.50, 0.51)] == [
        "passed",
        "failed",
        "failed",
        "failed",
    ]


def test_a_passed_or_inconclusive_tiered_check_carries_the_metric_severity() -> None:
    tiers = [{"value": 20, "severity": "info"}, {"value": 30, "severity": "critical"}]
    metric = {"baseline": "live", "severity": "warning", "threshold": {"type": "delta", "tiers": tiers}}
    passed = judge_one(metric, 1485, 1485)
    assert (passed.results[0].outcome, passed.results[0].severity) == ("passed", "warning")
    missing = judge_one(metric, None, 1485)
    assert (missing.results[0].outcome, missing.results[0].severity, missing.verdict) == (
        "inconclusive",
        "warning",
        "warning",
    )
    # With the default severity (critical) a tiered metric without data fails closed.
    del metric["severity"]
    assert judge_one(metric, None, 1485).verdict == "inconclusive"


@pytest.mark.parametrize(
    ("threshold", "severity", "expected"),
    [
        ({"type": "delta", "value": 0.03}, "warning", (0.03, "warning")),
        ({"type": "ratio", "value": 0.05}, "critical", (0.05, "critical")),
        ({"type": "min", "value": 0.9}, "critical", None),
        ({"type": "max", "value": 0.9}, "critical", None),
        (
            {"type": "delta", "tiers": [{"value": 0.01, "severity": "info"}, {"value": 0.03, "severity": "critical"}]},
            "warning",
            (0.03, "critical"),
        ),
        (
            {
                "type": "delta",
                "tiers": [
                    {"value": 0.01, "severity": "warning"},
                    {"value": 0.02, "severity": "warning"},
                    {"value": 0.05, "severity": "info"},
                ],
            },
            "critical",
            (0.01, "warning"),
        ),
    ],
)
def test_judge_bound(threshold: dict[str, Any], severity: Any, expected: Any) -> None:
    assert judge_bound(Threshold.model_validate(threshold), severity) == expected


def test_tiers_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Threshold.model_validate(
            {"type": "delta", "tiers": [{"value": 30, "severity": "critical"}, {"value": 20, "severity": "info"}]}
        )
