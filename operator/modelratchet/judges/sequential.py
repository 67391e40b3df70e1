"""Sequential judge for rate metrics (accuracy, error rate) from cumulative counts.

The statistic is a likelihood ratio of two simple hypotheses about the rate of *bad* events
(wrong predictions for a higherIsBetter accuracy, errors for a lowerIsBetter error rate):

- H0: the candidate's bad-event rate equals the baseline's (no regression; a better candidate is
  even further from H1, so the test is conservative there);
- H1: the candidate's bad-event rate is ``min_regression`` higher.

Known baseline rate: Wald's sequential probability ratio test on Bernoulli counts (Wald 1945). A known
rate below a tenth of ``min_regression`` (0 included) is tested as that tenth: the error bound still
holds at the baseline's rate and below, and one bad event no longer decides alone.
Side by side (baseline measured live): the same test with the unknown baseline rate profiled out
of both hypotheses by maximum likelihood, the large-sample SPRT for composite hypotheses of
Bartlett (1946) and Cox (1963); its increments behave like Brownian motion with drift in
information time (Whitehead 1997), which is what makes Wald's boundaries carry over.

The boundaries are Ville's inequality rather than Wald's approximations: fail when the likelihood
ratio reaches ``1/alpha``, pass when it falls to ``beta``. Under H0 the ratio is a (super)martingale
with mean one, so it crosses ``1/alpha`` with probability at most ``alpha`` however often it is
looked at, and symmetrically for ``beta`` under H1 (exactly with a known baseline, asymptotically
side by side). Because the ratio depends only on the cumulative counts, the operator can evaluate it
after every interval without keeping any other state; it costs about 2% more samples than Wald's
``log((1 - beta) / alpha)`` boundary.

The reported interval is a confidence sequence from a Beta-binomial mixture martingale (Robbins
1970; Howard, Ramdas, McAuliffe and Sekhon 2021): valid at every look simultaneously, so it can be
shown after each interval without inflating its error either.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import betaln

from .types import Decision, Direction, JudgeResult

_PRIOR = 0.5  # Jeffreys Beta(1/2, 1/2) mixing prior: puts weight near 0 and 1, where sparse rates live
# A known bad-event rate below this share of min_regression is tested at it: at a rate of exactly 0 the
# first bad event would be infinitely unlikely under "no regression" and fail the candidate by itself.
_NULL_FLOOR = 0.1
_LLR_CAP = 1e6  # details must stay finite (status is JSON)


def _xlog(count: float, p: float) -> float:
    """``count * log(p)`` with 0 * log(0) = 0."""
    if count == 0.0:
        return 0.0
    if p <= 0.0:
        return -math.inf
    return count * math.log(p)


def _loglik(bad: float, total: float, q: float) -> float:
    """Bernoulli log-likelihood of ``bad`` bad events in ``total`` at rate ``q`` (order-specific)."""
    return _xlog(bad, q) + _xlog(total - bad, 1.0 - q)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _fmt_signed(x: float) -> str:
    return f"{x:+.4g}"


def _fmt_count(x: float) -> str:
    return f"{round(x):,}"


def _continue(message: str, samples: float = 0.0, **details: float) -> JudgeResult:
    n = round(samples) if math.isfinite(samples) and samples > 0 else 0
    return JudgeResult("continue", None, None, None, n, None, message, dict(details))


def _clean(successes: float, total: float, arm: str) -> tuple[float, float] | str:
    """Validated (successes, total) or the reason they cannot be used."""
    try:
        s, n = float(successes), float(total)
    except (TypeError, ValueError):
        return f"the {arm} counts are not numbers"
    if not (math.isfinite(s) and math.isfinite(n)):
        return f"the {arm} counts are not finite (successes={s}, total={n}): no data for this interval"
    if s < 0.0 or n < 0.0:
        return f"the {arm} counts are negative (successes={s}, total={n}): a counter reset?"
    if n == 0.0:
        return f"no {arm} samples yet"
    # increase() extrapolates each series on its own, so successes may exceed total by a hair.
    if s > n + max(1.0, 0.01 * n):
        return f"the {arm} successes exceed its total ({_fmt(s)} > {_fmt(n)})"
    return min(s, n), n


def _profile_h1(bad_c: float, n_c: float, bad_b: float, n_b: float, delta: float) -> tuple[float, float]:
    """Baseline bad-event rate q maximising the likelihood when the candidate's rate is q + delta.

    Returns (q, log-likelihood). The log-likelihood is concave in q on [0, 1 - delta], so the
    maximiser is the root of its derivative, or an end point.
    """

    def loglik(q: float) -> float:
        return _loglik(bad_c, n_c, q + delta) + _loglik(bad_b, n_b, q)

    def slope(q: float) -> float:
        d = 0.0
        if bad_c:
            d += bad_c / (q + delta)
        if n_c - bad_c:
            d -= (n_c - bad_c) / (1.0 - q - delta)
        if bad_b:
            d += bad_b / q
        if n_b - bad_b:
            d -= (n_b - bad_b) / (1.0 - q)
        return d

    top = 1.0 - delta
    lo = 0.0 if bad_b == 0.0 else min(1e-300, top)
    hi = top if n_c == bad_c else math.nextafter(top, 0.0)
    if slope(lo) <= 0.0:
        return lo, loglik(lo)
    if slope(hi) >= 0.0:
        return hi, loglik(hi)
    q = float(brentq(slope, lo, hi, xtol=1e-300, rtol=1e-14, maxiter=200))
    return q, loglik(q)


def _confidence_sequence(bad: float, total: float, alpha: float) -> tuple[float, float]:
    """Always-valid (1 - alpha) bounds on a bad-event rate from the Beta-binomial mixture.

    {q : M_n / L_n(q) < 1/alpha}, where M_n is the Beta(1/2, 1/2) mixture likelihood; by Ville's
    inequality it covers the true q at every n simultaneously with probability >= 1 - alpha.
    """
    log_mix = float(betaln(bad + _PRIOR, total - bad + _PRIOR) - betaln(_PRIOR, _PRIOR))
    cut = math.log(1.0 / alpha)

    def excess(q: float) -> float:
        return log_mix - _loglik(bad, total, q) - cut

    mle = bad / total
    sd = math.sqrt(max(mle * (1.0 - mle), 1.0 / total) / total)

    def bracket(toward_zero: bool) -> float:
        # A point beyond the root (excess > 0): the set is about 4-5 standard errors wide.
        step = 6.0 * sd
        while True:
            end = mle - step if toward_zero else mle + step
            if end <= 0.0 or end >= 1.0:
                break
            if excess(end) > 0.0:
                return end
            step *= 2.0
        end = 1e-300 if toward_zero else math.nextafter(1.0, 0.0)
        return end

    lower = 0.0 if bad == 0.0 else float(brentq(excess, bracket(True), mle, xtol=1e-300, rtol=1e-10))
    upper = 1.0 if bad == total else float(brentq(excess, mle, bracket(False), xtol=1e-300, rtol=1e-10))
    return lower, upper


def _exit_time(x: float, lower: float, upper: float, drift: float, var: float) -> float:
    """Expected time for Brownian motion with ``drift`` and ``var`` per step to leave (lower, upper) from x.

    Wald's approximations for the sequential test's remaining sample number, with no overshoot.
    """
    if not (math.isfinite(x) and math.isfinite(drift) and math.isfinite(var)) or var <= 0.0:
        return math.inf
    u, w = x - lower, upper - lower
    theta = 2.0 * drift / var
    if abs(theta * w) < 1e-8:
        return (upper - x) * (x - lower) / var
    if theta > 0.0:
        p_upper = math.expm1(-theta * u) / math.expm1(-theta * w)
    else:
        p_upper = math.exp(theta * (w - u)) * math.expm1(theta * u) / math.expm1(theta * w)
    return (p_upper * (upper - x) + (1.0 - p_upper) * (lower - x)) / drift


def _check_config(direction: str, min_regression: float, alpha: float, beta: float) -> None:
    if direction not in ("higherIsBetter", "lowerIsBetter"):
        raise ValueError(f"direction must be higherIsBetter or lowerIsBetter, not {direction!r}")
    if not (math.isfinite(min_regression) and 0.0 < min_regression < 1.0):
        raise ValueError(f"min_regression must be a rate difference in (0, 1), not {min_regression!r}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (math.isfinite(value) and 0.0 < value < 1.0):
            raise ValueError(f"{name} must be in (0, 1), not {value!r}")


def sequential_rate(
    *,
    candidate_successes: float,
    candidate_total: float,
    baseline_rate: float | None = None,
    baseline_successes: float | None = None,
    baseline_total: float | None = None,
    direction: Direction,
    min_regression: float,
    alpha: float = 0.01,
    beta: float = 0.05,
    frozen_baseline: bool = False,
) -> JudgeResult:
    """Judge a rate metric from cumulative counts with an always-valid sequential likelihood ratio test.

    ``successes / total`` is the metric (correct / predictions for accuracy, errors / requests for an
    error rate); ``direction`` says which way is bad. Give the baseline either as a known rate
    (``baseline_rate``) or as live counts of the stable arm over the same window
    (``baseline_successes`` and ``baseline_total``); ``frozen_baseline`` says those counts were recorded
    earlier and do not grow (a static baseline's evidence, or what the stable checkpoint measured during
    the canary), which only changes the wording. ``min_regression`` is the smallest regression that
    matters, in absolute units of the rate.

    Counts must be cumulative since the analysis began; they may be non-integers (Prometheus
    ``increase()``). Fails with probability at most ``alpha`` when there is no regression and passes
    with probability at most ``beta`` when the regression is ``min_regression`` or more, however many
    times it is evaluated (exactly with a known baseline rate, in large samples side by side). Data
    problems (NaN, zero totals, inconsistent counts) return ``"continue"`` with the reason; only an
    invalid configuration raises ``ValueError``.
    """
    _check_config(direction, min_regression, alpha, beta)
    known = baseline_rate is not None
    side = baseline_successes is not None or baseline_total is not None
    if known and side:
        raise ValueError("give either baseline_rate or baseline_successes/baseline_total, not both")
    if not known and not side:
        raise ValueError("give baseline_rate (known baseline) or baseline_successes/baseline_total (side by side)")

    cand = _clean(candidate_successes, candidate_total, "candidate")
    if isinstance(cand, str):
        samples = candidate_total if isinstance(candidate_total, (int, float)) else 0.0
        return _continue(cand, samples)
    s_c, n_c = cand
    higher = direction == "higherIsBetter"
    delta = float(min_regression)
    fail_at, pass_at = math.log(1.0 / alpha), math.log(beta)
    rate_c = s_c / n_c
    bad_c = n_c - s_c if higher else s_c

    if baseline_rate is not None:
        p0 = float(baseline_rate)
        if not (math.isfinite(p0) and 0.0 <= p0 <= 1.0):
            return _continue(f"the baseline rate {p0} is not a rate in [0, 1]", n_c)
        q0 = 1.0 - p0 if higher else p0
        q1 = q0 + delta
        if q1 > 1.0:
            return _continue(
                f"a baseline rate of {_fmt(p0)} cannot regress by {_fmt(delta)}: lower min_regression", n_c
            )
        null = max(q0, _NULL_FLOOR * delta)
        llr = _loglik(bad_c, n_c, q1) - _loglik(bad_c, n_c, null)
        rate_b, n_b, s_b = p0, math.inf, math.nan
        q_c_lo, q_c_hi = _confidence_sequence(bad_c, n_c, alpha)
        ci_q = (q_c_lo - q0, q_c_hi - q0)
        # Per-sample drift and variance of the exact Bernoulli increments at the (shrunk) estimate.
        qt = (bad_c + 0.5) / (n_c + 1.0)
        up, down = math.log(q1 / null), (math.log((1.0 - q1) / (1.0 - null)) if q1 < 1.0 else -math.inf)
        drift, var = qt * up + (1.0 - qt) * down, qt * (1.0 - qt) * (up - down) ** 2
        nuisance = null
    else:
        if baseline_successes is None or baseline_total is None:
            return _continue("no baseline counts for this interval", n_c)
        base = _clean(baseline_successes, baseline_total, "baseline")
        if isinstance(base, str):
            return _continue(base, n_c)
        s_b, n_b = base
        rate_b = s_b / n_b
        bad_b = n_b - s_b if higher else s_b
        pooled = (bad_c + bad_b) / (n_c + n_b)
        nuisance, log_h1 = _profile_h1(bad_c, n_c, bad_b, n_b, delta)
        llr = log_h1 - (_loglik(bad_c, n_c, pooled) + _loglik(bad_b, n_b, pooled))
        # Bonferroni: alpha/2 for each arm's sequence gives a (1 - alpha) sequence for the difference.
        c_lo, c_hi = _confidence_sequence(bad_c, n_c, alpha / 2.0)
        b_lo, b_hi = _confidence_sequence(bad_b, n_b, alpha / 2.0)
        ci_q = (c_lo - b_hi, c_hi - b_lo)
        # Brownian approximation (Whitehead): information per candidate sample at the current allocation.
        qc, qb = (bad_c + 0.5) / (n_c + 1.0), (bad_b + 0.5) / (n_b + 1.0)
        info = 1.0 / (qc * (1.0 - qc) + qb * (1.0 - qb) * n_c / n_b)
        drift, var = info * delta * (qc - qb - delta / 2.0), info * delta * delta

    # Back from bad-event rates to the metric's own units.
    estimate = rate_c - rate_b
    ci_low, ci_high = (-ci_q[1], -ci_q[0]) if higher else ci_q
    decision: Decision
    if llr >= fail_at:
        decision, remaining = "fail", 0.0
    elif llr <= pass_at:
        decision, remaining = "pass", 0.0
    else:
        decision, remaining = "continue", _exit_time(llr, pass_at, fail_at, drift, var)
    expected_more = math.ceil(remaining) if math.isfinite(remaining) and remaining < 1e12 else None

    arms = f"{_fmt_count(n_c)} candidate" + (f" / {_fmt_count(n_b)} baseline" if math.isfinite(n_b) else "")
    baseline_kind = ("recorded baseline" if frozen_baseline else "baseline") if math.isfinite(n_b) else "known baseline"
    ci_level = 1.0 - alpha
    figures = (
        f"candidate rate {_fmt(rate_c)} vs {baseline_kind} {_fmt(rate_b)} ({_fmt_signed(estimate)}, "
        f"{ci_level:.0%} always-valid CI {_fmt_signed(ci_low)}..{_fmt_signed(ci_high)}) over {arms} samples"
    )

    def times(log_ratio: float) -> str:
        return f"{math.exp(log_ratio):.3g}x" if log_ratio < 700.0 else "overwhelmingly"

    if decision == "fail":
        message = (
            f"Regressed: {figures}; the data are {times(llr)} more likely under a regression of {_fmt(delta)} "
            f"than under none (fails at {1.0 / alpha:.3g}x)."
        )
    elif decision == "pass":
        message = (
            f"No regression of {_fmt(delta)} or more: {figures}; the data are {times(-llr)} more likely under "
            f"no regression than under one of {_fmt(delta)} (passes at {1.0 / beta:.3g}x)."
        )
    else:
        more = (
            f"about {expected_more:,} more candidate samples expected"
            if expected_more is not None
            else "the remaining samples cannot be estimated"
        )
        message = (
            f"Not enough evidence yet: {figures}; likelihood ratio {math.exp(llr):.3g} "
            f"(fails at {1.0 / alpha:.3g}, passes at {beta:.3g}); {more}."
        )

    details: dict[str, float] = {
        "llr": max(-_LLR_CAP, min(_LLR_CAP, llr)),
        "llr_fail_threshold": fail_at,
        "llr_pass_threshold": pass_at,
        "candidate_rate": rate_c,
        "baseline_rate": rate_b,
        "candidate_samples": n_c,
        "min_regression": delta,
        "alpha": alpha,
        "beta": beta,
        "ci_level": ci_level,
        "side_by_side": 0.0 if known else 1.0,
        # Baseline bad-event rate assumed by H1 (profiled side by side).
        "h1_baseline_bad_rate": nuisance,
    }
    if math.isfinite(n_b):
        details["baseline_samples"] = n_b
        details["baseline_successes"] = s_b
    details["candidate_successes"] = s_c
    return JudgeResult(
        decision=decision,
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        samples=round(n_c),
        expected_more=expected_more,
        message=message,
        details=details,
    )
