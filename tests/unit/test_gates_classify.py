"""Improved / neutral / regressed, direction-aware, with the baseline-vs-candidate seed's cases."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import classify, evaluate


@pytest.mark.parametrize(
    ("baseline", "value", "direction", "band", "expected"),
    [
        # The seed's test cases.
        (0.70, 0.75, "higherIsBetter", 0.01, "improved"),  # +0.05
        (0.80, 0.72, "higherIsBetter", 0.01, "regressed"),  # -0.08
        (0.50, 0.51, "lowerIsBetter", 0.02, "neutral"),  # loss within 0.02
        # Direction-aware: a lower loss is an improvement.
        (0.50, 0.45, "lowerIsBetter", 0.01, "improved"),
        (0.50, 0.55, "lowerIsBetter", 0.01, "regressed"),
        (0.70, 0.75, "lowerIsBetter", 0.01, "regressed"),
        (0.80, 0.72, "lowerIsBetter", 0.01, "improved"),
        # Neutral strictly below the band; a change of exactly the band is a change, even when the
        # subtraction rounds below it (0.06 - 0.05 == 0.009999999999999995) or above it.
        (0.80, 0.795, "higherIsBetter", 0.01, "neutral"),
        (0.80, 0.805, "higherIsBetter", 0.01, "neutral"),
        (0.05, 0.06, "higherIsBetter", 0.01, "improved"),
        (0.06, 0.05, "higherIsBetter", 0.01, "regressed"),
        (0.50, 0.51, "lowerIsBetter", 0.01, "regressed"),  # 0.51 - 0.50 == 0.010000000000000009
        (0.51, 0.50, "lowerIsBetter", 0.01, "improved"),
        # No change is neutral, even with a band of 0; any change is not.
        (0.9, 0.9, "higherIsBetter", 0.0, "neutral"),
        (0.9, 0.9001, "higherIsBetter", 0.0, "improved"),
        (0.9, 0.8999, "higherIsBetter", 0.0, "regressed"),
        (0.1 + 0.2, 0.3, "higherIsBetter", 0.0, "neutral"),  # rounding is not a change
        # Large values with a wide band.
        (1485, 1490, "higherIsBetter", 10, "neutral"),
        (1485, 1450, "higherIsBetter", 10, "regressed"),
    ],
)
def test_classify(baseline: float, value: float, direction: Any, band: float, expected: str) -> None:
    assert classify(value, baseline, direction, band) == expected


def _spec(**metric: Any) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate({"model": "m", "neutralBand": 0.02, "metrics": [{"name": "x", **metric}]})


def test_spec_band_applies_and_metric_band_overrides_it() -> None:
    threshold = {"type": "min", "value": 0}
    assert evaluate(_spec(baseline=0.5, threshold=threshold), {"x": 0.515}).results[0].classification == "neutral"
    metric_band = _spec(baseline=0.5, threshold=threshold, neutralBand=0.01)
    assert evaluate(metric_band, {"x": 0.515}).results[0].classification == "improved"


def test_default_band_is_one_hundredth() -> None:
    spec = ModelBaselineSpec.model_validate(
        {"model": "m", "metrics": [{"name": "x", "baseline": 0.5, "threshold": {"type": "min", "value": 0}}]}
    )
    assert spec.neutral_band == 0.01
    assert evaluate(spec, {"x": 0.509}).results[0].classification == "neutral"
    assert evaluate(spec, {"x": 0.511}).results[0].classification == "improved"


def test_no_baseline_no_classification() -> None:
    result = evaluate(_spec(threshold={"type": "max", "value": 0.5}), {"x": 0.4})
    [r] = result.results
    assert (r.baseline, r.delta, r.classification, r.outcome) == (None, None, None, "passed")


def test_classification_is_independent_of_the_outcome() -> None:
    # Regressed but within the threshold: passed; improved and beyond a symmetric band: failed.
    regressed = evaluate(_spec(baseline=0.92, threshold={"type": "delta", "value": 0.05}), {"x": 0.89}).results[0]
    assert (regressed.classification, regressed.outcome) == ("regressed", "passed")
    symmetric = _spec(
        baseline=3.1, direction="lowerIsBetter", threshold={"type": "delta", "value": 0.2, "symmetric": True}
    )
    improved = evaluate(symmetric, {"x": 2.8}).results[0]
    assert (improved.classification, improved.outcome) == ("improved", "failed")


def test_delta_is_value_minus_baseline_without_float_noise() -> None:
    spec = _spec(baseline=0.70, threshold={"type": "min", "value": 0})
    [r] = evaluate(spec, {"x": 0.75}).results
    assert r.delta == 0.05  # not 0.050000000000000044
    [r] = evaluate(spec, {"x": 0.72}, {"x": 0.80}).results
    assert (r.baseline, r.delta, r.classification) == (0.80, -0.08, "regressed")
