"""The sequential rate judge: error rates on simulated streams, decisions, figures and edge cases."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from modelratchet.judges import JudgeResult, sequential_rate


def _first_decision(results: list[JudgeResult]) -> str:
    return next((r.decision for r in results if r.decision != "continue"), "continue")


def _run_known(rng: np.random.Generator, p: float, p0: float, looks: int, per_look: int, alpha: float) -> str:
    successes = np.cumsum(rng.binomial(per_look, p, looks))
    for i, s in enumerate(successes):
        r = sequential_rate(
            candidate_successes=float(s),
            candidate_total=float((i + 1) * per_look),
            baseline_rate=p0,
            direction="higherIsBetter",
            min_regression=0.02,
            alpha=alpha,
            beta=0.05,
        )
        if r.decision != "continue":
            return r.decision
    return "continue"


def test_aa_false_fail_rate_known_baseline_within_alpha() -> None:
    rng = np.random.default_rng(11)
    runs, alpha = 300, 0.05
    fails = sum(_run_known(rng, 0.90, 0.90, 40, 200, alpha) == "fail" for _ in range(runs))
    # Ville's inequality bounds it by alpha whatever the looks; 3 sd of slack for the simulation.
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_aa_false_fail_rate_side_by_side_within_alpha() -> None:
    rng = np.random.default_rng(12)
    runs, alpha, fails = 200, 0.05, 0
    for _ in range(runs):
        c = np.cumsum(rng.binomial(100, 0.9, 60))
        b = np.cumsum(rng.binomial(900, 0.9, 60))
        for i in range(60):
            r = sequential_rate(
                candidate_successes=float(c[i]),
                candidate_total=100.0 * (i + 1),
                baseline_successes=float(b[i]),
                baseline_total=900.0 * (i + 1),
                direction="higherIsBetter",
                min_regression=0.02,
                alpha=alpha,
            )
            if r.decision != "continue":
                fails += r.decision == "fail"
                break
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_aa_sparse_errors_false_fail_rate_within_alpha() -> None:
    rng = np.random.default_rng(13)
    runs, alpha, fails = 200, 0.05, 0
    for _ in range(runs):
        c = np.cumsum(rng.binomial(200, 0.001, 80))
        b = np.cumsum(rng.binomial(1800, 0.001, 80))
        for i in range(80):
            r = sequential_rate(
                candidate_successes=float(c[i]),
                candidate_total=200.0 * (i + 1),
                baseline_successes=float(b[i]),
                baseline_total=1800.0 * (i + 1),
                direction="lowerIsBetter",
                min_regression=0.002,
                alpha=alpha,
            )
            if r.decision != "continue":
                fails += r.decision == "fail"
                break
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_clear_regression_fails_known_and_side_by_side() -> None:
    known = sequential_rate(
        candidate_successes=2550,
        candidate_total=3000,
        baseline_rate=0.90,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert known.decision == "fail"
    assert known.estimate == pytest.approx(0.85 - 0.90)
    assert known.ci_high is not None and known.ci_high < 0.0
    side = sequential_rate(
        candidate_successes=2550,
        candidate_total=3000,
        baseline_successes=27000,
        baseline_total=30000,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert side.decision == "fail"
    assert "Regressed" in side.message and "3,000 candidate / 30,000 baseline" in side.message


def test_sparse_error_regression_fails() -> None:
    r = sequential_rate(
        candidate_successes=12,
        candidate_total=2000,
        baseline_successes=18,
        baseline_total=18000,
        direction="lowerIsBetter",
        min_regression=0.002,
    )
    assert r.decision == "fail"
    assert r.estimate == pytest.approx(12 / 2000 - 18 / 18000)


def test_no_change_and_improvement_pass_eventually() -> None:
    rng = np.random.default_rng(5)
    assert _run_known(rng, 0.90, 0.90, 200, 100, 0.01) == "pass"
    assert _run_known(rng, 0.92, 0.90, 200, 100, 0.01) == "pass"
    r = sequential_rate(
        candidate_successes=0,
        candidate_total=5000,
        baseline_successes=5,
        baseline_total=45000,
        direction="lowerIsBetter",
        min_regression=0.002,
    )
    assert r.decision == "pass" and "No regression" in r.message


def test_regression_stream_fails_with_power() -> None:
    rng = np.random.default_rng(21)
    outcomes = [_run_known(rng, 0.86, 0.90, 60, 100, 0.01) for _ in range(40)]
    assert outcomes.count("fail") >= 38


@pytest.mark.parametrize("direction", ["higherIsBetter", "lowerIsBetter"])
def test_decision_is_monotone_in_the_candidate_rate(direction: str) -> None:
    order = {"pass": 0, "continue": 1, "fail": 2}
    total = 2000.0
    # Worse candidates: fewer successes for higherIsBetter, more for lowerIsBetter.
    grid = np.linspace(1900, 1700, 41) if direction == "higherIsBetter" else np.linspace(100, 300, 41)
    results = [
        sequential_rate(
            candidate_successes=float(s),
            candidate_total=total,
            baseline_successes=18000,
            baseline_total=20000,
            direction=direction,  # type: ignore[arg-type]
            min_regression=0.02,
        )
        if direction == "higherIsBetter"
        else sequential_rate(
            candidate_successes=float(s),
            candidate_total=total,
            baseline_successes=2000,
            baseline_total=20000,
            direction=direction,  # type: ignore[arg-type]
            min_regression=0.02,
        )
        for s in grid
    ]
    llrs = [r.details["llr"] for r in results]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(llrs))
    ranks = [order[r.decision] for r in results]
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 2


def test_more_evidence_moves_away_from_continue() -> None:
    # The same observed rates with ten times the samples: the likelihood ratio scales up.
    small = sequential_rate(
        candidate_successes=176, candidate_total=200, baseline_rate=0.9, direction="higherIsBetter", min_regression=0.02
    )
    large = sequential_rate(
        candidate_successes=1760 * 2,
        candidate_total=4000,
        baseline_rate=0.9,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert small.decision == "continue" and large.decision == "fail"
    assert small.expected_more is not None and small.expected_more > 0
    assert large.details["llr"] > small.details["llr"]


def test_directions_are_mirror_images() -> None:
    acc = sequential_rate(
        candidate_successes=1780,
        candidate_total=2000,
        baseline_successes=18100,
        baseline_total=20000,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    err = sequential_rate(
        candidate_successes=220,
        candidate_total=2000,
        baseline_successes=1900,
        baseline_total=20000,
        direction="lowerIsBetter",
        min_regression=0.02,
    )
    assert acc.details["llr"] == pytest.approx(err.details["llr"])
    assert acc.estimate == pytest.approx(-(err.estimate or 0.0))
    assert acc.decision == err.decision


def test_figures_are_complete_and_json_safe() -> None:
    r = sequential_rate(
        candidate_successes=890,
        candidate_total=1000,
        baseline_successes=9000,
        baseline_total=10000,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert r.decision == "continue"
    assert r.estimate is not None and r.ci_low is not None and r.ci_high is not None
    assert r.ci_low <= r.estimate <= r.ci_high
    assert r.samples == 1000 and r.details["baseline_samples"] == 10000
    assert r.expected_more is not None and r.expected_more > 0
    assert "more candidate samples" in r.message
    json.dumps(r.details, allow_nan=False)


def test_non_integer_counts_from_increase() -> None:
    r = sequential_rate(
        candidate_successes=1759.6,
        candidate_total=2000.4,
        baseline_rate=0.9,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert r.decision in ("fail", "continue") and r.samples == 2000
    # increase() extrapolation can push successes a hair above total.
    r = sequential_rate(
        candidate_successes=100.3,
        candidate_total=100.0,
        baseline_rate=0.9,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert r.estimate == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("cs", "ct", "fragment"),
    [
        (0.0, 0.0, "no candidate samples"),
        (math.nan, 100.0, "not finite"),
        (5.0, math.inf, "not finite"),
        (-1.0, 10.0, "negative"),
        (500.0, 100.0, "exceed"),
    ],
)
def test_bad_candidate_counts_continue_with_a_reason(cs: float, ct: float, fragment: str) -> None:
    r = sequential_rate(
        candidate_successes=cs, candidate_total=ct, baseline_rate=0.9, direction="higherIsBetter", min_regression=0.02
    )
    assert r.decision == "continue" and fragment in r.message
    assert r.estimate is None and r.expected_more is None


def test_bad_baseline_data_continue_with_a_reason() -> None:
    kw = {"candidate_successes": 90.0, "candidate_total": 100.0, "direction": "higherIsBetter", "min_regression": 0.02}
    assert "no baseline samples" in sequential_rate(baseline_successes=0, baseline_total=0, **kw).message  # type: ignore[arg-type]
    assert "not finite" in sequential_rate(baseline_successes=math.nan, baseline_total=10, **kw).message  # type: ignore[arg-type]
    assert "no baseline counts" in sequential_rate(baseline_successes=None, baseline_total=10, **kw).message  # type: ignore[arg-type]
    assert "not a rate" in sequential_rate(baseline_rate=math.nan, **kw).message  # type: ignore[arg-type]
    assert "cannot regress" in sequential_rate(baseline_rate=0.01, **kw).message  # type: ignore[arg-type]


def test_zero_baseline_error_rate() -> None:
    clean = sequential_rate(
        candidate_successes=0, candidate_total=5000, baseline_rate=0.0, direction="lowerIsBetter", min_regression=0.002
    )
    assert clean.decision == "pass"
    # One error is no longer infinitely unlikely under "no regression": it does not fail by itself.
    one = sequential_rate(
        candidate_successes=1, candidate_total=50, baseline_rate=0.0, direction="lowerIsBetter", min_regression=0.002
    )
    assert one.decision == "continue" and math.isfinite(one.details["llr"])
    assert one.details["h1_baseline_bad_rate"] == pytest.approx(0.0002)  # tested at a tenth of min_regression
    json.dumps(one.details, allow_nan=False)
    dirty = sequential_rate(
        candidate_successes=12, candidate_total=1000, baseline_rate=0.0, direction="lowerIsBetter", min_regression=0.002
    )
    assert dirty.decision == "fail" and dirty.estimate == pytest.approx(0.012)


def test_zero_baseline_rate_keeps_alpha_for_rates_below_a_tenth_of_the_regression() -> None:
    # A candidate erring at 0.0002 (a tenth of the regression that matters) against a static 0: before, its
    # first error failed it at once (most runs); now the test holds alpha there, with looks every 100 requests.
    rng = np.random.default_rng(21)
    runs, alpha, fails = 300, 0.05, 0
    for _ in range(runs):
        errors = np.cumsum(rng.binomial(100, 0.0002, 200))
        for i, e in enumerate(errors):
            r = sequential_rate(
                candidate_successes=float(e),
                candidate_total=100.0 * (i + 1),
                baseline_rate=0.0,
                direction="lowerIsBetter",
                min_regression=0.002,
                alpha=alpha,
            )
            if r.decision != "continue":
                fails += r.decision == "fail"
                break
    assert fails / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_huge_counts_stay_finite() -> None:
    r = sequential_rate(
        candidate_successes=9e8,
        candidate_total=1e9,
        baseline_successes=9e9,
        baseline_total=1e10,
        direction="higherIsBetter",
        min_regression=0.02,
    )
    assert r.decision == "pass"
    json.dumps(r.details, allow_nan=False)


@pytest.mark.parametrize(
    "kw",
    [
        {"direction": "up"},
        {"min_regression": 0.0},
        {"min_regression": math.nan},
        {"alpha": 0.0},
        {"beta": 1.0},
        {"baseline_successes": 1.0, "baseline_total": 2.0},  # together with baseline_rate
        {"baseline_rate": None},  # no baseline at all
    ],
)
def test_invalid_configuration_raises(kw: dict[str, object]) -> None:
    args: dict[str, object] = {
        "candidate_successes": 9.0,
        "candidate_total": 10.0,
        "baseline_rate": 0.9,
        "direction": "higherIsBetter",
        "min_regression": 0.02,
    }
    args.update(kw)
    with pytest.raises(ValueError):
        sequential_rate(**args)  # type: ignore[arg-type]
