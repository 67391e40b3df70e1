"""The group-sequential Mann-Whitney judge: error rates, decisions, figures, spending and edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from modelratchet.judges import mann_whitney
from modelratchet.judges.spending import boundaries, spent
from scipy.special import ndtri
from scipy.stats import mannwhitneyu


def _latency(rng: np.random.Generator, n: int, shift: float = 0.0, sigma: float = 0.5) -> list[float]:
    """Log-normal latencies in seconds, median 100 ms times (1 + shift)."""
    values: list[float] = np.exp(np.log(0.1 * (1.0 + shift)) + sigma * rng.standard_normal(n)).tolist()
    return values


def _sequential_run(rng: np.random.Generator, looks: int, per_look: int, alpha: float, **truth: float) -> str:
    cand = np.concatenate(
        [_latency(rng, per_look, truth.get("shift", 0.0), truth.get("sigma", 0.5)) for _ in range(looks)]
    )
    base = np.concatenate([_latency(rng, per_look) for _ in range(looks)])
    for k in range(1, looks + 1):
        r = mann_whitney(
            candidate=cand[: k * per_look].tolist(),
            baseline=base[: k * per_look].tolist(),
            direction="lowerIsBetter",
            min_effect=0.05,
            alpha=alpha,
            look=k,
            max_looks=looks,
        )
        if r.decision != "continue":
            return r.decision
    raise AssertionError("the final look must decide")


def test_aa_false_fail_rate_with_repeated_looks_within_alpha() -> None:
    rng = np.random.default_rng(7)
    runs, alpha = 120, 0.1
    fails = sum(_sequential_run(rng, 6, 20, alpha) == "fail" for _ in range(runs))
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_aa_single_look_false_fail_rate_within_alpha() -> None:
    rng = np.random.default_rng(8)
    runs, alpha = 300, 0.1
    fails = sum(
        mann_whitney(
            candidate=_latency(rng, 60),
            baseline=_latency(rng, 60),
            direction="lowerIsBetter",
            min_effect=0.0,
            alpha=alpha,
        ).decision
        == "fail"
        for _ in range(runs)
    )
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_clear_shift_fails_at_the_first_look() -> None:
    rng = np.random.default_rng(1)
    r = mann_whitney(
        candidate=_latency(rng, 300, 0.3),
        baseline=_latency(rng, 300),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=1,
        max_looks=20,
    )
    assert r.decision == "fail"
    assert r.details["rel_shift"] > 0.15 and r.details["p_location"] <= r.details["nominal_level"]
    assert r.estimate is not None and r.ci_low is not None and r.ci_high is not None
    assert 0.0 < r.ci_low <= r.estimate <= r.ci_high
    assert "floor on location" in r.message


def test_variance_only_regression_fails_on_the_tail() -> None:
    rng = np.random.default_rng(2)
    r = mann_whitney(
        candidate=_latency(rng, 400, sigma=0.8),
        baseline=_latency(rng, 400),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=3,
        max_looks=10,
    )
    assert r.decision == "fail"
    assert r.details["p_tail"] <= r.details["nominal_level"]
    assert r.details["p_location"] > r.details["nominal_level"]  # a location test alone would miss it
    assert r.details["rel_tail_q90"] > 0.2 and r.details["tail_share"] > 0.12
    assert "floor on tail" in r.message


def test_no_change_passes_at_the_final_look_and_improvement_passes_early() -> None:
    rng = np.random.default_rng(3)
    final = mann_whitney(
        candidate=_latency(rng, 200),
        baseline=_latency(rng, 200),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=10,
        max_looks=10,
    )
    assert final.decision == "pass"
    early = mann_whitney(
        candidate=_latency(rng, 2000, -0.3, sigma=0.3),
        baseline=_latency(rng, 2000, sigma=0.3),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=2,
        max_looks=10,
    )
    assert early.decision == "pass" and early.details["bounds_exclude_min_effect"] == 1.0
    assert "exclude" in early.message


def test_significant_shift_below_the_floor_is_not_a_regression() -> None:
    rng = np.random.default_rng(4)
    r = mann_whitney(
        candidate=_latency(rng, 3000, 0.02, sigma=0.1),
        baseline=_latency(rng, 3000, sigma=0.1),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=1,
        max_looks=1,
    )
    assert r.details["p_location"] < 1e-6  # clearly significant
    assert 0.0 < r.details["rel_shift"] < 0.05
    assert r.decision == "pass"


def test_repeated_looks_make_each_look_stricter() -> None:
    rng = np.random.default_rng(5)
    c, b = _latency(rng, 200, 0.12), _latency(rng, 200)
    single = mann_whitney(candidate=c, baseline=b, direction="lowerIsBetter", min_effect=0.05)
    many = mann_whitney(candidate=c, baseline=b, direction="lowerIsBetter", min_effect=0.05, look=5, max_looks=40)
    assert many.details["nominal_level"] < single.details["nominal_level"]
    assert many.details["p_location"] == pytest.approx(single.details["p_location"])


def test_decision_is_monotone_in_the_shift() -> None:
    rng = np.random.default_rng(6)
    base = _latency(rng, 300)
    noise = rng.standard_normal(300)
    order = {"pass": 0, "continue": 1, "fail": 2}
    ranks = []
    for shift in np.linspace(-0.4, 0.4, 17):
        cand = np.exp(np.log(0.1 * (1 + shift)) + 0.5 * noise).tolist()
        r = mann_whitney(candidate=cand, baseline=base, direction="lowerIsBetter", min_effect=0.05, look=2, max_looks=5)
        ranks.append(order[r.decision])
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 2


def test_higher_is_better_mirrors_lower_is_better() -> None:
    rng = np.random.default_rng(9)
    c, b = _latency(rng, 150, 0.2), _latency(rng, 150)
    low = mann_whitney(candidate=c, baseline=b, direction="lowerIsBetter", min_effect=0.05)
    high = mann_whitney(
        candidate=[-x for x in c], baseline=[-x for x in b], direction="higherIsBetter", min_effect=0.05
    )
    assert low.decision == high.decision == "fail"
    assert high.estimate == pytest.approx(-(low.estimate or 0.0))
    assert high.details["p_location"] == pytest.approx(low.details["p_location"])


@pytest.mark.parametrize("n", [40, 260])  # exact order statistics, then the root search
def test_hodges_lehmann_and_p_value_match_direct_computation(n: int) -> None:
    rng = np.random.default_rng(n)
    c, b = _latency(rng, n, 0.1), _latency(rng, n + 3)
    r = mann_whitney(candidate=c, baseline=b, direction="lowerIsBetter", min_effect=0.05)
    assert r.estimate == pytest.approx(float(np.median(np.subtract.outer(c, b))), rel=1e-4, abs=1e-6)
    expected = mannwhitneyu(c, b, alternative="greater", method="asymptotic").pvalue
    assert r.details["p_location"] == pytest.approx(float(expected), rel=1e-6)


def test_ties_in_discrete_samples() -> None:
    rng = np.random.default_rng(10)
    c = np.round(np.asarray(_latency(rng, 200, 0.2)) * 1000).tolist()  # whole milliseconds
    b = np.round(np.asarray(_latency(rng, 200)) * 1000).tolist()
    r = mann_whitney(candidate=c, baseline=b, direction="lowerIsBetter", min_effect=0.05)
    expected = mannwhitneyu(c, b, alternative="greater", method="asymptotic").pvalue
    assert r.details["p_location"] == pytest.approx(float(expected), rel=1e-6)


def test_figures_are_complete_and_json_safe() -> None:
    rng = np.random.default_rng(12)
    r = mann_whitney(
        candidate=_latency(rng, 80, 0.04),
        baseline=_latency(rng, 80),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=2,
        max_looks=10,
    )
    assert r.decision == "continue"
    assert r.samples == 80 and r.details["baseline_samples"] == 80
    assert r.details["alpha_spent"] == pytest.approx(spent(0.01, 0.2))
    assert "look 2/10" in r.message
    json.dumps(r.details, allow_nan=False)


@pytest.mark.parametrize(
    ("cand", "base", "fragment"),
    [
        ([], [], "Too few samples"),
        ([1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0], "Too few samples"),
        ([math.nan] * 10, [1.0] * 10, "Too few samples"),
        ([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 1.0, -1.0], "median is 0"),
    ],
)
def test_degenerate_samples_continue_with_a_reason(cand: list[float], base: list[float], fragment: str) -> None:
    r = mann_whitney(candidate=cand, baseline=base, direction="lowerIsBetter", min_effect=0.05, look=3, max_looks=3)
    assert r.decision == "continue" and fragment in r.message and r.estimate is None


def test_non_finite_values_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(13)
    c = [*_latency(rng, 50), math.nan, math.inf]
    r = mann_whitney(candidate=c, baseline=_latency(rng, 50), direction="lowerIsBetter", min_effect=0.05)
    assert r.samples == 50 and r.details["dropped_nonfinite"] == 2.0


def test_constant_samples_do_not_crash() -> None:
    r = mann_whitney(candidate=[0.1] * 20, baseline=[0.1] * 20, direction="lowerIsBetter", min_effect=0.05)
    assert r.decision == "pass" and r.estimate == 0.0


def test_look_past_the_schedule_is_judged_as_final() -> None:
    rng = np.random.default_rng(14)
    r = mann_whitney(
        candidate=_latency(rng, 50),
        baseline=_latency(rng, 50),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=7,
        max_looks=5,
    )
    assert r.decision in ("pass", "fail")


@pytest.mark.parametrize(
    "kw", [{"direction": "down"}, {"min_effect": -0.1}, {"alpha": 1.5}, {"look": 0}, {"max_looks": 0}]
)
def test_invalid_configuration_raises(kw: dict[str, object]) -> None:
    args: dict[str, object] = {
        "candidate": [1.0] * 10,
        "baseline": [1.0] * 10,
        "direction": "lowerIsBetter",
        "min_effect": 0.05,
    }
    args.update(kw)
    with pytest.raises(ValueError):
        mann_whitney(**args)  # type: ignore[arg-type]


def test_spending_boundaries_hold_alpha_under_brownian_motion() -> None:
    rng = np.random.default_rng(15)
    looks, alpha, paths = 10, 0.05, 40_000
    crit = np.array(boundaries(alpha, looks))
    increments = rng.standard_normal((paths, looks)) * math.sqrt(1.0 / looks)
    z = np.cumsum(increments, axis=1) / np.sqrt(np.arange(1, looks + 1) / looks)
    crossed = float(np.mean((z >= crit).any(axis=1)))
    assert crossed == pytest.approx(alpha, abs=4 * math.sqrt(alpha * (1 - alpha) / paths))
    # Pocock-type: the same alpha in one look is the plain one-sided quantile; more looks raise the bar.
    assert boundaries(alpha, 1)[0] == pytest.approx(float(ndtri(1 - alpha)))
    assert min(crit) > boundaries(alpha, 1)[0]
    assert spent(alpha, 1.0) == pytest.approx(alpha)


def test_tail_test_does_not_fire_on_a_faster_candidate() -> None:
    rng = np.random.default_rng(16)
    r = mann_whitney(
        candidate=_latency(rng, 400, -0.2), baseline=_latency(rng, 400), direction="lowerIsBetter", min_effect=0.05
    )
    assert r.decision == "pass" and r.details["z_tail"] < 0.0 and r.details["z_location"] < 0.0


def test_tail_bounds_bracket_the_estimate() -> None:
    rng = np.random.default_rng(17)
    r = mann_whitney(
        candidate=_latency(rng, 500, sigma=0.6),
        baseline=_latency(rng, 500),
        direction="lowerIsBetter",
        min_effect=0.05,
        look=4,
        max_looks=10,
    )
    d = r.details
    assert d["rel_tail_q90_low"] <= d["rel_tail_q90"] <= d["rel_tail_q90_high"]
