"""The decision rules compared by the benchmark, all run on the same simulated streams.

Interval rules (one check per 30 s analysis interval, on that interval's data only):

- ``argo``: a fixed threshold on the candidate's interval value, Argo Rollouts style: the default
  ``failureLimit: 0`` aborts on the first failed measurement; a failed query is an error, and more
  than ``consecutiveErrorLimit: 4`` errors in a row abort too.
- ``flagger``: the same threshold, Flagger style: every failed check, and every check whose query
  returned no data, counts; the rollout is rolled back at ``threshold: 5`` failed checks.
- ``kayenta``: Kayenta's Mann-Whitney judge per interval at confidence 0.98 with no correction for
  repeated looks: the interval fails when the 98% two-sided interval excludes no change on the bad
  side (one-sided p < 0.01). It compares what Kayenta would fetch from Prometheus: the metric's
  series at the scrape step (6 ratio points per arm per interval) for rate metrics, and the
  per-request samples for latency (favourable to it). Intervals with no data are skipped.

The ``-cal`` variants use the same statistic with its threshold calibrated on separate A/A
simulations so that the false-rollback rate equals the judges' alpha (1%): the fair comparison.

``modelratchet``: the judges of :mod:`modelratchet.judges`, called once per interval exactly as
the operator calls them, without state: ``sequential_rate`` on cumulative counts for rate metrics,
``mann_whitney`` on all samples so far (look k of the analysis' intervals) for latency. A failed
query reaches the judge as NaN counts.

Every rule fails on the first failing interval and otherwise passes at the end of the analysis,
except ``modelratchet``, which may also pass early, and may end undecided.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TypeVar

import numpy as np
from modelratchet.judges import Direction, mann_whitney, sequential_rate
from numpy.typing import NDArray

from .latency import HistogramJob, HistogramStream, IntArray, SeriesJob, histogram_chunk, series_chunk
from .streams import STEPS, FloatArray, RateStream, SampleStream

ROLLBACK, PROMOTE, UNDECIDED = 1, 0, -1
ARGO_ERROR_LIMIT = 4  # Argo Rollouts' default consecutiveErrorLimit
FLAGGER_THRESHOLD = 5  # Flagger's analysis.threshold in its documented examples
KAYENTA_Z = 2.3263478740408408  # one-sided p < 0.01, i.e. a two-sided 98% interval


@dataclass(frozen=True)
class Outcome:
    """Per run: decision code, interval of the decision (1-based) and candidate samples seen by then."""

    decision: NDArray[np.int8]
    interval: NDArray[np.int64]
    samples: FloatArray


def _first_true(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Index of the first True per row, or the row length when there is none."""
    first = np.argmax(mask, axis=1)
    out: NDArray[np.int64] = np.where(mask.any(axis=1), first, mask.shape[1]).astype(np.int64)
    return out


def _outcome(stop: NDArray[np.int64], cum_samples: FloatArray) -> Outcome:
    """Rollback at interval index ``stop`` (0-based) when it is inside the analysis, else promote at the end."""
    horizon = cum_samples.shape[1]
    rolled = stop < horizon
    idx = np.minimum(stop, horizon - 1)
    samples = cum_samples[np.arange(cum_samples.shape[0]), idx]
    decision = np.where(rolled, ROLLBACK, PROMOTE).astype(np.int8)
    return Outcome(decision, (idx + 1).astype(np.int64), samples.astype(float))


def _at_checks(first: NDArray[np.int64], checks: NDArray[np.int64] | None, horizon: int) -> NDArray[np.int64]:
    """Interval index of the first triggering check (``first`` indexes the checks), or the horizon."""
    if checks is None:
        return first
    n = checks.size
    stop: NDArray[np.int64] = np.where(first < n, checks[np.minimum(first, n - 1)], horizon).astype(np.int64)
    return stop


def argo(
    score: FloatArray,
    threshold: float,
    cum_samples: FloatArray,
    *,
    failure_limit: int = 0,
    checks: NDArray[np.int64] | None = None,
) -> Outcome:
    """Fails when failed measurements exceed ``failure_limit``; more than 4 consecutive query errors abort too.

    ``score`` has one column per measurement; ``checks`` are their interval indices (default: every interval).
    """
    failed = np.nan_to_num(score, nan=-np.inf) > threshold
    errors = np.isnan(score)
    run = np.zeros(score.shape[0])
    too_many = np.zeros_like(errors)
    for t in range(score.shape[1]):
        run = np.where(errors[:, t], run + 1, 0)
        too_many[:, t] = run > ARGO_ERROR_LIMIT
    first = np.minimum(_first_true(np.cumsum(failed, axis=1) > failure_limit), _first_true(too_many))
    return _outcome(_at_checks(first, checks, cum_samples.shape[1]), cum_samples)


def flagger(
    score: FloatArray,
    threshold: float,
    cum_samples: FloatArray,
    *,
    limit: int = FLAGGER_THRESHOLD,
    checks: NDArray[np.int64] | None = None,
) -> Outcome:
    """Rollback when failed checks (including no-data checks) reach ``limit``."""
    bad = (np.nan_to_num(score, nan=np.inf) > threshold).astype(np.int64)
    first = _first_true(np.cumsum(bad, axis=1) >= limit)
    return _outcome(_at_checks(first, checks, cum_samples.shape[1]), cum_samples)


def kayenta(
    z: FloatArray, z_crit: float, cum_samples: FloatArray, *, checks: NDArray[np.int64] | None = None
) -> Outcome:
    """First check whose Mann-Whitney z exceeds the critical value fails; no-data checks are skipped."""
    first = _first_true(np.nan_to_num(z, nan=-np.inf) > z_crit)
    return _outcome(_at_checks(first, checks, cum_samples.shape[1]), cum_samples)


def window_value(succ: FloatArray, total: FloatArray, window: int, checks: NDArray[np.int64]) -> FloatArray:
    """Rate over the last ``window`` intervals at each check (interval indices), as ``rate(...[w])`` ratios give it."""
    cs, ct = np.cumsum(succ, axis=1), np.cumsum(total, axis=1)

    def over(c: FloatArray) -> FloatArray:
        before = np.where(checks - window >= 0, c[:, np.maximum(checks - window, 0)], 0.0)
        out: FloatArray = c[:, checks] - before
        return out

    with np.errstate(invalid="ignore", divide="ignore"):
        value: FloatArray = over(cs) / over(ct)
    return value


def growing_z(
    cand: FloatArray, base: FloatArray, checks: NDArray[np.int64], per_interval: int, bad_sign: float
) -> FloatArray:
    """Mann-Whitney z over all points since the start at each check: ``cand`` and ``base`` are (runs, points)."""
    out = np.empty((cand.shape[0], checks.size))
    for i, k in enumerate(checks):
        end = (int(k) + 1) * per_interval
        out[:, i] = mw_z(cand[:, None, :end], base[:, None, :end], bad_sign)[:, 0]
    return out


def calibrate_argo(score: FloatArray, rate: float) -> float:
    """Threshold with at most ``rate`` of the A/A runs ever exceeding it."""
    worst = np.nanmax(np.where(np.isnan(score), -np.inf, score), axis=1)
    return float(np.quantile(worst, 1.0 - rate, method="higher"))


def calibrate_flagger(score: FloatArray, rate: float) -> float:
    """Threshold with at most ``rate`` of the A/A runs reaching the failed-check limit."""
    filled = np.where(np.isnan(score), np.inf, score)
    kth = -np.sort(-filled, axis=1)[:, FLAGGER_THRESHOLD - 1]
    return float(np.quantile(kth, 1.0 - rate, method="higher"))


def mw_z(cand: FloatArray, base: FloatArray, bad_sign: float, chunk: int | None = None) -> FloatArray:
    """One-sided Mann-Whitney z per (run, interval): candidate worse than baseline; NaN values dropped.

    ``cand`` and ``base`` have shape (runs, intervals, points). Tie-corrected normal approximation
    with continuity correction, as Kayenta's judge uses; NaN where either arm has fewer than 3 points.
    """
    runs, intervals, points = cand.shape
    out = np.full((runs, intervals), np.nan)
    # The pairwise comparisons take runs x intervals x points^2 booleans: keep a chunk near 20 million.
    chunk = chunk or max(1, min(256, 20_000_000 // max(1, intervals * 4 * points * points)))
    for lo in range(0, runs, chunk):
        c = bad_sign * cand[lo : lo + chunk]
        b = bad_sign * base[lo : lo + chunk]
        vc, vb = ~np.isnan(c), ~np.isnan(b)
        pair = vc[..., :, None] & vb[..., None, :]
        gt = (c[..., :, None] > b[..., None, :]) & pair
        eq = (c[..., :, None] == b[..., None, :]) & pair
        u = gt.sum(axis=(-1, -2)) + 0.5 * eq.sum(axis=(-1, -2))
        n_c, n_b = vc.sum(axis=-1).astype(float), vb.sum(axis=-1).astype(float)
        pooled = np.concatenate([c, b], axis=-1)
        valid = ~np.isnan(pooled)
        same = (pooled[..., :, None] == pooled[..., None, :]) & valid[..., :, None] & valid[..., None, :]
        tie_sizes = same.sum(axis=-1).astype(float)
        ties = np.where(valid, tie_sizes**2 - 1.0, 0.0).sum(axis=-1)
        n = n_c + n_b
        with np.errstate(invalid="ignore", divide="ignore"):
            var = n_c * n_b / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))
            z = (u - n_c * n_b / 2.0 - 0.5) / np.sqrt(var)
        ok = (n_c >= 3) & (n_b >= 3) & (var > 0)
        out[lo : lo + chunk] = np.where(ok, z, np.nan)
    return out


def step_ratios(stream: RateStream, nan_masked: bool) -> tuple[FloatArray, FloatArray]:
    """Per-step success ratios per arm, shape (runs, intervals, STEPS): what a range query returns."""
    runs, intervals = stream.cand_total.shape[0], stream.intervals
    with np.errstate(invalid="ignore", divide="ignore"):
        cand = (stream.cand_succ / stream.cand_total).reshape(runs, intervals, STEPS)
        base = (stream.base_succ / stream.base_total).reshape(runs, intervals, STEPS)
    if nan_masked:
        cand = np.where(stream.nan_interval[:, :, None], np.nan, cand)
    return cand, base


# --- ModelRatchet -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateJob:
    cand_succ: FloatArray  # cumulative per interval, (runs, intervals)
    cand_total: FloatArray
    base_succ: FloatArray | None
    base_total: FloatArray | None
    base_rate: float | None
    nan_interval: NDArray[np.bool_]
    direction: Direction
    min_regression: float
    alpha: float
    beta: float
    base_rates: FloatArray | None = None  # a known rate per run (a static baseline taken as exact)


def _rate_chunk(job: RateJob) -> tuple[list[int], list[int], list[float]]:
    decisions, stops, samples = [], [], []
    runs, horizon = job.cand_total.shape
    for r in range(runs):
        code, stop = UNDECIDED, horizon
        for t in range(horizon):
            nan = bool(job.nan_interval[r, t])
            kwargs: dict[str, float] = {}
            if job.base_rates is not None:
                kwargs["baseline_rate"] = float(job.base_rates[r])
            elif job.base_rate is not None:
                kwargs["baseline_rate"] = job.base_rate
            else:
                assert job.base_succ is not None and job.base_total is not None
                kwargs["baseline_successes"] = float(job.base_succ[r, t])
                kwargs["baseline_total"] = float(job.base_total[r, t])
            res = sequential_rate(
                candidate_successes=math.nan if nan else float(job.cand_succ[r, t]),
                candidate_total=math.nan if nan else float(job.cand_total[r, t]),
                direction=job.direction,
                min_regression=job.min_regression,
                alpha=job.alpha,
                beta=job.beta,
                **kwargs,
            )
            if res.decision != "continue":
                code, stop = (ROLLBACK if res.decision == "fail" else PROMOTE), t + 1
                break
        decisions.append(code)
        stops.append(stop)
        samples.append(float(job.cand_total[r, stop - 1]))
    return decisions, stops, samples


@dataclass(frozen=True)
class LatencyJob:
    cand: FloatArray  # (runs, intervals, per_interval)
    base: FloatArray
    direction: Direction
    min_effect: float
    alpha: float


def _latency_chunk(job: LatencyJob) -> tuple[list[int], list[int], list[float]]:
    decisions, stops, samples = [], [], []
    runs, horizon, m = job.cand.shape
    for r in range(runs):
        code, stop = UNDECIDED, horizon
        for t in range(horizon):
            res = mann_whitney(
                candidate=job.cand[r, : t + 1].ravel().tolist(),
                baseline=job.base[r, : t + 1].ravel().tolist(),
                direction=job.direction,
                min_effect=job.min_effect,
                alpha=job.alpha,
                look=t + 1,
                max_looks=horizon,
            )
            if res.decision != "continue":
                code, stop = (ROLLBACK if res.decision == "fail" else PROMOTE), t + 1
                break
        decisions.append(code)
        stops.append(stop)
        samples.append(float(stop * m))
    return decisions, stops, samples


Parts = list[tuple[list[int], list[int], list[float]]]
J = TypeVar("J")


def _parallel(fn: Callable[[J], tuple[list[int], list[int], list[float]]], chunks: list[J], jobs: int) -> Outcome:
    parts: Parts
    if jobs <= 1 or len(chunks) == 1:
        parts = [fn(c) for c in chunks]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
            parts = list(pool.map(fn, chunks))
    d = np.array([x for p in parts for x in p[0]], dtype=np.int8)
    i = np.array([x for p in parts for x in p[1]], dtype=np.int64)
    s = np.array([x for p in parts for x in p[2]], dtype=float)
    return Outcome(d, i, s)


def _split(runs: int, jobs: int) -> list[slice]:
    pieces = max(1, min(runs, jobs * 4))
    edges = np.linspace(0, runs, pieces + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def modelratchet_rate(
    stream: RateStream,
    *,
    direction: Direction,
    min_regression: float,
    alpha: float,
    beta: float,
    known_rate: float | None = None,
    jobs: int = 1,
) -> Outcome:
    cs, ct = stream.cumulative(stream.cand_succ), stream.cumulative(stream.cand_total)
    bs, bt = stream.cumulative(stream.base_succ), stream.cumulative(stream.base_total)
    chunks = [
        RateJob(
            cand_succ=cs[sl],
            cand_total=ct[sl],
            base_succ=None if known_rate is not None else bs[sl],
            base_total=None if known_rate is not None else bt[sl],
            base_rate=known_rate,
            nan_interval=stream.nan_interval[sl],
            direction=direction,
            min_regression=min_regression,
            alpha=alpha,
            beta=beta,
        )
        for sl in _split(ct.shape[0], jobs)
    ]
    return _parallel(_rate_chunk, chunks, jobs)


def frozen_rate(
    cand_succ: FloatArray,
    cand_total: FloatArray,
    *,
    base_succ: FloatArray,
    base_total: FloatArray,
    exact: bool,
    direction: Direction,
    min_regression: float,
    alpha: float,
    beta: float,
    jobs: int = 1,
) -> Outcome:
    """The sequential judge against a static baseline estimated on ``base_total`` samples per run.

    ``exact``: its value alone, taken as the truth (what the operator did); else its counts, frozen.
    """
    cs, ct = np.cumsum(cand_succ, axis=1), np.cumsum(cand_total, axis=1)
    runs, horizon = ct.shape
    bs = np.repeat(base_succ[:, None], horizon, axis=1)
    bt = np.repeat(base_total[:, None], horizon, axis=1)
    chunks = [
        RateJob(
            cand_succ=cs[sl],
            cand_total=ct[sl],
            base_succ=None if exact else bs[sl],
            base_total=None if exact else bt[sl],
            base_rate=None,
            base_rates=(base_succ / base_total)[sl] if exact else None,
            nan_interval=np.zeros((sl.stop - sl.start, horizon), dtype=bool),
            direction=direction,
            min_regression=min_regression,
            alpha=alpha,
            beta=beta,
        )
        for sl in _split(runs, jobs)
    ]
    return _parallel(_rate_chunk, chunks, jobs)


def modelratchet_latency(
    stream: SampleStream, *, direction: Direction, min_effect: float, alpha: float, jobs: int = 1
) -> Outcome:
    chunks = [
        LatencyJob(stream.cand[sl], stream.base[sl], direction, min_effect, alpha)
        for sl in _split(stream.cand.shape[0], jobs)
    ]
    return _parallel(_latency_chunk, chunks, jobs)


def modelratchet_histogram(
    stream: HistogramStream, *, direction: Direction, min_effect: float, alpha: float, jobs: int = 1
) -> Outcome:
    """The histogram judge on each interval's exact bucket counts, looked at after every interval."""
    cand, base = stream.per_interval(stream.cand), stream.per_interval(stream.base)
    chunks = [HistogramJob(cand[sl], base[sl], direction, min_effect, alpha) for sl in _split(cand.shape[0], jobs)]
    return _parallel(histogram_chunk, chunks, jobs)


def series_mann_whitney(
    cand: list[FloatArray],
    cand_at: list[IntArray],
    base: list[FloatArray],
    base_at: list[IntArray],
    cum_samples: FloatArray,
    *,
    intervals: int,
    direction: Direction,
    min_effect: float,
    alpha: float,
    jobs: int = 1,
) -> Outcome:
    """The per-sample Mann-Whitney judge on growing series (points tagged with their interval)."""
    chunks = [
        SeriesJob(
            cand[sl], cand_at[sl], base[sl], base_at[sl], cum_samples[sl], intervals, direction, min_effect, alpha
        )
        for sl in _split(len(cand), jobs)
    ]
    return _parallel(series_chunk, chunks, jobs)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
