"""Compact numbers and the sentences of check messages."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import evaluate
from modelratchet.gates.format import num, pair, percent, signed


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.3"),
        (0.43, "0.43"),
        (0.5, "0.5"),
        (1.568, "1.568"),
        (1.5684, "1.568"),
        (1485.0, "1485"),
        (1485.4, "1485"),
        (12345.6, "12346"),
        (-35.0, "-35"),
        (0.0001234, "0.0001234"),
        (0.00001234, "1.234e-05"),
        (5e-05, "5e-05"),
        (float("inf"), "inf"),
        (float("nan"), "nan"),
    ],
)
def test_num(x: float, text: str) -> None:
    assert num(x) == text


def test_signed_and_percent() -> None:
    assert [signed(x) for x in (0.05, -0.08, 0.0, 0.75 - 0.70)] == ["+0.05", "-0.08", "0", "+0.05"]
    assert percent(0.054347826) == "5.4"
    assert percent(0.05) == "5"
    assert percent(1.234) == "123"


@pytest.mark.parametrize(
    ("a", "b", "texts"),
    [
        (0.43, 0.5, ("0.43", "0.50")),  # shared decimals
        (0.5, 0.5, ("0.5", "0.5")),
        (0.5 + 1e-15, 0.5, ("0.5", "0.5")),  # rounding noise is not a difference
        (0.50001, 0.5, ("0.50001", "0.50000")),  # a real difference shows
        (1485.0, 1450.0, ("1485", "1450")),
        (1e-05, 0.5, ("1e-05", "0.5")),
    ],
)
def test_pair(a: float, b: float, texts: tuple[str, str]) -> None:
    assert pair(a, b) == texts


def message(metric: dict[str, Any], value: float, baseline: float | None = None) -> str:
    spec = ModelBaselineSpec.model_validate({"model": "m", "metrics": [metric]})
    return (
        evaluate(spec, {metric["name"]: value}, None if baseline is None else {metric["name"]: baseline})
        .results[0]
        .message
    )


@pytest.mark.parametrize(
    ("metric", "value", "baseline", "text"),
    [
        (
            {"name": "eval_loss", "threshold": {"type": "max", "value": 0.5}},
            0.43,
            None,
            "eval_loss: 0.43 <= 0.50 (max)",
        ),
        ({"name": "eval_loss", "threshold": {"type": "max", "value": 0.5}}, 0.55, None, "eval_loss: 0.55 > 0.50 (max)"),
        (
            {"name": "eval_loss", "threshold": {"type": "max", "value": 0.5}},
            0.50001,
            None,
            "eval_loss: 0.50001 > 0.50000 (max)",
        ),
        ({"name": "acc", "threshold": {"type": "min", "value": 0.9}}, 0.93, None, "acc: 0.93 >= 0.90 (min)"),
        ({"name": "acc", "threshold": {"type": "min", "value": 0.9}}, 0.85, None, "acc: 0.85 < 0.90 (min)"),
        (
            {"name": "accuracy", "baseline": 0.92, "threshold": {"type": "ratio", "value": 0.05}},
            0.87,
            None,
            "accuracy: 0.87 is 5.4% below baseline 0.92, more than 5% (ratio)",
        ),
        (
            {"name": "accuracy", "baseline": 0.92, "threshold": {"type": "ratio", "value": 0.05}},
            0.95,
            None,
            "accuracy: 0.95 is 3.3% above baseline 0.92, no regression (ratio)",
        ),
        (
            {"name": "accuracy", "baseline": 0.92, "threshold": {"type": "ratio", "value": 0.05}},
            0.92,
            None,
            "accuracy: unchanged at baseline 0.92 (ratio)",
        ),
        (
            {
                "name": "p95",
                "direction": "lowerIsBetter",
                "baseline": 0.2,
                "threshold": {"type": "ratio", "value": 0.1},
            },
            0.3,
            None,
            "p95: 0.3 is 50% above baseline 0.2, more than 10% (ratio)",
        ),
        (
            {
                "name": "p95",
                "direction": "lowerIsBetter",
                "baseline": 0.2,
                "threshold": {"type": "ratio", "value": 0.1},
            },
            0.2202,
            None,
            "p95: 0.2202 is 10.1% above baseline 0.2000, more than 10% (ratio)",  # gains a digit to differ
        ),
        (
            {"name": "elo", "baseline": "live", "threshold": {"type": "delta", "value": 30}},
            1450,
            1485,
            "elo: dropped 35 from 1485, beyond 30 (delta)",
        ),
        (
            {
                "name": "loss",
                "direction": "lowerIsBetter",
                "baseline": 0.45,
                "threshold": {"type": "delta", "value": 0.05},
            },
            0.5,
            None,
            "loss: rose 0.05 from 0.45, within 0.05 (delta)",
        ),
        (
            {
                "name": "loss",
                "direction": "lowerIsBetter",
                "baseline": 0.45,
                "threshold": {"type": "delta", "value": 0.05},
            },
            0.4,
            None,
            "loss: dropped 0.05 from 0.45, no regression (delta)",
        ),
        (
            {"name": "perplexity", "baseline": 3.1, "threshold": {"type": "delta", "value": 0.2, "symmetric": True}},
            3.4,
            None,
            "perplexity: 3.4 is 0.3 above baseline 3.1, beyond ±0.2 (delta)",
        ),
        (
            {"name": "perplexity", "baseline": 3.1, "threshold": {"type": "delta", "value": 0.2, "symmetric": True}},
            3.0,
            None,
            "perplexity: 3.0 is 0.1 below baseline 3.1, within ±0.2 (delta)",
        ),
    ],
)
def test_messages(metric: dict[str, Any], value: float, baseline: float | None, text: str) -> None:
    assert message(metric, value, baseline) == text
