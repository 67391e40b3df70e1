"""The provider's bucket queries for the histogram judge: windows anchored at the start, le series, exact counts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import Histogram
from modelratchet.metrics.prometheus import PrometheusSettings, QueryOutcome, Series
from modelratchet.metrics.provider import MAX_WINDOWS, MetricsProvider, ObservationSet, window_step

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TEMPLATE = (
    'sum by (le) (clamp_min(x_bucket{checkpoint="{{ checkpoint }}"} - x_bucket{checkpoint="{{ checkpoint }}"} '
    "offset {{ interval }}, 0))"
)


def series(le: str, *points: tuple[float, float]) -> Series:
    return Series((("le", le),), tuple(points))


class FakeQuerier:
    def __init__(self, answers: dict[str, QueryOutcome]) -> None:
        self.answers = answers  # by checkpoint
        self.calls: list[tuple[str, datetime, datetime, str]] = []

    def range_matrix(self, query: str, start: datetime, end: datetime, step: str, **_: Any) -> QueryOutcome:
        self.calls.append((query, start, end, step))
        checkpoint = query.split('checkpoint="')[1].split('"')[0]
        return self.answers[checkpoint]

    def instant(self, query: str, **_: Any) -> QueryOutcome:
        return QueryOutcome((1.0,))


def observe(
    answers: dict[str, QueryOutcome], window: float = 95.0, interval: float = 30.0
) -> tuple[ObservationSet, FakeQuerier]:
    spec = ModelBaselineSpec.model_validate(
        {
            "model": "m",
            "metrics": [
                {
                    "name": "latency",
                    "direction": "lowerIsBetter",
                    "baseline": "live",
                    "threshold": {"type": "ratio", "value": 0.05},
                    "judge": {"type": "histogram", "bucketQuery": TEMPLATE},
                }
            ],
        }
    )
    fake = FakeQuerier(answers)
    provider = MetricsProvider()
    provider.querier = lambda settings: fake  # type: ignore[method-assign,assignment,return-value]
    obs = provider.observe(
        spec,
        namespace="ns",
        checkpoint="v2",
        stable_checkpoint="v1",
        window_seconds=window,
        interval_seconds=interval,
        now=NOW,
        settings=PrometheusSettings(address="http://prometheus:9090"),
    )
    return obs, fake


T1, T2, T3 = 1000.0, 1030.0, 1060.0
GOOD = QueryOutcome(
    matrix=(
        series("+Inf", (T1, 9.0), (T2, 12.0), (T3, 5.0)),
        series("0.1", (T1, 4.0), (T2, 6.0), (T3, 5.0)),
        series("0.25", (T1, 8.0), (T3, 5.0)),  # no point at T2: that window is left out
    )
)


def test_bucket_counts_per_window_anchored_at_the_start() -> None:
    obs, fake = observe({"v1": GOOD, "v2": GOOD})
    assert obs.problems == []
    h = obs.candidate["latency"].histogram
    assert h == Histogram(
        bounds=(0.1, 0.25, math.inf), times=(T1, T3), windows=((4.0, 8.0, 9.0), (5.0, 5.0, 5.0)), step=30.0
    )
    assert obs.baseline["latency"].histogram == h
    query, start, end, step = fake.calls[0]
    # Windows start when the analysis window does, one step long, the same grid at every look.
    assert (start, end, step) == (NOW - timedelta(seconds=95) + timedelta(seconds=30), NOW, "30")
    assert "offset 30s" in query


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (
            QueryOutcome(matrix=(series("0.1", (T1, 1.2)), series("+Inf", (T1, 3.6)))),
            "invalid_query",
            "counts must be whole numbers; increase() and rate() extrapolate",
        ),
        (
            QueryOutcome(matrix=(Series((("pod", "a"),), ((T1, 1.0),)),)),
            "invalid_query",
            "one series per bucket, each with its le label",
        ),
        (QueryOutcome(matrix=(series("+Inf", (T1, 1.0)),)), "invalid_query", "a histogram needs several le buckets"),
        (
            QueryOutcome(matrix=(series("0.1", (T1, math.nan)), series("+Inf", (T1, 3.0)))),
            "empty",
            "no window with a value in every bucket",
        ),
    ],
)
def test_answers_that_are_not_bucket_counts_are_problems(answer: QueryOutcome, kind: str, message: str) -> None:
    obs, _ = observe({"v1": GOOD, "v2": answer})
    [problem] = obs.problems
    assert (problem.metric, problem.arm, problem.kind) == ("latency", "candidate", kind)
    assert message in problem.message
    assert obs.candidate["latency"].histogram is None and obs.candidate["latency"].error is not None
    assert obs.baseline["latency"].histogram is not None


def test_before_the_first_window_ends_there_is_nothing_to_ask() -> None:
    obs, fake = observe({"v1": GOOD, "v2": GOOD}, window=20.0, interval=30.0)
    assert fake.calls == []
    assert {p.kind for p in obs.problems} == {"empty"}


def test_windows_lengthen_in_very_long_analyses() -> None:
    assert window_step(600.0, 30.0) == 30.0
    assert window_step(MAX_WINDOWS * 30.0 * 3, 30.0) == 90.0
    assert window_step(10.0, 0.4) == 1.0
