"""Alpha spending over information fractions: error rates under Brownian motion, window shares, the cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
from modelratchet.judges import spending
from modelratchet.judges.spending import boundaries, boundaries_at, spent, spent_in

PATHS = 200_000


def crossed(fractions: list[float], crit: list[float], rng: np.random.Generator) -> float:
    """Share of Brownian paths whose z statistic reaches the boundary at some look."""
    s = np.zeros(PATHS)
    hit = np.zeros(PATHS, dtype=bool)
    before = 0.0
    for t, c in zip(fractions, crit, strict=True):
        s += rng.standard_normal(PATHS) * math.sqrt(t - before)
        before = t
        hit |= s / math.sqrt(t) >= c
    return float(hit.mean())


def tolerance(alpha: float) -> float:
    return 4.0 * math.sqrt(alpha * (1.0 - alpha) / PATHS)


def test_unequal_information_between_looks_keeps_alpha_where_look_index_spending_does_not() -> None:
    # Ten looks at a 10% canary, then thirty at 50%: information per look 0.09 then 0.25 (n_c * n_b / n).
    increments = [0.09] * 10 + [0.25] * 30
    fractions = list(np.cumsum(increments) / sum(increments))
    alpha = 0.05
    rng = np.random.default_rng(1)
    by_information = crossed(fractions, list(boundaries_at(alpha, fractions)), rng)
    by_index = crossed(fractions, list(boundaries(alpha, len(fractions))), rng)
    assert by_information == pytest.approx(alpha, abs=tolerance(alpha))
    assert by_index > alpha + tolerance(alpha)


def test_equally_spaced_looks_are_the_special_case() -> None:
    assert boundaries(0.01, 12) == boundaries_at(0.01, [k / 12 for k in range(1, 13)])
    assert boundaries_at(0.01, [1.0])[0] == pytest.approx(2.3263, abs=1e-4)


@pytest.mark.parametrize("looks", [5, 60])
def test_boundaries_hold_alpha(looks: int) -> None:
    fractions = [k / looks for k in range(1, looks + 1)]
    alpha = 0.01
    rate = crossed(fractions, list(boundaries_at(alpha, fractions)), np.random.default_rng(looks))
    assert rate == pytest.approx(alpha, abs=tolerance(alpha))


def test_windows_judged_apart_share_one_budget() -> None:
    # Two traffic steps, each its own window and test: the first covers 30% of the rollout's information.
    alpha, cut = 0.05, 0.3
    assert spent_in(alpha, (0.0, cut), 1.0) + spent_in(alpha, (cut, 1.0), 1.0) == pytest.approx(alpha)
    assert spent_in(alpha, (0.0, 1.0), 0.4) == pytest.approx(spent(alpha, 0.4))
    rng = np.random.default_rng(2)
    looks = [k / 10 for k in range(1, 11)]
    first = crossed(looks, list(boundaries_at(alpha, looks, (0.0, cut))), rng)
    second = crossed(looks, list(boundaries_at(alpha, looks, (cut, 1.0))), rng)
    # Independent data: the rollout rolls back falsely if either does.
    assert first + second - first * second == pytest.approx(alpha, abs=2 * tolerance(alpha))
    assert first == pytest.approx(spent(alpha, cut), abs=tolerance(alpha))


def test_a_look_that_extends_an_earlier_one_reuses_its_recursion() -> None:
    fractions = [0.1, 0.25, 0.3, 0.55]
    spending._states.clear()
    fresh = boundaries_at(0.02, fractions)
    spending._states.clear()
    boundaries_at(0.02, fractions[:2])
    assert len(spending._states) == 1
    extended = boundaries_at(0.02, fractions)
    assert extended == pytest.approx(fresh, abs=1e-12)
    # A repeated fraction (no new information) gets the boundary of the look it repeats.
    assert boundaries_at(0.02, [0.1, 0.1, 0.5])[1] == boundaries_at(0.02, [0.1])[0]


@pytest.mark.parametrize(
    ("alpha", "fractions", "span"),
    [(0.0, [0.5], (0.0, 1.0)), (0.01, [0.5, 0.4], (0.0, 1.0)), (0.01, [0.0], (0.0, 1.0)), (0.01, [0.5], (0.6, 0.2))],
)
def test_invalid_inputs_raise(alpha: float, fractions: list[float], span: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        boundaries_at(alpha, fractions, span)
