"""Latency as Prometheus has it: histogram bucket counters per arm, at unequal request rates.

Each run is a canary whose requests arrive at ``cand_rps`` and ``base_rps`` (Poisson, with the shared
traffic wave), each request's latency log-normal around a level shared by both arms (seasonality and
AR(1) per 30 s interval), the candidate's shifted or spread by the injected effect. What a judge may see
is what Prometheus keeps: per-bucket counts, here per 10 s step with the Python client's default buckets.

Three ways to judge it, all called once per 30 s interval as the operator calls them:

- ``modelratchet``: :func:`modelratchet.judges.histogram` on the exact bucket counts per interval.
- ``before``: what the docs recommended until now, :func:`modelratchet.judges.mann_whitney` on a range
  query of a rolling 1-minute ``histogram_quantile(0.5, ...)`` sampled every 10 s (overlapping windows,
  traffic-dependent scatter), look k of the analysis' intervals.
- ``reference``: the same Mann-Whitney on the per-request samples themselves, where it is valid (what
  ``modelratchet check`` does with raw samples): the sample counts the per-sample judge reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from modelratchet.judges import Direction, histogram, mann_whitney
from numpy.typing import NDArray

from .streams import Environment, FloatArray, _ar1, _season, effect_path

# prometheus_client's default buckets (the Go client's are coarser still).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf)
SUB = 3  # 10 s steps per 30 s interval
STEP_SECONDS = 10.0
ROLLING = 6  # the rolling quantile's window: 1 minute of 10 s steps

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class HistogramConfig:
    """Log-normal latency, median ``median`` seconds and log-sd ``sigma``, at the given request rates."""

    cand_rps: float = 2.0
    base_rps: float = 18.0
    median: float = 0.1
    sigma: float = 0.5
    shift: float = 0.0  # relative change of the candidate's median
    spread: float = 1.0  # ratio of the candidate's log-sd to the baseline's
    drift: bool = False
    raw: bool = False  # keep the per-request samples (for the per-sample reference)

    @property
    def split(self) -> str:
        return f"{self.cand_rps:g}/{self.base_rps:g} rps"


@dataclass(frozen=True)
class HistogramStream:
    """Bucket counts per 10 s step, (runs, intervals * SUB, buckets); per-request samples when kept."""

    cand: IntArray
    base: IntArray
    intervals: int
    # Per run: (samples, interval index) per arm, when the config keeps them.
    cand_raw: list[tuple[FloatArray, IntArray]] | None = None
    base_raw: list[tuple[FloatArray, IntArray]] | None = None

    def per_interval(self, counts: IntArray) -> IntArray:
        runs, _, buckets = counts.shape
        out: IntArray = counts.reshape(runs, self.intervals, SUB, buckets).sum(axis=2)
        return out

    def cumulative_samples(self) -> FloatArray:
        """Candidate requests up to each interval, (runs, intervals)."""
        out: FloatArray = np.cumsum(self.per_interval(self.cand).sum(axis=2), axis=1).astype(float)
        return out


def _bucket_probs(mu: FloatArray, sigma: float) -> FloatArray:
    """Share of log-normal(mu, sigma) requests per bucket; ``mu`` of any shape, buckets last."""
    from scipy.special import ndtr

    edges = np.log(np.asarray(BUCKETS[:-1]))
    cdf = ndtr((edges - mu[..., None]) / sigma)
    full = np.concatenate([np.zeros((*mu.shape, 1)), cdf, np.ones((*mu.shape, 1))], axis=-1)
    out: FloatArray = np.diff(full, axis=-1)
    return out


def histogram_stream(
    cfg: HistogramConfig, runs: int, intervals: int, rng: np.random.Generator, env: Environment | None = None
) -> HistogramStream:
    env = env or Environment()
    steps = intervals * SUB
    season = _season(rng, runs, intervals, env.period)
    traffic = np.exp(env.traffic_season * season + _ar1(rng, runs, intervals, env.ar_rho, env.traffic_ar_sd))
    level = env.level_season * _season(rng, runs, intervals, env.period)
    level += _ar1(rng, runs, intervals, env.ar_rho, env.level_ar_sd * 0.5)
    mu_b = math.log(cfg.median) + level
    mu_c = mu_b + np.log1p(effect_path(cfg.shift, cfg.drift, intervals))[None, :]
    arms = {"cand": (cfg.cand_rps, mu_c, cfg.sigma * cfg.spread), "base": (cfg.base_rps, mu_b, cfg.sigma)}
    counts: dict[str, IntArray] = {}
    raw: dict[str, list[tuple[FloatArray, IntArray]]] = {}
    for arm, (rps, mu, sigma) in arms.items():
        totals = rng.poisson(rps * STEP_SECONDS * np.repeat(traffic, SUB, axis=1))
        if not cfg.raw:
            probs = np.repeat(_bucket_probs(mu, sigma), SUB, axis=1)
            counts[arm] = rng.multinomial(totals, probs).astype(np.int64)
            continue
        # Per-request samples, bucketed as the exporter would (a value lands in the first bucket with le >= it).
        per_run: list[tuple[FloatArray, IntArray]] = []
        out = np.zeros((runs, steps, len(BUCKETS)), dtype=np.int64)
        step_of = np.arange(steps)
        for r in range(runs):
            which = np.repeat(step_of, totals[r])
            values = np.exp(mu[r, which // SUB] + sigma * rng.standard_normal(which.size))
            bucket = np.searchsorted(np.asarray(BUCKETS), values, side="left")
            out[r] = np.bincount(which * len(BUCKETS) + bucket, minlength=steps * len(BUCKETS)).reshape(steps, -1)
            per_run.append((values, (which // SUB).astype(np.int64)))
        counts[arm], raw[arm] = out, per_run
    return HistogramStream(counts["cand"], counts["base"], intervals, raw.get("cand"), raw.get("base"))


def histogram_quantile(q: float, counts: NDArray[np.float64] | IntArray) -> FloatArray:
    """Prometheus's ``histogram_quantile`` over the last axis of per-bucket counts (NaN without requests)."""
    c = np.asarray(counts, dtype=float)
    cum = np.cumsum(c, axis=-1)
    total = cum[..., -1]
    rank = q * total
    j = np.minimum((cum < rank[..., None]).sum(axis=-1), len(BUCKETS) - 1)
    upper = np.asarray(BUCKETS)[j]
    lower = np.where(j > 0, np.asarray((0.0, *BUCKETS[:-1]))[j], 0.0)
    before = np.take_along_axis(cum, np.maximum(j - 1, 0)[..., None], axis=-1)[..., 0] * (j > 0)
    inside = np.take_along_axis(c, j[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower + (upper - lower) * (rank - before) / inside
    # A rank in the +Inf bucket is reported as the highest finite bound, as Prometheus does.
    value = np.where(np.isinf(upper), BUCKETS[-2], value)
    out: FloatArray = np.where(total > 0, value, np.nan)
    return out


def rolling_quantile(counts: IntArray, q: float = 0.5) -> FloatArray:
    """A range query of ``histogram_quantile(q, sum by (le) (rate(x_bucket[1m])))`` at a 10 s step, (runs, steps)."""
    c = np.cumsum(counts, axis=1)
    shifted = np.concatenate([np.zeros_like(c[:, :ROLLING]), c[:, :-ROLLING]], axis=1)
    return histogram_quantile(q, c - shifted)


def window_quantile(counts: IntArray, q: float, intervals_per_window: int, intervals: int) -> FloatArray:
    """``histogram_quantile(q, ...)`` over windows of whole intervals ending at every interval, (runs, intervals)."""
    runs, _, buckets = counts.shape
    per = counts.reshape(runs, intervals, SUB, buckets).sum(axis=2)
    c = np.cumsum(per, axis=1)
    w = intervals_per_window
    shifted = np.concatenate([np.zeros_like(c[:, :w]), c[:, :-w]], axis=1)
    return histogram_quantile(q, c - shifted)


# --- the judges, called once per interval -------------------------------------------------------------------------


@dataclass(frozen=True)
class HistogramJob:
    cand: IntArray  # per interval, (runs, intervals, buckets)
    base: IntArray
    direction: Direction
    min_effect: float
    alpha: float


def histogram_chunk(job: HistogramJob) -> tuple[list[int], list[int], list[float]]:
    from .rules import PROMOTE, ROLLBACK, UNDECIDED

    decisions, stops, samples = [], [], []
    runs, horizon, _ = job.cand.shape
    for r in range(runs):
        code, stop = UNDECIDED, horizon
        cand = job.cand[r].astype(float)
        base = job.base[r].astype(float)
        for t in range(horizon):
            res = histogram(
                bounds=BUCKETS,
                candidate=cand[: t + 1],
                baseline=base[: t + 1],
                direction=job.direction,
                min_effect=job.min_effect,
                alpha=job.alpha,
                ahead=float(horizon - t - 1),
                final=t == horizon - 1,
            )
            if res.decision != "continue":
                code, stop = (ROLLBACK if res.decision == "fail" else PROMOTE), t + 1
                break
        decisions.append(code)
        stops.append(stop)
        samples.append(float(cand[:stop].sum()))
    return decisions, stops, samples


@dataclass(frozen=True)
class SeriesJob:
    """Mann-Whitney on growing samples: ``cand[r]`` values with their interval index ``cand_at[r]``."""

    cand: list[FloatArray]
    cand_at: list[IntArray]
    base: list[FloatArray]
    base_at: list[IntArray]
    cum_samples: FloatArray  # candidate requests up to each interval, (runs, intervals)
    intervals: int
    direction: Direction
    min_effect: float
    alpha: float


def series_chunk(job: SeriesJob) -> tuple[list[int], list[int], list[float]]:
    from .rules import PROMOTE, ROLLBACK, UNDECIDED

    decisions, stops, samples = [], [], []
    horizon = job.intervals
    for r in range(len(job.cand)):
        code, stop = UNDECIDED, horizon
        c_end = np.searchsorted(job.cand_at[r], np.arange(1, horizon + 1), side="left")
        b_end = np.searchsorted(job.base_at[r], np.arange(1, horizon + 1), side="left")
        for t in range(horizon):
            res = mann_whitney(
                candidate=job.cand[r][: c_end[t]],
                baseline=job.base[r][: b_end[t]],
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
        samples.append(float(job.cum_samples[r, stop - 1]))
    return decisions, stops, samples


def rolling_series(
    stream: HistogramStream,
) -> tuple[list[FloatArray], list[IntArray], list[FloatArray], list[IntArray]]:
    """The before-pipeline's points: the finite rolling p50 values per arm, each with its interval index."""
    interval_of = np.arange(stream.cand.shape[1]) // SUB
    values: dict[str, list[FloatArray]] = {"cand": [], "base": []}
    at: dict[str, list[IntArray]] = {"cand": [], "base": []}
    for arm, counts in (("cand", stream.cand), ("base", stream.base)):
        q = rolling_quantile(counts)
        for r in range(q.shape[0]):
            ok = np.isfinite(q[r])
            values[arm].append(np.asarray(q[r][ok], dtype=float))
            at[arm].append(interval_of[ok].astype(np.int64))
    return values["cand"], at["cand"], values["base"], at["base"]
