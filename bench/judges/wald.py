"""Wald's approximate expected sample numbers: the yardstick for samples to decision.

For error rates alpha and beta, Wald's SPRT between two simple hypotheses needs on average
``((1 - beta) log A + beta log B) / KL(H1 || H0)`` samples under H1 and
``((1 - alpha) |log B| - alpha log A) / KL(H0 || H1)`` under H0, with ``A = (1 - beta) / alpha`` and
``B = beta / (1 - alpha)`` (Wald 1945); by Wald and Wolfowitz (1948) no test with the same error
rates needs fewer on average at those hypotheses. Counts are candidate samples.
"""

from __future__ import annotations

import math


def _bounds(alpha: float, beta: float) -> tuple[float, float]:
    return math.log((1.0 - beta) / alpha), math.log(beta / (1.0 - alpha))


def asn_h1(kl: float, alpha: float, beta: float) -> float:
    a, b = _bounds(alpha, beta)
    return ((1.0 - beta) * a + beta * b) / kl


def asn_h0(kl: float, alpha: float, beta: float) -> float:
    a, b = _bounds(alpha, beta)
    return ((1.0 - alpha) * -b - alpha * a) / kl


def kl_bernoulli(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q))."""
    return p * math.log(p / q) + (1.0 - p) * math.log((1.0 - p) / (1.0 - q))


def kl_two_sample_rate(bad_c: float, bad_b: float, diff: float, ratio: float) -> float:
    """Per candidate sample, for a difference ``diff`` of rates with ``ratio`` baseline samples per candidate one.

    Normal approximation to the two binomials: information 1 / (v_c + v_b / ratio) per candidate sample.
    """
    info = 1.0 / (bad_c * (1.0 - bad_c) + bad_b * (1.0 - bad_b) / ratio)
    return 0.5 * diff * diff * info


def kl_lognormal_shift(rel_shift: float, sigma: float) -> float:
    """Per candidate sample (one baseline sample each) for a relative shift of a log-normal's median."""
    d = math.log1p(rel_shift)
    return d * d / (4.0 * sigma * sigma)


def kl_lognormal_spread(ratio: float) -> float:
    """Per candidate sample for a log-sd ``ratio`` against a known baseline log-sd (a lower bound side by side)."""
    r2 = ratio * ratio
    return 0.5 * (r2 - 1.0 - math.log(r2))
