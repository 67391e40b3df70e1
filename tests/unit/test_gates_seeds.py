"""The worked examples of the documents ModelRatchet grew from, as ModelBaselines."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import Observation, evaluate


def spec_of(*metrics: dict[str, Any], **fields: Any) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate({"model": "m", "metrics": list(metrics), **fields})


# --- Regression gates: eval_loss max 0.50 (critical), perplexity within ±0.2 (warning), accuracy ratio 0.05.
REGRESSION_GATES = spec_of(
    {"name": "eval_loss", "direction": "lowerIsBetter", "baseline": 0.45, "threshold": {"type": "max", "value": 0.50}},
    {
        "name": "perplexity",
        "direction": "lowerIsBetter",
        "baseline": 1.568,
        "severity": "warning",
        "threshold": {"type": "delta", "value": 0.2, "symmetric": True},
    },
    {"name": "eval_accuracy", "baseline": 0.92, "threshold": {"type": "ratio", "value": 0.05}},
)


@pytest.mark.parametrize(
    ("metrics", "outcomes", "verdict", "status"),
    [
        ({"eval_loss": 0.43, "perplexity": 1.52, "eval_accuracy": 0.92}, ["passed"] * 3, "passed", "passed"),
        ({"eval_loss": 0.50, "perplexity": 1.768, "eval_accuracy": 0.874}, ["passed"] * 3, "passed", "passed"),
        (
            {"eval_loss": 0.51, "perplexity": 1.52, "eval_accuracy": 0.92},
            ["failed", "passed", "passed"],
            "failed",
            "failed",
        ),
        (
            {"eval_loss": 0.43, "perplexity": 1.81, "eval_accuracy": 0.92},
            ["passed", "failed", "passed"],
            "warning",
            "warning",
        ),
        (
            {"eval_loss": 0.43, "perplexity": 1.30, "eval_accuracy": 0.92},
            ["passed", "failed", "passed"],
            "warning",
            "warning",
        ),
        (
            {"eval_loss": 0.43, "perplexity": 1.52, "eval_accuracy": 0.87},
            ["passed", "passed", "failed"],
            "failed",
            "failed",
        ),
        ({"eval_loss": 0.43, "perplexity": 1.52}, ["passed", "passed", "inconclusive"], "inconclusive", "failed"),
    ],
)
def test_regression_gates(metrics: dict[str, float], outcomes: list[str], verdict: str, status: str) -> None:
    result = evaluate(REGRESSION_GATES, metrics)
    assert [r.outcome for r in result.results] == outcomes
    assert [r.severity for r in result.results] == ["critical", "warning", "critical"]
    assert (result.verdict, result.status) == (verdict, status)


def test_regression_gates_messages() -> None:
    result = evaluate(REGRESSION_GATES, {"eval_loss": 0.43, "perplexity": 1.81, "eval_accuracy": 0.87})
    assert [r.message for r in result.results] == [
        "eval_loss: 0.43 <= 0.50 (max)",
        "perplexity: 1.810 is 0.242 above baseline 1.568, beyond ±0.2 (delta)",
        "eval_accuracy: 0.87 is 5.4% below baseline 0.92, more than 5% (ratio)",
    ]
    result = evaluate(REGRESSION_GATES, {"eval_loss": 0.55, "perplexity": 1.52, "eval_accuracy": 0.9})
    assert [r.message for r in result.results] == [
        "eval_loss: 0.55 > 0.50 (max)",
        "perplexity: 1.520 is 0.048 below baseline 1.568, within ±0.2 (delta)",
        "eval_accuracy: 0.90 is 2.2% below baseline 0.92, within 5% (ratio)",
    ]


# --- Regression rollback: a 35-point Elo drop (1485 -> 1450) over 100 games rolls back; 50 games minimum.
ELO = spec_of(
    {
        "name": "elo",
        "baseline": "live",
        "minSamples": 50,
        "samplesQuery": "games",
        "threshold": {
            "type": "delta",
            "tiers": [{"value": 20, "severity": "info"}, {"value": 30, "severity": "critical"}],
        },
    }
)


def test_elo_drop_of_35_rolls_back() -> None:
    result = evaluate(ELO, {"elo": Observation(value=1450, samples=100)}, {"elo": Observation(value=1485)})
    [r] = result.results
    assert (r.outcome, r.severity, r.delta, r.classification) == ("failed", "critical", -35, "regressed")
    assert r.message == "elo: dropped 35 from 1485, beyond 30 (delta, critical tier)"
    assert result.verdict == "failed"


def test_elo_needs_fifty_games() -> None:
    result = evaluate(ELO, {"elo": Observation(value=1450, samples=40)}, {"elo": 1485})
    assert (result.results[0].outcome, result.verdict) == ("inconclusive", "inconclusive")
    assert result.results[0].message == "elo: only 40 samples, minSamples is 50"


@pytest.mark.parametrize(
    ("drop", "outcome", "severity", "verdict"),
    [(10, "passed", "critical", "passed"), (25, "failed", "info", "passed"), (31, "failed", "critical", "failed")],
)
def test_elo_drop_levels(drop: float, outcome: str, severity: str, verdict: str) -> None:
    result = evaluate(ELO, {"elo": Observation(value=1485 - drop, samples=100)}, {"elo": 1485})
    assert (result.results[0].outcome, result.results[0].severity, result.verdict) == (outcome, severity, verdict)


# --- Baseline vs candidate comparison: improved / neutral / regressed with a threshold.
@pytest.mark.parametrize(
    ("name", "direction", "band", "baseline", "candidate", "delta", "status"),
    [
        ("accuracy", "higherIsBetter", 0.01, 0.70, 0.75, 0.05, "improved"),
        ("accuracy", "higherIsBetter", 0.01, 0.80, 0.72, -0.08, "regressed"),
        ("loss", "lowerIsBetter", 0.02, 0.50, 0.51, 0.01, "neutral"),
    ],
)
def test_baseline_vs_candidate(
    name: str, direction: str, band: float, baseline: float, candidate: float, delta: float, status: str
) -> None:
    spec = spec_of(
        {"name": name, "direction": direction, "baseline": "live", "threshold": {"type": "delta", "value": 1}},
        neutralBand=band,
    )
    [r] = evaluate(spec, {name: candidate}, {name: baseline}).results
    assert (r.baseline, r.value, r.delta, r.classification) == (baseline, candidate, delta, status)


def test_multi_metric_comparison() -> None:
    spec = spec_of(
        {"name": "accuracy", "baseline": "live", "threshold": {"type": "delta", "value": 0.05}},
        {
            "name": "loss",
            "direction": "lowerIsBetter",
            "baseline": "live",
            "threshold": {"type": "delta", "value": 0.05},
        },
        {
            "name": "perplexity",
            "direction": "lowerIsBetter",
            "baseline": "live",
            "threshold": {"type": "ratio", "value": 0.1},
        },
    )
    result = evaluate(
        spec,
        {"accuracy": 0.76, "loss": 0.41, "perplexity": 1.60},
        {"accuracy": 0.72, "loss": 0.45, "perplexity": 1.50},
    )
    assert [(r.metric, r.delta, r.classification) for r in result.results] == [
        ("accuracy", 0.04, "improved"),
        ("loss", -0.04, "improved"),
        ("perplexity", 0.1, "regressed"),
    ]
    assert result.verdict == "passed"  # perplexity 6.7% worse, within 10%


# --- Quality gates: the production profile's minimums and maximum.
PRODUCTION = spec_of(
    {"name": "test_pass_rate", "threshold": {"type": "min", "value": 0.98}},
    {"name": "code_coverage", "threshold": {"type": "min", "value": 0.90}},
    {"name": "quality_score", "baseline": 0.85, "threshold": {"type": "min", "value": 0.85}},
    {"name": "critical_vulnerabilities", "direction": "lowerIsBetter", "threshold": {"type": "max", "value": 0}},
)


@pytest.mark.parametrize(
    ("metrics", "failed", "verdict"),
    [
        (
            {"test_pass_rate": 0.99, "code_coverage": 0.92, "quality_score": 0.88, "critical_vulnerabilities": 0},
            [],
            "passed",
        ),
        (
            {"test_pass_rate": 0.98, "code_coverage": 0.90, "quality_score": 0.85, "critical_vulnerabilities": 0},
            [],
            "passed",
        ),
        (
            {"test_pass_rate": 0.99, "code_coverage": 0.92, "quality_score": 0.75, "critical_vulnerabilities": 0},
            ["quality_score"],
            "failed",
        ),
        (
            {"test_pass_rate": 0.97, "code_coverage": 0.92, "quality_score": 0.88, "critical_vulnerabilities": 1},
            ["test_pass_rate", "critical_vulnerabilities"],
            "failed",
        ),
    ],
)
def test_quality_gates(metrics: dict[str, float], failed: list[str], verdict: str) -> None:
    result = evaluate(PRODUCTION, metrics)
    assert [r.metric for r in result.results if r.outcome == "failed"] == failed
    assert result.verdict == verdict


# --- Retraining safeguard: deploy only if accuracy and macro F1 are at most 0.01 below the old model.
SAFEGUARD = spec_of(
    {"name": "accuracy", "baseline": "live", "threshold": {"type": "delta", "value": 0.01}},
    {"name": "f1_macro", "baseline": "live", "threshold": {"type": "delta", "value": 0.01}},
)
OLD = {"accuracy": 0.8042, "f1_macro": 0.7834}


@pytest.mark.parametrize(
    ("accuracy_change", "f1_change", "deploy"),
    [
        (+0.05, +0.04, True),  # improved
        (-0.005, -0.003, True),  # maintained within tolerance
        (-0.01, -0.01, True),  # exactly the tolerance
        (-0.05, -0.08, False),  # degraded
        (-0.07, -0.07, False),
        (-0.011, 0.0, False),  # one metric is enough to reject
        (0.0, -0.0101, False),
    ],
)
def test_retraining_safeguard(accuracy_change: float, f1_change: float, deploy: bool) -> None:
    new = {"accuracy": OLD["accuracy"] + accuracy_change, "f1_macro": OLD["f1_macro"] + f1_change}
    result = evaluate(SAFEGUARD, new, OLD)
    assert (result.verdict == "passed") is deploy
    assert result.verdict == ("passed" if deploy else "failed")


def test_retraining_safeguard_tolerance_survives_rounding() -> None:
    # 0.8542 - 0.8442 == 0.010000000000000009: still exactly the 1% tolerance.
    result = evaluate(SAFEGUARD, {"accuracy": 0.8442, "f1_macro": 0.8234}, {"accuracy": 0.8542, "f1_macro": 0.8334})
    assert [r.outcome for r in result.results] == ["passed", "passed"]
    assert [r.message for r in result.results] == [
        "accuracy: dropped 0.01 from 0.8542, within 0.01 (delta)",
        "f1_macro: dropped 0.01 from 0.8334, within 0.01 (delta)",
    ]
