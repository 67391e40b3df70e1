"""Group-sequential judge of latency-like metrics from Prometheus histogram buckets.

Prometheus keeps a latency histogram as counters per bucket (``le``). Over non-overlapping windows
of the rollout, the increase of each counter is the number of requests of that window whose value
fell in that bucket: per-request data, grouped. This judge compares the candidate's grouped requests
with the stable checkpoint's:

- Within one window both arms see the same traffic mix, load and time of day; across windows these
  change. Each window is a stratum: its requests are ranked together (ties: every request of a bucket
  gets the bucket's average score) and the standardised statistics of all windows are summed, the
  stratified rank test of van Elteren (1960). Under no change the scores of a window are exchangeable
  between the arms whatever the split of traffic, the bucket layout or the drift between windows, so
  the null mean is exactly zero and the variance is the exact permutation variance given the window's
  counts (Lehmann 1975, ties). This is what makes the error rate independent of the traffic split.
- Two one-sided tests at ``alpha / 2`` each (Bonferroni): location with Wilcoxon scores, and the upper
  tail with scores that are zero up to the window's pooled upper quartile and grow like normal
  quantiles beyond it, which catches a longer tail at the same median.
- Repeated looks: Lan-DeMets Pocock-type spending (:mod:`.spending`) over information fractions, the
  null variance accumulated at every window end (a look is assumed at each; looks not taken only make
  it conservative) over the variance expected at the rollout's last planned look, which is projected
  from the recent rate and the planned data still ahead (``ahead``, in windows at the current split).
- Effect sizes from the pooled buckets with requests spread log-uniformly inside each bucket: the
  Hodges-Lehmann shift on the log scale (the relative change of a typical request) and the relative
  change of the 90th percentile, with bounds at the same corrected level. A test fails only when it
  is significant and its effect exceeds ``min_effect``; the judge passes early when both upper bounds
  are below ``min_effect``, and at the final look of a step when nothing is significant.

A frozen baseline (counts recorded earlier, e.g. during the canary, used after promotion) is one
stratum whose baseline counts do not grow: the candidate's pooled requests against it.

Counts must be exact: ``increase()`` extrapolates each window to its edges and inflates the counts
(by half or more with few scrapes per window), which would overstate the evidence; such non-integer
counts are refused with the reason (see :func:`per_bucket`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import ndtri

from .spending import WHOLE, Span, boundaries_at, level, spent
from .types import Decision, Direction, JudgeResult

MIN_SAMPLES = 5  # per arm
_TAIL = 0.9  # the tail quantile whose worsening is the tail effect
_SCORES_FROM = float(ndtri(0.75))  # tail scores start at the pooled upper quartile
_RECENT = 10  # windows that give the current rate of information, to project its maximum
_QUANTUM = 1.1  # the projected maximum is rounded up to a power of this, so it is stable between looks
_WHOLE = 1e-6  # counts further than this from an integer were extrapolated

FloatArray = NDArray[np.float64]


# --- input --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Per-bucket counts of one arm: one row per window (oldest first), one column per bucket."""

    rows: tuple[tuple[float, ...], ...]
    dropped: int = 0  # windows left out because their cumulative counts decreased (a counter reset)


def per_bucket(bounds: Sequence[float], windows: Sequence[Sequence[float]]) -> Counts | str:
    """Per-bucket counts from Prometheus's cumulative ``le`` counts, one row per window; or why not.

    A window whose cumulative counts decrease along ``le`` (a series that reset or vanished inside it)
    is left out, and counted; its requests are missing at random, which a stratified test tolerates.
    Non-integer counts are refused: they come from ``increase()``/``rate()``, which extrapolate.
    """
    rows: list[tuple[float, ...]] = []
    dropped = 0
    for window in windows:
        if len(window) != len(bounds):
            return f"a window has {len(window)} bucket counts for {len(bounds)} buckets"
        values = [float(v) for v in window]
        if not all(math.isfinite(v) for v in values):
            dropped += 1
            continue
        off = next((v for v in values if abs(v - round(v)) > _WHOLE * max(1.0, abs(v))), None)
        if off is not None:
            return (
                f"bucket counts are not whole numbers (e.g. {off:.6g}): the query extrapolates (increase() or "
                "rate()), which overstates the requests; count them exactly, e.g. "
                "sum by (le) (clamp_min(x_bucket{...} - x_bucket{...} offset {{ interval }}, 0))"
            )
        whole = [float(round(v)) for v in values]
        if any(v < 0.0 for v in whole) or any(b < a for a, b in itertools.pairwise(whole)):
            dropped += 1
            continue
        rows.append(tuple([whole[0], *(b - a for a, b in itertools.pairwise(whole))]))
    return Counts(tuple(rows), dropped)


# --- the stratified rank statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Strata:
    """Per stratum (window, or prefix for a frozen baseline): centred statistic and null variance of each test."""

    loc: FloatArray
    loc_var: FloatArray
    loc_k3: FloatArray  # third cumulant: the tail scores' sums are skewed in small windows
    tail: FloatArray
    tail_var: FloatArray
    tail_k3: FloatArray


def _phi_inv_pdf(u: FloatArray) -> FloatArray:
    """pdf(Phi^-1(u)), 0 at u = 0 and 1."""
    z = ndtri(np.clip(u, 0.0, 1.0))
    out: FloatArray = np.where(np.isfinite(z), np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi), 0.0)
    return out


def _strata(cand: FloatArray, base: FloatArray) -> _Strata:
    """Rank statistics per row of (candidate, baseline) bucket counts, with bucket-average (tied) scores."""
    total = cand + base
    n, m = cand.sum(axis=1), base.sum(axis=1)
    big_n = n + m
    usable = (n > 0) & (m > 0) & (big_n > 1)
    safe_n = np.where(usable, big_n, 1.0)
    before = np.cumsum(total, axis=1) - total
    u_lo, u_hi = before / safe_n[:, None], (before + total) / safe_n[:, None]
    width = np.where(total > 0, u_hi - u_lo, 1.0)
    wilcoxon = 0.5 * (u_lo + u_hi) - 0.5
    # Mean over the bucket's share of [0, 1] of max(Phi^-1(u) - z75, 0): integral of Phi^-1 is -pdf(Phi^-1).
    a = np.maximum(u_lo, 0.75)
    b = np.maximum(u_hi, 0.75)
    integral = _phi_inv_pdf(a) - _phi_inv_pdf(b) - _SCORES_FROM * (b - a)
    tail = np.where(total > 0, integral / width, 0.0)

    factor = np.where(usable, n * m / (safe_n * np.maximum(safe_n - 1.0, 1.0)), 0.0)

    # Third cumulant of a sum of n draws without replacement from N values: n(N-n)(N-2n)/((N-1)(N-2)) mu3.
    skew_factor = np.where(
        usable & (safe_n > 2), n * m * (m - n) / (np.maximum(safe_n - 1.0, 1.0) * np.maximum(safe_n - 2.0, 1.0)), 0.0
    )

    def centred(scores: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        # Permutation mean, variance and third cumulant of the candidate's score sum given the window's counts.
        mean = (total * scores).sum(axis=1) / safe_n
        dev = scores - mean[:, None]
        stat = (cand * scores).sum(axis=1) - n * mean
        var = factor * (total * dev * dev).sum(axis=1)
        k3 = skew_factor * (total * dev**3).sum(axis=1) / safe_n
        return np.where(usable, stat, 0.0), var, k3

    loc, loc_var, loc_k3 = centred(wilcoxon)
    tl, tail_var, tail_k3 = centred(tail)
    return _Strata(loc, loc_var, loc_k3, tl, tail_var, tail_k3)


def _fractions(info: FloatArray, maximum: float) -> list[float]:
    """Information fractions at every window end where information grew (the looks assumed)."""
    out: list[float] = []
    last = 0.0
    for x in info:
        if x > last * (1.0 + 1e-12) and x > 0.0:
            out.append(min(1.0, float(x) / maximum))
            last = float(x)
    return out


def _maximum(now: float, projected: float) -> float:
    """Information expected at the last planned look; rounded up so that looks in a row share it (and so
    reuse the spending recursion). At the last planned look it is the information seen, all alpha spent."""
    if not projected > now > 0.0:
        return now
    return max(now, _QUANTUM ** math.ceil(math.log(projected) / math.log(_QUANTUM)))


def _skewed(crit: float, k3: float, var: float) -> float:
    """The boundary moved by the Cornish-Fisher term of the statistic's skewness (Hall 1992).

    A sum of few tail scores is right-skewed (most requests score 0, a few score a lot), so its upper tail
    is heavier than the normal one early on; a left-skewed statistic keeps the normal boundary, which is
    conservative for it.
    """
    if not (math.isfinite(crit) and var > 0.0 and k3 > 0.0):
        return crit
    gamma = k3 / var**1.5
    return float(crit + gamma / 6.0 * (crit * crit - 1.0))


# --- effect sizes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    """Bucket edges on the scale where requests are spread uniformly inside a bucket (log, when all bounds > 0)."""

    lo: FloatArray
    hi: FloatArray
    log: bool


def _scale(bounds: Sequence[float], reflect: bool) -> _Scale:
    finite = [b for b in bounds if math.isfinite(b)]
    log = bool(finite) and all(b > 0.0 for b in finite)
    g = np.log(np.asarray(finite, dtype=float)) if log else np.asarray(finite, dtype=float)
    step = float(g[1] - g[0]) if g.size >= 2 else 1.0
    top_step = float(g[-1] - g[-2]) if g.size >= 2 else 1.0
    # The first bucket reaches as far below its bound as the next bucket is wide; +Inf as far above.
    lower = np.concatenate([[g[0] - step], g[:-1]]) if g.size else np.zeros(0)
    upper = g.copy()
    if len(finite) < len(bounds):
        lower = np.concatenate([lower, [g[-1]]])
        upper = np.concatenate([upper, [g[-1] + top_step]])
    if reflect:
        lower, upper = -upper[::-1], -lower[::-1]
    return _Scale(lower, upper, log)


def _sum_uniform_cdf(s: FloatArray, w1: FloatArray, w2: FloatArray) -> FloatArray:
    """P(U1 + U2 <= s) for independent U1 ~ U[0, w1], U2 ~ U[0, w2] (w > 0)."""
    a, b = np.minimum(w1, w2), np.maximum(w1, w2)
    rising = s * s / (2.0 * a * b)
    flat = (2.0 * s - a) / (2.0 * b)
    falling = 1.0 - (a + b - s) ** 2 / (2.0 * a * b)
    out: FloatArray = np.where(
        s <= 0.0, 0.0, np.where(s < a, rising, np.where(s < b, flat, np.where(s < a + b, falling, 1.0)))
    )
    return out


def _shift(scale: _Scale, cand: FloatArray, base: FloatArray, crit: float) -> tuple[float, float, float]:
    """Hodges-Lehmann shift of the candidate over the baseline on the bucket scale, with bounds at ``crit``."""
    ci, bi = np.flatnonzero(cand > 0), np.flatnonzero(base > 0)
    weight = cand[ci][:, None] * base[bi][None, :]
    offset = scale.lo[ci][:, None] - scale.hi[bi][None, :]
    w1 = (scale.hi - scale.lo)[ci][:, None] * np.ones((1, bi.size))
    w2 = (scale.hi - scale.lo)[bi][None, :] * np.ones((ci.size, 1))
    n, m = float(cand.sum()), float(base.sum())

    def above(d: float) -> float:
        """Expected pairs with candidate - d > baseline."""
        return float((weight * (1.0 - _sum_uniform_cdf(d - offset, w1, w2))).sum())

    span = float(scale.hi.max() - scale.lo.min()) + 1.0
    lo, hi = -span, span
    half = n * m / 2.0
    estimate = float(brentq(lambda d: above(d) - half, lo, hi, xtol=1e-7))
    h = 1e-3 * float(np.median(scale.hi - scale.lo))
    slope = (above(estimate - h) - above(estimate + h)) / (2.0 * h)
    se = math.sqrt(n * m * (n + m + 1.0) / 12.0) / slope if slope > 0.0 else math.inf
    return estimate, estimate - crit * se, estimate + crit * se


def _quantile(scale: _Scale, counts: FloatArray, p: float) -> float:
    """The ``p`` quantile on the bucket scale, spreading each bucket's requests uniformly; +-inf beyond the data."""
    total = float(counts.sum())
    if p <= 0.0:
        return -math.inf
    if p >= 1.0 or total <= 0.0:
        return math.inf
    target = p * total
    cum = np.cumsum(counts)
    j = int(np.searchsorted(cum, target, side="left"))
    j = min(j, counts.size - 1)
    before = float(cum[j] - counts[j])
    inside = (target - before) / float(counts[j]) if counts[j] > 0 else 0.0
    return float(scale.lo[j] + inside * (scale.hi[j] - scale.lo[j]))


def _tail(scale: _Scale, cand: FloatArray, base: FloatArray, crit: float) -> tuple[float, float, float]:
    """Change of the 90th percentile on the bucket scale, with order-statistic bounds (half the level per arm)."""
    z_half = float(ndtri(1.0 - level(crit) / 2.0)) if math.isfinite(crit) else math.inf
    n, m = float(cand.sum()), float(base.sum())

    def bound(counts: FloatArray, size: float, upper: bool) -> float:
        reach = z_half * math.sqrt(size * _TAIL * (1.0 - _TAIL))
        p = (size * _TAIL + reach + 1.0) / size if upper else (size * _TAIL - reach) / size
        return _quantile(scale, counts, p)

    q_x, q_y = _quantile(scale, cand, _TAIL), _quantile(scale, base, _TAIL)
    return q_x - q_y, bound(cand, n, False) - bound(base, m, True), bound(cand, n, True) - bound(base, m, False)


def _relative(d: float, scale: _Scale, reflect: bool, reference: float) -> float:
    """A change on the bucket scale as a relative worsening, as a ratio threshold measures it."""
    if math.isnan(d):
        return math.nan
    if not scale.log:
        return d / abs(reference) if reference else math.nan
    if math.isinf(d):
        return d if not reflect else (1.0 if d > 0 else -math.inf)
    return math.expm1(d) if not reflect else -math.expm1(-d)


# --- the judge ----------------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x:+.1%}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _needed(n: float, z: float, crit: float, rel: float, rel_high: float, floor: float) -> float:
    """Rough extra candidate samples for a decision if the current estimate holds (z grows like sqrt(n))."""
    if rel > floor:
        if z >= crit:
            return 0.0
        return n * (crit / z) ** 2 - n if z > 0.0 else math.inf
    if rel_high < floor:
        return 0.0
    width = rel_high - rel
    if not math.isfinite(width) or floor - rel <= 0.0:
        return math.inf
    return n * (width / (floor - rel)) ** 2 - n


def _check(direction: str, min_effect: float, alpha: float, bounds: Sequence[float], ahead: float) -> None:
    if direction not in ("higherIsBetter", "lowerIsBetter"):
        raise ValueError(f"direction must be higherIsBetter or lowerIsBetter, not {direction!r}")
    if not (math.isfinite(min_effect) and min_effect >= 0.0):
        raise ValueError(f"min_effect must be a relative effect >= 0, not {min_effect!r}")
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if not (math.isfinite(ahead) and ahead >= 0.0):
        raise ValueError(f"ahead must be a number of windows >= 0, not {ahead!r}")
    if len(bounds) < 2 or any(not b > a for a, b in itertools.pairwise(bounds)) or math.isnan(bounds[0]):
        raise ValueError("bounds must be at least two strictly increasing bucket upper bounds")


def histogram(
    *,
    bounds: Sequence[float],
    candidate: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    direction: Direction,
    min_effect: float,
    alpha: float = 0.01,
    frozen_baseline: bool = False,
    ahead: float = 0.0,
    final: bool = False,
    span: Span = WHOLE,
) -> JudgeResult:
    """Judge candidate against baseline bucket counts with stratified, alpha-spending rank tests.

    ``bounds`` are the buckets' upper bounds (``le``, increasing; the last may be ``inf``).
    ``candidate`` and ``baseline`` hold per-bucket (not cumulative) counts, one row per window since
    the analysis began, oldest first, the same windows for both; with ``frozen_baseline`` the
    baseline is a single row of recorded counts. ``min_effect`` is the relative worsening below which
    a significant difference is not a regression. ``ahead`` is the data still planned after this look,
    in windows at the current traffic split (0 at the last planned look of the rollout); ``final``
    says this is the last planned look of the current step, where an undecided judge passes. ``span`` is
    this window's share of a rollout's error budget (rollout-wide information fractions, from and to), when
    the rollout judges several windows apart.

    Too few samples return ``"continue"`` with the reason; only an invalid configuration raises ``ValueError``.
    """
    _check(direction, min_effect, alpha, bounds, ahead)
    reflect = direction == "higherIsBetter"
    cand = np.asarray(candidate, dtype=float).reshape(-1, len(bounds))
    base = np.asarray(baseline, dtype=float).reshape(-1, len(bounds))
    if reflect:
        cand, base = cand[:, ::-1], base[:, ::-1]
    if not frozen_baseline and cand.shape != base.shape:
        raise ValueError(f"candidate and baseline must have the same windows ({cand.shape} != {base.shape})")
    if frozen_baseline and base.shape[0] != 1:
        raise ValueError("a frozen baseline is one row of counts")
    pooled_c = cand.sum(axis=0)
    pooled_b = base.sum(axis=0)
    n_c, n_b = float(pooled_c.sum()), float(pooled_b.sum())
    windows = int(cand.shape[0])
    details: dict[str, float] = {
        "candidate_samples": n_c,
        "baseline_samples": n_b,
        "windows": float(windows),
        "alpha": alpha,
        "min_effect": min_effect,
        "frozen_baseline": 1.0 if frozen_baseline else 0.0,
    }

    def waiting(message: str) -> JudgeResult:
        return JudgeResult("continue", None, None, None, round(n_c), None, message, details)

    if n_c < MIN_SAMPLES or n_b < MIN_SAMPLES:
        return waiting(
            f"Too few requests to compare: {n_c:,.0f} candidate and {n_b:,.0f} baseline "
            f"(at least {MIN_SAMPLES} each needed)."
        )

    if frozen_baseline:
        # One stratum per window end: the candidate's requests so far against the recorded counts.
        prefixes = np.cumsum(cand, axis=0)
        strata = _strata(prefixes, np.repeat(base, windows, axis=0))
        loc_info, tail_info = strata.loc_var, strata.tail_var
        stat_loc, stat_tail = float(strata.loc[-1]), float(strata.tail[-1])
        k3_loc, k3_tail = float(strata.loc_k3[-1]), float(strata.tail_k3[-1])
        recent = cand[-min(windows, _RECENT) :].mean(axis=0)
        projected = _strata((prefixes[-1] + ahead * recent)[None, :], base)
        max_loc = _maximum(float(loc_info[-1]), float(projected.loc_var[0]))
        max_tail = _maximum(float(tail_info[-1]), float(projected.tail_var[0]))
    else:
        strata = _strata(cand, base)
        loc_info, tail_info = np.cumsum(strata.loc_var), np.cumsum(strata.tail_var)
        stat_loc, stat_tail = float(strata.loc.sum()), float(strata.tail.sum())
        k3_loc, k3_tail = float(strata.loc_k3.sum()), float(strata.tail_k3.sum())
        last = min(windows, _RECENT)
        max_loc = _maximum(float(loc_info[-1]), float(loc_info[-1] + ahead * strata.loc_var[-last:].mean()))
        max_tail = _maximum(float(tail_info[-1]), float(tail_info[-1] + ahead * strata.tail_var[-last:].mean()))
    var_loc, var_tail = float(loc_info[-1]), float(tail_info[-1])
    if var_loc <= 0.0:
        return waiting("No window has requests of both checkpoints yet.")

    half = alpha / 2.0  # Bonferroni: half for location, half for the tail
    fr_loc = _fractions(loc_info, max_loc)
    fr_tail = _fractions(tail_info, max_tail) if var_tail > 0.0 else fr_loc
    crit_loc = _skewed(boundaries_at(half, fr_loc, span)[-1], k3_loc, var_loc)
    crit_tail = _skewed(boundaries_at(half, fr_tail, span)[-1], k3_tail, var_tail)
    z_loc = stat_loc / math.sqrt(var_loc)
    z_tail = stat_tail / math.sqrt(var_tail) if var_tail > 0.0 else 0.0
    # Rollout-wide: how far through the rollout's planned information this look is.
    fraction = span[0] + fr_loc[-1] * (span[1] - span[0])

    scale = _scale(bounds, reflect)
    median_b = _quantile(scale, pooled_b, 0.5)
    shift, shift_low, shift_high = _shift(scale, pooled_c, pooled_b, crit_loc)
    tail_d, tail_low, tail_high = _tail(scale, pooled_c, pooled_b, crit_tail)
    q90_b = _quantile(scale, pooled_b, _TAIL)
    rel = _relative(shift, scale, reflect, median_b)
    rel_low, rel_high = _relative(shift_low, scale, reflect, median_b), _relative(shift_high, scale, reflect, median_b)
    tail_rel = _relative(tail_d, scale, reflect, q90_b)
    tail_rel_low = _relative(tail_low, scale, reflect, q90_b)
    tail_rel_high = _relative(tail_high, scale, reflect, q90_b)

    fail_loc = z_loc >= crit_loc and rel > min_effect
    fail_tail = z_tail >= crit_tail and tail_rel > min_effect
    excluded = rel_high < min_effect and tail_rel_high < min_effect
    decision: Decision
    if fail_loc or fail_tail:
        decision = "fail"
    elif excluded or final:
        decision = "pass"
    else:
        decision = "continue"

    more = 0.0
    if decision == "continue":
        need = [
            _needed(n_c, z_loc, crit_loc, rel, rel_high, min_effect),
            _needed(n_c, z_tail, crit_tail, tail_rel, tail_rel_high, min_effect),
        ]
        leaning_fail = [x for x, r in zip(need, (rel, tail_rel), strict=True) if r > min_effect]
        more = min(leaning_fail) if leaning_fail else max(need)
    expected_more = math.ceil(more) if math.isfinite(more) and more < 1e12 else None

    spent_now = spent(alpha, fraction)
    shift_text = (
        f"typical request {_pct(rel)} (bounds {_pct(rel_low)}..{_pct(rel_high)}; z={z_loc:.2f}, "
        f"fails at {crit_loc:.2f})"
    )
    tail_text = f"p{round(_TAIL * 100)} {_pct(tail_rel)} (bounds {_pct(tail_rel_low)}..{_pct(tail_rel_high)}; " + (
        f"z={z_tail:.2f}, fails at {crit_tail:.2f})"
    )
    against = "the recorded baseline" if frozen_baseline else "the stable checkpoint"
    where = (
        f"{n_c:,.0f} candidate / {n_b:,.0f} {'recorded ' if frozen_baseline else ''}baseline requests in "
        f"{windows} window(s), information fraction "
        f"{fraction:.2f} ({spent_now:.2g} of alpha={alpha:g} spent)"
    )
    if decision == "fail":
        what = " and ".join(name for name, hit in (("location", fail_loc), ("tail", fail_tail)) if hit)
        message = (
            f"Slower than {against} beyond the {min_effect:.0%} floor on {what}: {shift_text}; {tail_text}; {where}."
        )
    elif decision == "pass" and excluded:
        message = (
            f"No regression of {min_effect:.0%} or more: the upper bounds exclude it; {shift_text}; {tail_text}; "
            f"{where}."
        )
    elif decision == "pass":
        message = (
            f"No significant regression by the final look of the step (a regression of {min_effect:.0%} is not "
            f"excluded yet); {shift_text}; {tail_text}; {where}."
        )
    else:
        more_text = f"; about {expected_more:,} more candidate requests expected" if expected_more is not None else ""
        message = f"Not enough evidence yet: {shift_text}; {tail_text}; {where}{more_text}."
    if decision != "fail" and not scale.log:
        message += " (Bucket bounds are not all positive: effects are relative to the baseline median.)"

    figures = {
        "information_fraction": fraction,
        "information_fraction_tail": fr_tail[-1],
        "alpha_spent": spent_now,
        "z_location": z_loc,
        "z_tail": z_tail,
        "z_critical_location": crit_loc,
        "z_critical_tail": crit_tail,
        "rel_shift": rel,
        "rel_shift_low": rel_low,
        "rel_shift_high": rel_high,
        "rel_tail_q90": tail_rel,
        "rel_tail_q90_low": tail_rel_low,
        "rel_tail_q90_high": tail_rel_high,
        "bounds_exclude_min_effect": 1.0 if excluded else 0.0,
    }
    details.update({k: v for k, v in figures.items() if math.isfinite(v)})
    return JudgeResult(
        decision=decision,
        estimate=rel if math.isfinite(rel) else None,
        ci_low=rel_low if math.isfinite(rel_low) else None,
        ci_high=rel_high if math.isfinite(rel_high) else None,
        samples=round(n_c),
        expected_more=expected_more,
        message=message,
        details=details,
    )
