"""Group-sequential Mann-Whitney judge for sample metrics such as latency.

Two one-sided tests of the candidate against the baseline over the same window, each at
``alpha / 2`` (Bonferroni), so the combined false-fail rate stays within ``alpha``:

- location: the Mann-Whitney U test (Mann and Whitney 1947) with the Hodges-Lehmann shift and its
  distribution-free confidence bounds from inverting the test (Hodges and Lehmann 1963; Bauer 1972);
- tail: a one-sided linear rank test with scores that are zero up to the pooled upper quartile and
  grow like normal quantiles beyond it (a one-sided, upper-tail cousin of the Klotz (1962) normal
  scores test). It catches a variance-only regression (same median, longer tail) that a location
  test cannot see, does not fire on a faster candidate, and its null moments are exact whatever
  the distribution (Hajek and Sidak 1967), because both arms are ranked together. (Rank tests on
  deviations from each arm's own median, such as a rank Brown-Forsythe test, lose that exactness
  on skewed data like latencies.)

A test fails only when it is significant *and* its effect exceeds ``min_effect``: the Hodges-Lehmann
shift relative to the baseline median, or the relative worsening of the 90th percentile. Repeated
looks at the growing window are corrected with Lan-DeMets Pocock-type alpha spending (see
:mod:`.spending`) over information fractions: ``k / max_looks`` by default, or the fractions the
caller measured (samples) when the looks carry unequal information. The samples must therefore be
*all* samples since the analysis began (nested looks).

Rank tests need independent per-request samples: a range query of an aggregate (a rolling quantile
sampled every few seconds) gives overlapping, traffic-dependent points, on which this test does not
hold its error rate. The operator judges live latency with :func:`.buckets.histogram` instead; this
judge is for raw samples given to ``modelratchet check``.

The judge passes early when the corrected upper bounds exclude a regression of ``min_effect`` in
both location and tail, and at the final look when neither test found a significant regression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata

from .spending import boundaries, boundaries_at, spent
from .types import Decision, Direction, JudgeResult

MIN_SAMPLES = 5  # per arm; fewer cannot reach any useful significance
_EXACT_PAIRS = 40_000  # up to this many pairs, take the differences' order statistics directly
_TAIL = 0.9  # the tail quantile whose worsening is the tail effect
_SCORES_FROM = float(ndtri(0.75))  # tail scores start at the pooled upper quartile

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class _RankTest:
    """One-sided rank test of x against y (x larger is bad) with its Hodges-Lehmann shift."""

    z: float
    p: float
    shift: float
    low: float  # -inf when the bound is not identified at this level
    high: float  # +inf likewise


def _quantile(sorted_values: FloatArray, q: float) -> float:
    """Linear-interpolation quantile of an already sorted array (numpy's default definition)."""
    pos = q * (sorted_values.size - 1)
    i = math.floor(pos)
    j = min(i + 1, sorted_values.size - 1)
    return float(sorted_values[i] + (pos - i) * (sorted_values[j] - sorted_values[i]))


def _count_greater(x_sorted: FloatArray, y_sorted: FloatArray, shift: float) -> float:
    """U(d) = #{x_i - d > y_j}; sorted queries keep searchsorted cache-friendly."""
    return float(np.searchsorted(y_sorted, x_sorted - shift, side="left").sum())


def _rank_test(x_sorted: FloatArray, y_sorted: FloatArray, crit: float, scale: float) -> _RankTest:
    """Test H0 "x is not shifted above y" at the one-sided z boundary ``crit``; bounds at the same level.

    The Hodges-Lehmann shift and the bounds are the shifts d at which U(d), the Mann-Whitney count
    of x - d against y, crosses its mean and the critical values (test inversion). U is monotone in
    d, so a root search finds them without forming the n_x * n_y pairwise differences.
    """
    n_x, n_y = x_sorted.size, y_sorted.size
    total = n_x + n_y
    pooled = np.sort(np.concatenate([x_sorted, y_sorted]))
    # Tie correction of the variance of U (Lehmann 1975).
    runs = np.diff(np.flatnonzero(np.concatenate([[True], pooled[1:] != pooled[:-1], [True]])))
    ties = float(np.sum(runs.astype(float) ** 3 - runs))
    var = n_x * n_y / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    mean = n_x * n_y / 2.0
    strict = float(np.searchsorted(y_sorted, x_sorted, side="left").sum())
    loose = float(np.searchsorted(y_sorted, x_sorted, side="right").sum())
    u0 = 0.5 * (strict + loose)  # ties count one half
    z = (u0 - mean - 0.5) / math.sqrt(var) if var > 0.0 else 0.0
    p = float(ndtr(-z))

    sd0 = math.sqrt(n_x * n_y * (total + 1) / 12.0)
    targets = (mean + 0.5 + crit * sd0, mean, mean - 0.5 - crit * sd0)
    pairs = n_x * n_y
    if pairs <= _EXACT_PAIRS:
        est = _crossings_exact(x_sorted, y_sorted, targets)
    else:
        robust_sd = max((_quantile(pooled, 0.75) - _quantile(pooled, 0.25)) / 1.349, 1e-12 * scale)
        guess = _quantile(x_sorted, 0.5) - _quantile(y_sorted, 0.5)
        reach = (crit + 4.0) * 1.3 * robust_sd * math.sqrt(1.0 / n_x + 1.0 / n_y)
        est = [_crossing(x_sorted, y_sorted, t, guess, reach, scale) for t in targets]
    low = est[0] if targets[0] <= pairs else -math.inf
    high = est[2] if targets[2] >= 0.0 else math.inf
    return _RankTest(z=z, p=p, shift=est[1], low=low, high=high)


def _crossings_exact(x_sorted: FloatArray, y_sorted: FloatArray, targets: tuple[float, ...]) -> list[float]:
    """Order statistics of the pairwise differences where U(d) = #{x - y > d} crosses each target.

    The middle target (the mean of U) gives the Hodges-Lehmann estimate, the median difference.
    """
    diffs = (x_sorted[:, None] - y_sorted[None, :]).ravel()
    m = diffs.size
    out = [math.nan, float(np.median(diffs)), math.nan]
    # Smallest d with #{D > d} < T, i.e. the (m - ceil(T) + 1)-th smallest difference (1-based).
    for i in (0, 2):
        rank = m - (math.ceil(targets[i]) - 1)
        out[i] = float(np.partition(diffs, rank - 1)[rank - 1]) if 1 <= rank <= m else math.nan
    return out


def _crossing(
    x_sorted: FloatArray, y_sorted: FloatArray, target: float, guess: float, reach: float, scale: float
) -> float:
    """The same crossing found by root search on U(d), without forming the pairwise differences.

    U decreases in d; keep U(a) >= target > U(b). Illinois false position (Dowell and Jarratt 1971)
    needs only a few counts because U is nearly linear near its crossings for large samples; the
    search ends when at most one difference lies between a and b, or the bracket is negligible.
    """
    pairs = float(x_sorted.size * y_sorted.size)
    # U is an integer: U < T exactly when U < ceil(T) - 1/2, a level it never sits on.
    level = math.ceil(target) - 0.5
    lo = float(x_sorted[0] - y_sorted[-1]) - 1e-9 * scale
    hi = float(x_sorted[-1] - y_sorted[0]) + 1e-9 * scale
    # Start from a normal-theory bracket around the difference of medians; widen where it misses.
    a, b = max(lo, guess - reach), min(hi, guess + reach)
    ua, ub = _count_greater(x_sorted, y_sorted, a), _count_greater(x_sorted, y_sorted, b)
    if ua < level:
        a, ua = lo, pairs
    if ub >= level:
        b, ub = hi, 0.0
    fa, fb = ua - level, ub - level
    tol = 1e-7 * scale
    replaced = 0  # +1: a was replaced last time, -1: b was
    for _ in range(100):
        if ua - ub <= 1.0 or b - a <= tol:
            break
        width = b - a
        mid = min(max(a + fa / (fa - fb) * width, a + 1e-3 * width), b - 1e-3 * width)
        um = _count_greater(x_sorted, y_sorted, mid)
        fm = um - level
        # Illinois: halve the value at an end kept twice in a row, so both ends converge.
        if fm >= 0.0:
            if replaced == 1:
                fb /= 2.0
            a, fa, ua, replaced = mid, fm, um, 1
        else:
            if replaced == -1:
                fa /= 2.0
            b, fb, ub, replaced = mid, fm, um, -1
    return 0.5 * (a + b)


@dataclass(frozen=True)
class _TailTest:
    """Upper-tail rank test of x against y (x larger is bad), and the relative worsening of the 90th percentile."""

    z: float
    p: float
    share: float  # candidate share beyond the pooled 90th percentile (about 10% under no change)
    rel: float  # (Q_x - Q_y) / |Q_y| at _TAIL
    low: float
    high: float


def _tail_test(x_sorted: FloatArray, y_sorted: FloatArray, crit: float) -> _TailTest:
    """Upper-tail rank test with order-statistic bounds on the change of the 90th percentile at the same level."""
    n_x, n_y = x_sorted.size, y_sorted.size
    total = n_x + n_y
    # Linear rank statistic with normal scores beyond the pooled upper quartile: its mean and variance
    # under no change are exact (Hajek and Sidak 1967), as both arms are ranked together.
    ranks = rankdata(np.concatenate([x_sorted, y_sorted]))
    scores = np.maximum(ndtri(ranks / (total + 1.0)) - _SCORES_FROM, 0.0)
    mean_score = float(scores.mean())
    var = n_x * n_y / (total * (total - 1.0)) * float(np.sum((scores - mean_score) ** 2))
    stat = float(scores[:n_x].sum())
    z = (stat - n_x * mean_score) / math.sqrt(var) if var > 0.0 else 0.0
    threshold = _quantile(np.sort(np.concatenate([x_sorted, y_sorted])), _TAIL)
    hits = float(n_x - np.searchsorted(x_sorted, threshold, side="right"))
    q_x, q_y = _quantile(x_sorted, _TAIL), _quantile(y_sorted, _TAIL)
    scale = abs(q_y) if q_y != 0.0 else math.nan
    # Distribution-free bounds on each quantile from binomial order statistics, half the level each.
    z_half = float(ndtri(1.0 - float(ndtr(-crit)) / 2.0))

    def rank_bound(n: int, upper: bool) -> int:
        reach = z_half * math.sqrt(n * _TAIL * (1.0 - _TAIL))  # 1-based ranks, rounded outwards
        return math.ceil(n * _TAIL + reach) + 1 if upper else math.floor(n * _TAIL - reach)

    ux, lx = rank_bound(n_x, True), rank_bound(n_x, False)
    uy, ly = rank_bound(n_y, True), rank_bound(n_y, False)
    x_high = float(x_sorted[ux - 1]) if ux <= n_x else math.inf
    x_low = float(x_sorted[lx - 1]) if lx >= 1 else -math.inf
    y_high = float(y_sorted[uy - 1]) if uy <= n_y else math.inf
    y_low = float(y_sorted[ly - 1]) if ly >= 1 else -math.inf
    return _TailTest(
        z=z,
        p=float(ndtr(-z)),
        share=hits / n_x,
        rel=(q_x - q_y) / scale,
        low=(x_low - y_high) / scale,
        high=(x_high - y_low) / scale,
    )


def _pct(x: float) -> str:
    return f"{x:+.1%}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _needed(n: int, z: float, crit: float, rel: float, rel_high: float, floor: float) -> float:
    """Rough extra candidate samples for a decision if the current estimate holds (z grows like sqrt(n))."""
    if rel > floor:
        if z >= crit:
            return 0.0
        return n * (crit / z) ** 2 - n if z > 0.0 else math.inf
    width = rel_high - rel
    if rel_high < floor:
        return 0.0
    if not math.isfinite(width) or floor - rel <= 0.0:
        return math.inf
    return n * (width / (floor - rel)) ** 2 - n


def mann_whitney(
    *,
    candidate: Sequence[float],
    baseline: Sequence[float],
    direction: Direction,
    min_effect: float,
    alpha: float = 0.01,
    look: int = 1,
    max_looks: int = 1,
    fractions: Sequence[float] | None = None,
) -> JudgeResult:
    """Judge candidate samples against baseline samples of the same window with corrected two-sample tests.

    ``direction`` says which way is bad (lowerIsBetter for latency: larger candidate values are a
    regression). ``min_effect`` is the relative effect below which a significant difference is not a
    regression (0.05: the candidate's Hodges-Lehmann shift must exceed 5% of the baseline median, or
    its 90th percentile must be more than 5% worse). ``look`` of ``max_looks`` places this evaluation in the
    alpha-spending schedule; ``fractions``, when given, are the information fractions of every look so far
    (the last one this look's), e.g. from the samples seen, and replace ``k / max_looks``. The samples
    must be cumulative since the analysis began.

    Non-finite samples are dropped; too few samples return ``"continue"`` with the reason. Only an
    invalid configuration raises ``ValueError``.
    """
    if direction not in ("higherIsBetter", "lowerIsBetter"):
        raise ValueError(f"direction must be higherIsBetter or lowerIsBetter, not {direction!r}")
    if not (math.isfinite(min_effect) and min_effect >= 0.0):
        raise ValueError(f"min_effect must be a relative effect >= 0, not {min_effect!r}")
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if max_looks < 1 or look < 1:
        raise ValueError(f"look and max_looks must be >= 1 (look={look}, max_looks={max_looks})")
    k = min(look, max_looks)  # a look past the schedule is judged as the final one
    if fractions is not None and (not fractions or not 0.0 < fractions[-1] <= 1.0):
        raise ValueError("fractions must end with this look's information fraction, in (0, 1]")
    fraction = float(fractions[-1]) if fractions is not None else k / max_looks

    raw_c = np.asarray(list(candidate), dtype=float).ravel()
    raw_b = np.asarray(list(baseline), dtype=float).ravel()
    c = raw_c[np.isfinite(raw_c)]
    b = raw_b[np.isfinite(raw_b)]
    dropped = float(raw_c.size - c.size + raw_b.size - b.size)
    n_c, n_b = int(c.size), int(b.size)
    base: dict[str, float] = {
        "candidate_samples": float(n_c),
        "baseline_samples": float(n_b),
        "dropped_nonfinite": dropped,
        "look": float(look),
        "max_looks": float(max_looks),
        "alpha": alpha,
        "min_effect": min_effect,
    }
    if n_c < MIN_SAMPLES or n_b < MIN_SAMPLES:
        return JudgeResult(
            "continue",
            None,
            None,
            None,
            n_c,
            None,
            f"Too few samples to compare: {n_c} candidate and {n_b} baseline finite values "
            f"(at least {MIN_SAMPLES} per arm needed).",
            base,
        )
    # Orient so that larger is worse; sorted once for the medians, quantiles and rank counts.
    sign = 1.0 if direction == "lowerIsBetter" else -1.0
    yc = np.sort(sign * c)
    yb = np.sort(sign * b)
    med_b = sign * _quantile(yb, 0.5)
    ref = abs(med_b)
    if ref == 0.0:
        return JudgeResult(
            "continue",
            None,
            None,
            None,
            n_c,
            None,
            "The baseline median is 0, so a relative effect is undefined.",
            base,
        )
    half = alpha / 2.0  # Bonferroni: half for location, half for the tail
    crit = boundaries_at(half, fractions)[-1] if fractions is not None else boundaries(half, max_looks)[k - 1]
    nominal = float(ndtr(-crit))

    loc = _rank_test(yc, yb, crit, ref)
    rel, rel_low, rel_high = loc.shift / ref, loc.low / ref, loc.high / ref

    tail = _tail_test(yc, yb, crit)

    fail_loc = loc.z >= crit and rel > min_effect
    fail_tail = tail.z >= crit and tail.rel > min_effect
    excluded = rel_high < min_effect and tail.high < min_effect
    final = k == max_looks if fractions is None else fraction >= 1.0
    decision: Decision
    if fail_loc or fail_tail:
        decision = "fail"
    elif excluded or final:
        decision = "pass"
    else:
        decision = "continue"

    # Report in the metric's own orientation: candidate minus baseline.
    estimate = sign * loc.shift
    bounds = (loc.low, loc.high) if sign > 0 else (-loc.high, -loc.low)
    ci_low = bounds[0] if math.isfinite(bounds[0]) else None
    ci_high = bounds[1] if math.isfinite(bounds[1]) else None

    more = 0.0
    if decision == "continue":
        need = [
            _needed(n_c, loc.z, crit, rel, rel_high, min_effect),
            _needed(n_c, tail.z, crit, tail.rel, tail.high, min_effect),
        ]
        leaning_fail = [x for x, r in zip(need, (rel, tail.rel), strict=True) if r > min_effect]
        more = min(leaning_fail) if leaning_fail else max(need)
    expected_more = math.ceil(more) if math.isfinite(more) and more < 1e12 else None

    level = f"{1.0 - 2.0 * nominal:.2%}"
    shift_text = (
        f"shift {estimate:+.4g} ({_pct(rel)} worse than the baseline median {_fmt(med_b)}, "
        f"{level} CI {_pct(rel_low)}..{_pct(rel_high)}; p={loc.p:.2g})"
    )
    tail_text = (
        f"p{round(_TAIL * 100)} {_pct(tail.rel)} worse (CI {_pct(tail.low)}..{_pct(tail.high)}; "
        f"{tail.share:.1%} of candidate samples beyond the pooled p{round(_TAIL * 100)}; p={tail.p:.2g})"
    )
    where = (
        f"look {k}/{max_looks}, each test at p <= {nominal:.2g} (Pocock-type alpha spending, "
        f"{spent(alpha, fraction):.2g} of alpha={alpha:g} spent), {n_c:,} candidate / {n_b:,} baseline samples"
    )
    if decision == "fail":
        what = " and ".join(name for name, hit in (("location", fail_loc), ("tail", fail_tail)) if hit)
        message = f"Regressed beyond the {min_effect:.0%} floor on {what}: {shift_text}; {tail_text}; {where}."
    elif decision == "pass" and excluded:
        message = (
            f"No regression of {min_effect:.0%} or more: the upper bounds exclude it; {shift_text}; {tail_text}; "
            f"{where}."
        )
    elif decision == "pass":
        message = (
            f"No significant regression at the final look (a regression of {min_effect:.0%} is not excluded by "
            f"the bounds); {shift_text}; {tail_text}; {where}."
        )
    else:
        more_text = f"; about {expected_more:,} more candidate samples expected" if expected_more is not None else ""
        message = f"Not enough evidence yet: {shift_text}; {tail_text}; {where}{more_text}."

    details = dict(base)
    figures = {
        "alpha_spent": spent(alpha, fraction),
        "information_fraction": fraction,
        "nominal_level": nominal,
        "z_critical": crit,
        "z_location": loc.z,
        "p_location": loc.p,
        "rel_shift": rel,
        "rel_shift_low": rel_low,
        "rel_shift_high": rel_high,
        "z_tail": tail.z,
        "p_tail": tail.p,
        "tail_share": tail.share,
        "rel_tail_q90": tail.rel,
        "rel_tail_q90_low": tail.low,
        "rel_tail_q90_high": tail.high,
        "baseline_median": med_b,
        "candidate_median": sign * _quantile(yc, 0.5),
        "bounds_exclude_min_effect": 1.0 if excluded else 0.0,
    }
    details.update({key: v for key, v in figures.items() if math.isfinite(v)})
    return JudgeResult(
        decision=decision,
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        samples=n_c,
        expected_more=expected_more,
        message=message,
        details=details,
    )
