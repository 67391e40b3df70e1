"""evaluate(): missing data, policies, baselines, verdicts and the result's shape."""

from __future__ import annotations

import math
from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import Observation, evaluate
from modelratchet.gates.observation import Input


def spec_of(*metrics: dict[str, Any], **fields: Any) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate({"model": "m", "metrics": list(metrics), **fields})


ACCURACY = {"name": "accuracy", "baseline": 0.92, "threshold": {"type": "ratio", "value": 0.05}}


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        ({}, "accuracy: no value for the candidate"),
        ({"accuracy": None}, "accuracy: no value for the candidate"),
        ({"accuracy": math.nan}, "accuracy: value is NaN"),
        ({"accuracy": math.inf}, "accuracy: value is +inf"),
        ({"accuracy": -math.inf}, "accuracy: value is -inf"),
        ({"accuracy": Observation()}, "accuracy: no value"),
        ({"accuracy": Observation(value=math.nan)}, "accuracy: value is NaN"),
        (
            {"accuracy": Observation(error="empty vector: no series matched")},
            "accuracy: could not be measured: empty vector: no series matched",
        ),
        (
            {"accuracy": Observation(value=0.95, error="query timed out")},
            "accuracy: could not be measured: query timed out",
        ),
    ],
)
@pytest.mark.parametrize(
    ("severity", "fail_verdict", "ignore_verdict"),
    [("critical", "inconclusive", "passed"), ("warning", "warning", "passed"), ("info", "passed", "passed")],
)
def test_missing_data_is_inconclusive_never_a_pass(
    candidate: dict[str, Input], message: str, severity: str, fail_verdict: str, ignore_verdict: str
) -> None:
    spec = spec_of({**ACCURACY, "severity": severity})
    result = evaluate(spec, candidate)
    [r] = result.results
    assert (r.outcome, r.severity, r.message) == ("inconclusive", severity, message)
    assert r.value is None or math.isfinite(r.value)
    assert result.verdict == fail_verdict
    assert result.decided is False and result.pending is False
    ignored = evaluate(spec, candidate, on_missing="ignore")
    assert (ignored.results[0].outcome, ignored.verdict) == ("inconclusive", ignore_verdict)


def test_on_missing_defaults_to_the_spec_and_the_argument_overrides_it() -> None:
    fail_open = spec_of(ACCURACY, onMissing="ignore")
    assert evaluate(fail_open, {}).verdict == "passed"
    assert evaluate(fail_open, {}, on_missing="fail").verdict == "inconclusive"
    assert evaluate(spec_of(ACCURACY), {}).verdict == "inconclusive"
    assert evaluate(spec_of(ACCURACY), {}, on_missing="ignore").verdict == "passed"


def test_ignore_does_not_hide_failures() -> None:
    result = evaluate(spec_of(ACCURACY, onMissing="ignore"), {"accuracy": 0.5})
    assert (result.results[0].outcome, result.verdict, result.status) == ("failed", "failed", "failed")


@pytest.mark.parametrize(
    ("samples", "outcome", "message"),
    [
        (150, "inconclusive", "accuracy: only 150 samples, minSamples is 200"),
        (199.5, "inconclusive", "accuracy: only 199.5 samples, minSamples is 200"),
        (0, "inconclusive", "accuracy: only 0 samples, minSamples is 200"),
        (None, "inconclusive", "accuracy: sample count not measured (minSamples 200)"),
        (math.nan, "inconclusive", "accuracy: sample count not measured (minSamples 200)"),
        (200, "passed", "accuracy: 0.90 is 2.2% below baseline 0.92, within 5% (ratio)"),
        (5000, "passed", "accuracy: 0.90 is 2.2% below baseline 0.92, within 5% (ratio)"),
    ],
)
def test_min_samples(samples: float | None, outcome: str, message: str) -> None:
    spec = spec_of({**ACCURACY, "minSamples": 200, "samplesQuery": "sum(x)"})
    [r] = evaluate(spec, {"accuracy": Observation(value=0.9, samples=samples)}).results
    assert (r.outcome, r.message) == (outcome, message)


def test_min_samples_does_not_apply_to_offline_numbers() -> None:
    # A plain number is a final eval result (as in `modelratchet check`): there is no sample count.
    spec = spec_of({**ACCURACY, "minSamples": 200, "samplesQuery": "sum(x)"})
    assert evaluate(spec, {"accuracy": 0.9}).results[0].outcome == "passed"


def test_min_samples_of_a_live_baseline_arm() -> None:
    spec = spec_of({**ACCURACY, "baseline": "live", "minSamples": 200, "samplesQuery": "sum(x)"})
    few = evaluate(spec, {"accuracy": Observation(0.9, samples=500)}, {"accuracy": Observation(0.92, samples=20)})
    assert few.results[0].message == "accuracy: baseline: only 20 samples, minSamples is 200"
    unknown = evaluate(spec, {"accuracy": Observation(0.9, samples=500)}, {"accuracy": Observation(0.92)})
    assert unknown.results[0].outcome == "passed"  # the stable arm's count is optional


ELO = {
    "name": "elo",
    "baseline": "live",
    "threshold": {"type": "delta", "tiers": [{"value": 20, "severity": "info"}, {"value": 30, "severity": "critical"}]},
}


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        (None, "elo: baseline missing: no live baseline value for the stable checkpoint"),
        ({}, "elo: baseline missing: no live baseline value for the stable checkpoint"),
        ({"elo": None}, "elo: baseline missing: no live baseline value for the stable checkpoint"),
        ({"elo": Observation()}, "elo: baseline missing: no value"),
        ({"elo": Observation(error="connection refused")}, "elo: baseline could not be measured: connection refused"),
        ({"elo": math.nan}, "elo: baseline value is NaN"),
        ({"elo": Observation(value=math.inf)}, "elo: baseline value is +inf"),
    ],
)
def test_live_baseline_missing_is_inconclusive(baseline: dict[str, Input] | None, message: str) -> None:
    result = evaluate(spec_of(ELO), {"elo": 1450}, baseline)
    [r] = result.results
    assert (r.outcome, r.severity, r.message, result.verdict) == ("inconclusive", "critical", message, "inconclusive")
    assert r.value == 1450


def test_live_baseline_supplied() -> None:
    result = evaluate(spec_of(ELO), {"elo": Observation(value=1450)}, {"elo": Observation(value=1485)})
    [r] = result.results
    assert (r.value, r.baseline, r.delta, r.classification, r.outcome, r.severity) == (
        1450,
        1485,
        -35,
        "regressed",
        "failed",
        "critical",
    )


def test_supplied_baseline_overrides_a_static_one() -> None:
    spec = spec_of(ACCURACY)
    assert evaluate(spec, {"accuracy": 0.9}).results[0].outcome == "passed"  # 2.2% below 0.92
    [r] = evaluate(spec, {"accuracy": 0.9}, {"accuracy": 0.99}).results  # 9.1% below 0.99
    assert (r.baseline, r.outcome) == (0.99, "failed")
    # A None entry counts as absent: the static value applies.
    assert evaluate(spec, {"accuracy": 0.9}, {"accuracy": None}).results[0].baseline == 0.92


def test_zero_live_baseline_for_a_ratio_is_inconclusive() -> None:
    spec = spec_of({**ACCURACY, "baseline": "live"})
    [r] = evaluate(spec, {"accuracy": 0.9}, {"accuracy": 0.0}).results
    assert (r.outcome, r.message) == (
        "inconclusive",
        "accuracy: baseline is 0; a ratio threshold needs a non-zero baseline",
    )


def test_min_and_max_use_a_supplied_baseline_for_classification_only() -> None:
    spec = spec_of({"name": "loss", "direction": "lowerIsBetter", "threshold": {"type": "max", "value": 0.5}})
    [r] = evaluate(spec, {"loss": 0.45}, {"loss": 0.40}).results
    assert (r.outcome, r.baseline, r.delta, r.classification) == ("passed", 0.40, 0.05, "regressed")


def _gate(name: str, severity: str) -> dict[str, Any]:
    return {"name": name, "severity": severity, "threshold": {"type": "max", "value": 1}}


PASS, FAIL, MISSING = 0.5, 2.0, None


@pytest.mark.parametrize(
    ("checks", "on_fail", "on_ignore"),
    [
        ([("critical", PASS), ("warning", PASS), ("info", PASS)], "passed", "passed"),
        ([("critical", FAIL)], "failed", "failed"),
        ([("critical", FAIL), ("warning", FAIL)], "failed", "failed"),
        ([("critical", FAIL), ("critical", MISSING)], "failed", "failed"),
        ([("critical", MISSING), ("warning", FAIL)], "inconclusive", "warning"),
        ([("critical", MISSING), ("warning", PASS)], "inconclusive", "passed"),
        ([("warning", FAIL), ("critical", PASS)], "warning", "warning"),
        ([("warning", MISSING), ("critical", PASS)], "warning", "passed"),
        ([("warning", FAIL), ("info", FAIL)], "warning", "warning"),
        ([("info", FAIL), ("info", MISSING), ("critical", PASS)], "passed", "passed"),
    ],
)
def test_verdict(checks: list[tuple[str, float | None]], on_fail: str, on_ignore: str) -> None:
    spec = spec_of(*(_gate(f"m{i}", severity) for i, (severity, _) in enumerate(checks)))
    candidate = {f"m{i}": value for i, (_, value) in enumerate(checks)}
    assert evaluate(spec, candidate, on_missing="fail").verdict == on_fail
    assert evaluate(spec, candidate, on_missing="ignore").verdict == on_ignore


@pytest.mark.parametrize(
    ("verdict_values", "status"),
    [
        ({"c": PASS, "w": PASS}, "passed"),
        ({"c": PASS, "w": FAIL}, "warning"),
        ({"c": FAIL, "w": PASS}, "failed"),
        ({"w": PASS}, "failed"),  # inconclusive: fail closed
    ],
)
def test_status_fails_closed(verdict_values: dict[str, float], status: str) -> None:
    spec = spec_of(_gate("c", "critical"), _gate("w", "warning"))
    assert evaluate(spec, verdict_values).status == status


def test_results_follow_the_spec_and_ignore_unknown_metrics() -> None:
    spec = spec_of(_gate("b", "critical"), _gate("a", "warning"), _gate("c", "info"))
    result = evaluate(spec, {"c": 2.0, "a": 0.5, "b": 0.5, "zzz": 9.0})
    assert [r.metric for r in result.results] == ["b", "a", "c"]
    assert result.model == "m"
    assert result.summary == "2 passed, 1 failed (c [info]), 0 inconclusive"
    assert result.decided is False  # thresholds alone never end an analysis early


def test_summary_names_failed_and_inconclusive_checks() -> None:
    spec = spec_of(
        _gate("loss", "critical"), _gate("acc", "critical"), _gate("lat", "warning"), _gate("f1", "critical")
    )
    result = evaluate(spec, {"loss": 0.5, "acc": 2.0, "lat": 2.0})
    assert result.summary == "1 passed, 2 failed (acc, lat [warning]), 1 inconclusive (f1)"
    assert result.verdict == "failed"
    assert result.decided is True  # a critical failure settles it


def test_design_example() -> None:
    spec = spec_of(
        {
            "name": "eval_loss",
            "direction": "lowerIsBetter",
            "baseline": 0.45,
            "threshold": {"type": "max", "value": 0.50},
        },
        {**ACCURACY, "minSamples": 200, "samplesQuery": "sum(x)"},
        ELO,
        neutralBand=0.01,
    )
    ok = evaluate(spec, {"eval_loss": 0.43, "accuracy": 0.93, "elo": 1490}, {"elo": 1485})
    assert ok.verdict == "passed"
    assert [r.classification for r in ok.results] == ["improved", "improved", "improved"]
    assert ok.summary == "3 passed, 0 failed, 0 inconclusive"
    bad = evaluate(spec, {"eval_loss": 0.43, "accuracy": 0.87, "elo": 1450}, {"elo": 1485})
    assert bad.verdict == "failed"
    assert [r.message for r in bad.results] == [
        "eval_loss: 0.43 <= 0.50 (max)",
        "accuracy: 0.87 is 5.4% below baseline 0.92, more than 5% (ratio)",
        "elo: dropped 35 from 1485, beyond 30 (delta, critical tier)",
    ]
    assert bad.summary == "1 passed, 2 failed (accuracy, elo), 0 inconclusive"


def test_observation_values() -> None:
    assert Observation(value=0.5).point_value() == 0.5
    assert Observation(successes=90, total=100).point_value() == 0.9
    assert Observation(successes=0, total=0).point_value() is None
    assert Observation(series=(3.0, 1.0, 2.0, math.nan)).point_value() == 2.0
    assert Observation(series=()).point_value() is None
    assert Observation().point_value() is None


def test_the_engine_is_pure() -> None:
    # No I/O and no cluster, metrics-server or HTTP clients: only the standard library's pure modules,
    # the API models and the statistical judges.
    import ast
    from pathlib import Path

    import modelratchet.gates

    allowed = {"__future__", "collections", "dataclasses", "math", "statistics", "sys", "typing", "modelratchet"}
    package = Path(modelratchet.gates.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelratchet."):
                assert node.module.split(".")[1] in {"api", "gates", "judges"}, f"{path.name}: {node.module}"
