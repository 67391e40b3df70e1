"""Group-sequential boundaries from an alpha-spending function (Lan and DeMets 1983).

A one-sided test looked at ``max_looks`` times on accumulating data may reject at look k when its
z statistic reaches ``c_k``; the boundaries are chosen so that the probability of a first rejection
at look k under H0 equals the alpha spent between looks k-1 and k. The z statistics of nested
samples are correlated like Brownian motion in information time (corr(Z_j, Z_k) = sqrt(t_j / t_k)),
which is what the recursion of Armitage, McPherson and Rowe (1969) integrates numerically.

Spending function: the Pocock type ``alpha * ln(1 + (e - 1) t)`` (Lan and DeMets 1983). It spends
steadily from the first look, so a large regression is stopped early, at the cost of a somewhat
higher final boundary than the O'Brien-Fleming type, which spends almost nothing early.
Information fractions are taken as ``k / max_looks`` (equal increments between looks).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

_GRID = 400  # cells for the sub-density of the score statistic
_SPAN = 8.0  # lower truncation of the continuation region, in standard deviations
_EXACT_MAX_LOOKS = 400  # above this, fall back to Bonferroni increments (conservative, always valid)


def spent(alpha: float, fraction: float) -> float:
    """Alpha spent up to information fraction ``fraction`` (Pocock type)."""
    t = min(max(fraction, 0.0), 1.0)
    return alpha * math.log1p((math.e - 1.0) * t)


@lru_cache(maxsize=256)
def boundaries(alpha: float, max_looks: int) -> tuple[float, ...]:
    """One-sided z boundaries ``c_1 .. c_K`` for equally spaced looks; ``inf`` where nothing is spent."""
    if max_looks < 1:
        raise ValueError("max_looks must be >= 1")
    t = np.arange(1, max_looks + 1, dtype=float) / max_looks
    increments = np.diff(np.array([0.0] + [spent(alpha, float(x)) for x in t]))
    if max_looks > _EXACT_MAX_LOOKS:
        return tuple(float(ndtri(1.0 - a)) if a > 0.0 else math.inf for a in increments)

    out: list[float] = []
    first = float(increments[0])
    c1 = float(ndtri(1.0 - first))
    out.append(c1)
    # Sub-density of S_1 = sqrt(t_1) Z_1 over the continuation region, as masses at cell centres.
    sd1 = math.sqrt(t[0])
    edges = np.linspace(-_SPAN * sd1, c1 * sd1, _GRID + 1)
    mass = np.diff(ndtr(edges / sd1))
    centres = 0.5 * (edges[:-1] + edges[1:])
    for k in range(1, max_looks):
        step_sd = math.sqrt(t[k] - t[k - 1])
        target = float(increments[k])

        def exit_prob(b: float, m: np.ndarray = mass, u: np.ndarray = centres, sd: float = step_sd) -> float:
            return float(np.dot(m, ndtr((u - b) / sd)))

        sd_k = math.sqrt(t[k])
        if target <= 0.0:
            b_k = math.inf
        else:
            hi = (_SPAN + 4.0) * sd_k
            b_k = (
                hi
                if exit_prob(hi) >= target
                else float(brentq(lambda b, goal=target: exit_prob(b) - goal, -_SPAN * sd_k, hi, xtol=1e-10))
            )
        out.append(b_k / sd_k)
        top = b_k if math.isfinite(b_k) else (_SPAN + 4.0) * sd_k
        new_edges = np.linspace(-_SPAN * sd_k, top, _GRID + 1)
        cdf = ndtr((new_edges[:, None] - centres[None, :]) / step_sd)
        mass = (np.diff(cdf, axis=0) @ mass).astype(float)
        centres = 0.5 * (new_edges[:-1] + new_edges[1:])
    return tuple(out)
