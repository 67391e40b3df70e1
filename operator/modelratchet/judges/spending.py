"""Group-sequential boundaries from an alpha-spending function (Lan and DeMets 1983).

A one-sided test looked at on accumulating data may reject at look k when its z statistic reaches
``c_k``; the boundaries are chosen so that the probability of a first rejection at look k under H0
equals the alpha spent between the information fractions of looks k-1 and k. The z statistics of
nested data are correlated like Brownian motion in information time (corr(Z_j, Z_k) = sqrt(t_j / t_k)),
which is what the recursion of Armitage, McPherson and Rowe (1969) integrates numerically: here on a
fixed lattice of the score statistic S_t = sqrt(t) Z_t, so each look is one convolution.

Spending function: the Pocock type ``alpha * ln(1 + (e - 1) t)`` (Lan and DeMets 1983). It spends
steadily from the first look, so a large regression is stopped early, at the cost of a somewhat
higher final boundary than the O'Brien-Fleming type, which spends almost nothing early.

``t`` is the information fraction: the information at a look (for a rank test its null variance,
which grows with the samples of both arms) over the information expected at the last planned look.
When traffic steps up between looks the fractions are unequally spaced and the boundaries follow
them; equal spacing (``k / max_looks``) is the special case :func:`boundaries` computes.

Boundaries for looks that were never taken (a caller may assume a look at every window end) only
make the test conservative: the alpha they are given is never used.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from threading import Lock

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve
from scipy.special import ndtr, ndtri

_H = 0.02  # lattice spacing of S_t (its sd is sqrt(t) <= 1); against simulation: exact to 1% of alpha up to
# 200 equally spaced looks, conservative beyond (5% under alpha at 1,000)
_SPAN = 8.0  # lower truncation of the continuation region, in standard deviations of S_t
_REACH = 9.0  # a step moves S by at most this many of its standard deviations
_CACHE = 256  # recursion states kept, so a look that extends an earlier one costs one step

FloatArray = NDArray[np.float64]


def spent(alpha: float, fraction: float) -> float:
    """Alpha spent up to information fraction ``fraction`` (Pocock type)."""
    t = min(max(fraction, 0.0), 1.0)
    return alpha * math.log1p((math.e - 1.0) * t)


Span = tuple[float, float]
WHOLE: Span = (0.0, 1.0)


def spent_in(alpha: float, span: Span, fraction: float) -> float:
    """Alpha a test spends by ``fraction`` of its own information when it covers ``span`` of a larger plan's.

    A rollout judges each traffic step's window apart: window i spends what the rollout's spending function
    spends between its first and last information fractions, so the windows together spend ``alpha``.
    """
    lo, hi = span
    t = min(max(fraction, 0.0), 1.0)
    return spent(alpha, lo + t * (hi - lo)) - spent(alpha, lo)


@dataclass(frozen=True)
class _State:
    """The recursion after some looks: masses of S_t at lattice nodes from ``first`` on, where nothing crossed."""

    t: float
    first: int
    mass: FloatArray
    z: tuple[float, ...]  # boundaries so far, on the z scale


_START = _State(0.0, 0, np.ones(1), ())
_states: OrderedDict[tuple[float, Span, tuple[float, ...]], _State] = OrderedDict()
_lock = Lock()


def _solve(x: FloatArray, m: FloatArray, step_sd: float, target: float, guess: float) -> float:
    """The b with sum(m * P(S + step > b)) = target: Newton on the log of the exit probability."""
    b = guess
    lo, hi = -math.inf, math.inf
    for _ in range(60):
        u = (x - b) / step_sd
        p = float(np.dot(m, ndtr(u)))
        if p <= 0.0:
            hi = b
            b = 0.5 * (lo + b) if math.isfinite(lo) else b - step_sd
            continue
        err = math.log(p) - math.log(target)
        if err > 0.0:
            lo = b
        else:
            hi = b
        if abs(err) < 1e-9:
            return b
        slope = float(np.dot(m, np.exp(-0.5 * u * u))) / (math.sqrt(2.0 * math.pi) * step_sd) / p
        nxt = b + err / slope if slope > 0.0 else math.nan
        if not (math.isfinite(nxt) and lo < nxt < hi):
            bracketed = math.isfinite(lo) and math.isfinite(hi)
            nxt = 0.5 * (lo + hi) if bracketed else (b + step_sd if err > 0 else b - step_sd)
        b = nxt
    return b


def _step(state: _State, alpha: float, span: Span, t: float) -> _State:
    """One more look at information fraction ``t``."""
    dt = t - state.t
    if dt <= 1e-12:
        # No new information: the statistic is the one already judged; it gets that look's boundary.
        return _State(state.t, state.first, state.mass, (*state.z, state.z[-1] if state.z else math.inf))
    step_sd, sd = math.sqrt(dt), math.sqrt(t)
    target = spent_in(alpha, span, t) - spent_in(alpha, span, state.t)
    x = np.asarray((state.first + np.arange(state.mass.size)) * _H, dtype=float)
    if target <= 0.0:
        b = math.inf
    else:
        # Only masses within reach of the boundary region can cross it.
        guess = (state.z[-1] * math.sqrt(state.t)) if state.z and math.isfinite(state.z[-1]) else 3.0 * sd
        near = x > guess - (_REACH + 6.0) * step_sd - 4.0 * sd
        b = _solve(x[near], state.mass[near], step_sd, target, guess)
    top = b if math.isfinite(b) else (_SPAN + 4.0) * sd
    first, last = math.floor(-_SPAN * sd / _H), math.floor(top / _H)
    reach = math.ceil(_REACH * step_sd / _H) + 1
    d = np.arange(-reach, reach + 1)
    kernel = ndtr((d + 0.5) * (_H / step_sd)) - ndtr((d - 0.5) * (_H / step_sd))
    small = kernel.size * state.mass.size < 2_000_000
    moved = np.convolve(state.mass, kernel) if small else fftconvolve(state.mass, kernel)
    # moved[q] is the mass at node state.first - reach + q.
    src = np.arange(first, last + 1) - (state.first - reach)
    new = np.zeros(src.size)
    ok = (src >= 0) & (src < moved.size)
    new[ok] = np.maximum(moved[src[ok]], 0.0)
    if math.isfinite(b):
        # The top cell is cut at the boundary.
        new[-1] = float(np.dot(state.mass, ndtr((b - x) / step_sd) - ndtr((last * _H - 0.5 * _H - x) / step_sd)))
    return _State(t, first, new, (*state.z, b / sd))


def boundaries_at(alpha: float, fractions: Sequence[float], span: Span = WHOLE) -> tuple[float, ...]:
    """One-sided z boundaries at looks taken at increasing information ``fractions`` (each in (0, 1]).

    The last fraction is the current look. ``span`` is the part of a larger plan's information this test
    covers (see :func:`spent_in`); by default the whole. A call whose fractions extend those of a recent
    call reuses its recursion, so looking again after one more interval costs one step, not all of them.
    """
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if not (0.0 <= span[0] <= span[1] <= 1.0):
        raise ValueError(f"span must be within [0, 1], not {span!r}")
    ts = tuple(float(x) for x in fractions)
    if not ts:
        return ()
    if any(not (0.0 < x <= 1.0) for x in ts) or any(b < a for a, b in itertools.pairwise(ts)):
        raise ValueError("information fractions must be increasing and in (0, 1]")
    start, done = _START, 0
    with _lock:
        for p in range(len(ts), max(0, len(ts) - 64), -1):
            cached = _states.get((alpha, span, ts[:p]))
            if cached is not None:
                _states.move_to_end((alpha, span, ts[:p]))
                start, done = cached, p
                break
    state = start
    for t in ts[done:]:
        state = _step(state, alpha, span, t)
    if done < len(ts):
        with _lock:
            _states[(alpha, span, ts)] = state
            while len(_states) > _CACHE:
                _states.popitem(last=False)
    return state.z


@lru_cache(maxsize=256)
def boundaries(alpha: float, max_looks: int) -> tuple[float, ...]:
    """One-sided z boundaries ``c_1 .. c_K`` for equally spaced looks."""
    if max_looks < 1:
        raise ValueError("max_looks must be >= 1")
    return boundaries_at(alpha, [k / max_looks for k in range(1, max_looks + 1)])


def level(z: float) -> float:
    """The one-sided nominal level a z boundary corresponds to."""
    return float(ndtr(-z)) if math.isfinite(z) else 0.0


def z_for(p: float) -> float:
    """The one-sided z boundary of a one-sided level ``p``."""
    return float(ndtri(1.0 - p)) if p > 0.0 else math.inf
