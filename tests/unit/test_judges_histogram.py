"""The histogram judge: error rates at unequal traffic, stratification, decisions, frozen baselines, inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from modelratchet.judges import JudgeResult, buckets, histogram, per_bucket
from scipy.special import ndtri
from scipy.stats import norm

# The Python client's default buckets: coarse around 100 ms, as most services have them.
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf]


def probs(median: float, sigma: float = 0.5) -> np.ndarray:
    """Share of log-normal requests per bucket."""
    cdf = np.append(norm.cdf((np.log(BOUNDS[:-1]) - math.log(median)) / sigma), 1.0)
    return np.diff(np.concatenate([[0.0], cdf]))


def windows(
    rng: np.random.Generator,
    n: int,
    per_window: float,
    *,
    median: float = 0.1,
    sigma: float = 0.5,
    levels: np.ndarray | None = None,
) -> list[list[float]]:
    """Per-bucket counts of ``n`` windows with Poisson traffic; ``levels`` shifts each window's median (drift)."""
    out = []
    for k in range(n):
        level = 1.0 if levels is None else float(levels[k])
        out.append(rng.multinomial(rng.poisson(per_window), probs(median * level, sigma)).astype(float).tolist())
    return out


def judge(cand: list[list[float]], base: list[list[float]], **kw: object) -> JudgeResult:
    args: dict[str, object] = {
        "bounds": BOUNDS,
        "candidate": cand,
        "baseline": base,
        "direction": "lowerIsBetter",
        "min_effect": 0.05,
        "alpha": 0.01,
    }
    args.update(kw)
    return histogram(**args)  # type: ignore[arg-type]


def first_decision(cand: list[list[float]], base: list[list[float]], alpha: float) -> str:
    """Look after every window, as the operator does, until a decision."""
    w = len(cand)
    for k in range(1, w + 1):
        r = histogram(
            bounds=BOUNDS,
            candidate=cand[:k],
            baseline=base[:k],
            direction="lowerIsBetter",
            min_effect=0.05,
            alpha=alpha,
            ahead=float(w - k),
            final=k == w,
        )
        if r.decision != "continue":
            return r.decision
    raise AssertionError("the final look must decide")


@pytest.mark.parametrize(("cand_rps", "base_rps"), [(2.0, 18.0), (10.0, 90.0)])
def test_aa_false_fail_rate_does_not_depend_on_the_split(cand_rps: float, base_rps: float) -> None:
    # A drifting level shared by both arms, looks every 30 s window; alpha 5% so 120 runs can see it.
    rng = np.random.default_rng(int(cand_rps))
    runs, alpha, fails = 120, 0.05, 0
    for _ in range(runs):
        levels = np.exp(0.1 * np.sin(np.arange(10) / 6.0 + rng.uniform(0, 6)))
        cand = windows(rng, 10, cand_rps * 30, levels=levels)
        base = windows(rng, 10, base_rps * 30, levels=levels)
        fails += first_decision(cand, base, alpha) == "fail"
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.mark.parametrize(("n", "total"), [(10, 400), (60, 600)])
def test_skewness_correction_holds_the_tail_tests_level_on_its_exact_permutation_distribution(
    n: int, total: int
) -> None:
    # One window: every split of its requests into n candidate and total - n stable ones is equally likely under
    # no change. The tail scores' sum is right-skewed; at the normal boundary it exceeds its level 2-4 times.
    rng = np.random.default_rng(n)
    pooled = rng.multinomial(total, probs(0.1))
    cand = rng.multivariate_hypergeometric(pooled, n, size=100_000).astype(float)
    strata = buckets._strata(cand, pooled - cand)
    z = strata.tail / np.sqrt(strata.tail_var)
    level = 0.005
    plain = float(ndtri(1.0 - level))
    corrected = buckets._skewed(plain, float(strata.tail_k3[0]), float(strata.tail_var[0]))
    assert float(np.mean(z >= plain)) > 2.0 * level
    assert float(np.mean(z >= corrected)) < 1.25 * level


def test_windows_are_strata_so_a_drift_met_at_different_times_is_no_regression() -> None:
    # The level doubles over the analysis; the candidate takes most of its traffic late (the split steps up).
    # Pooled over time it looks much slower than the stable checkpoint; window by window it is the same.
    rng = np.random.default_rng(4)
    levels = np.linspace(1.0, 2.0, 20)
    cand = [windows(rng, 1, 20 if k < 10 else 400, levels=levels[k : k + 1])[0] for k in range(20)]
    base = [windows(rng, 1, 400 if k < 10 else 20, levels=levels[k : k + 1])[0] for k in range(20)]
    r = judge(cand, base, final=True)
    assert r.decision == "pass", r.message
    assert abs(r.details["z_location"]) < 2.5
    pooled = judge([list(np.sum(cand, axis=0))], [list(np.sum(base, axis=0))], final=True)
    assert pooled.decision == "fail"


def test_a_slower_median_fails_on_location() -> None:
    rng = np.random.default_rng(5)
    r = judge(windows(rng, 10, 300, median=0.125), windows(rng, 10, 300), ahead=20.0)
    assert r.decision == "fail"
    assert "location" in r.message
    d = r.details
    assert d["z_location"] >= d["z_critical_location"]
    # The shift estimate on the bucket scale is near the truth (+25%) despite buckets 2.5x wide.
    assert 0.15 < d["rel_shift"] < 0.35
    assert d["rel_shift_low"] <= d["rel_shift"] <= d["rel_shift_high"]


def test_a_longer_tail_at_the_same_median_fails_on_the_tail() -> None:
    rng = np.random.default_rng(6)
    r = judge(windows(rng, 10, 300, sigma=0.75), windows(rng, 10, 300), ahead=20.0)
    assert r.decision == "fail"
    d = r.details
    assert "tail" in r.message and d["z_tail"] >= d["z_critical_tail"]
    assert abs(d["rel_shift"]) < 0.05 and d["rel_tail_q90"] > 0.2


def test_a_faster_candidate_passes_early() -> None:
    rng = np.random.default_rng(7)
    r = judge(windows(rng, 10, 500, median=0.08), windows(rng, 10, 500), ahead=30.0)
    assert r.decision == "pass" and "exclude" in r.message
    assert r.details["z_location"] < 0 and r.ci_high is not None and r.ci_high < 0.05


def test_undecided_until_the_final_look_of_the_step() -> None:
    rng = np.random.default_rng(8)
    cand, base = windows(rng, 2, 20), windows(rng, 2, 20)
    assert judge(cand, base, ahead=10.0).decision == "continue"
    final = judge(cand, base, ahead=10.0, final=True)
    assert final.decision == "pass" and "final look" in final.message


def test_a_significant_difference_below_the_floor_is_no_regression() -> None:
    rng = np.random.default_rng(9)
    cand, base = windows(rng, 10, 20_000, median=0.102), windows(rng, 10, 20_000)
    r = judge(cand, base, min_effect=0.05)
    assert r.details["z_location"] > r.details["z_critical_location"]
    assert r.decision == "pass"
    assert judge(cand, base, min_effect=0.0).decision == "fail"


def test_spending_spans_the_looks_and_the_window_share() -> None:
    rng = np.random.default_rng(10)
    cand, base = windows(rng, 5, 200), windows(rng, 5, 200)
    early = judge(cand, base, ahead=45.0).details
    last = judge(cand, base, ahead=0.0).details
    # More information still to come: a smaller fraction, a higher boundary.
    assert early["information_fraction"] < 0.2 and last["information_fraction"] == pytest.approx(1.0)
    assert early["z_critical_location"] > last["z_critical_location"]
    # The second of two windows judged apart spends only its share, and reports the rollout-wide fraction.
    second = judge(cand, base, ahead=0.0, span=(0.5, 1.0)).details
    assert second["z_critical_location"] > last["z_critical_location"]
    assert second["information_fraction"] == pytest.approx(1.0) and second["alpha_spent"] == pytest.approx(0.01)


def test_higher_is_better_reverses_the_buckets() -> None:
    rng = np.random.default_rng(11)
    worse = judge(windows(rng, 8, 300, median=0.08), windows(rng, 8, 300), direction="higherIsBetter")
    assert worse.decision == "fail"
    assert worse.details["rel_shift"] > 0.05
    better = judge(windows(rng, 8, 300, median=0.125), windows(rng, 8, 300), direction="higherIsBetter")
    assert better.decision != "fail"


def test_frozen_baseline_counts_are_one_stratum() -> None:
    rng = np.random.default_rng(12)
    recorded = [list(np.sum(windows(rng, 10, 300), axis=0))]
    same = judge(windows(rng, 10, 300), recorded, frozen_baseline=True, final=True)
    assert same.decision == "pass" and "recorded baseline" in same.message
    slower = judge(windows(rng, 10, 300, median=0.13), recorded, frozen_baseline=True, ahead=10.0)
    assert slower.decision == "fail" and "recorded baseline" in slower.message


def test_too_few_requests_wait() -> None:
    r = judge([[0.0] * 14 + [3.0]], [[0.0] * 14 + [50.0]])
    assert r.decision == "continue" and "Too few requests" in r.message
    one_arm = judge([[10.0] + [0.0] * 14, [0.0] * 15], [[0.0] * 15, [10.0] + [0.0] * 14])
    assert one_arm.decision == "continue" and "both checkpoints" in one_arm.message


def test_per_bucket_from_cumulative_counts() -> None:
    got = per_bucket([0.1, 0.5, math.inf], [[2, 5, 6], [0, 0, 0], [3, 2, 4], [1, 1, math.nan]])
    assert not isinstance(got, str)
    # The window whose cumulative counts decrease (a reset) and the one with NaN are left out, and counted.
    assert got.rows == ((2.0, 3.0, 1.0), (0.0, 0.0, 0.0)) and got.dropped == 2
    refused = per_bucket([0.1, math.inf], [[1.2, 3.6]])
    assert isinstance(refused, str) and "not whole numbers" in refused and "offset" in refused
    assert "3 bucket counts" in str(per_bucket([0.1, math.inf], [[1, 2, 3]]))


@pytest.mark.parametrize(
    "kw",
    [
        {"direction": "down"},
        {"min_effect": -0.1},
        {"alpha": 0.0},
        {"ahead": -1.0},
        {"bounds": [0.1]},
        {"bounds": [0.5, 0.1] + [math.inf] * 13},
    ],
)
def test_invalid_configuration_raises(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        judge([[1.0] * 15], [[1.0] * 15], **kw)
