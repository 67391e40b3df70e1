"""Simulated metric streams of a canary rollout, with known truth.

Time runs in analysis intervals (30 s), each split into scrape steps (5 s). Both arms share the
same environment: traffic and the metric's level follow a daily-like seasonal wave plus AR(1)
noise, identical for candidate and baseline, so only the injected effect separates them.

- :class:`RateStream`: counts of events and of their successes per step and arm (accuracy from
  delayed labels: correct / labelled predictions; error rate: errors / requests). Labels arrive
  with a delay spread over the following intervals, so the labelled count lags the traffic.
- :class:`SampleStream`: per-request latency samples per interval and arm (log-normal).

Missing data: a share of intervals can be flagged as failed queries for the candidate (NaN in
Prometheus); the counters underneath keep counting, as Prometheus counters do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

STEPS = 6  # scrape steps per interval (5 s steps, 30 s interval)
INTERVAL_SECONDS = 30.0

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Environment:
    """Seasonality and autocorrelated noise shared by both arms."""

    period: float = 240.0  # intervals per seasonal cycle (2 h)
    traffic_season: float = 0.3  # amplitude of the log-traffic wave
    traffic_ar_sd: float = 0.15  # stationary sd of the AR(1) on log-traffic
    level_season: float = 0.1  # amplitude of the metric-level wave (logit rate / log latency)
    level_ar_sd: float = 0.1  # stationary sd of the AR(1) on the level
    ar_rho: float = 0.9  # AR(1) coefficient per interval


def _ar1(rng: np.random.Generator, runs: int, length: int, rho: float, sd: float) -> FloatArray:
    out = np.empty((runs, length))
    out[:, 0] = rng.normal(0.0, sd, runs)
    innovation = sd * math.sqrt(1.0 - rho * rho)
    shocks = rng.normal(0.0, innovation, (runs, length))
    for t in range(1, length):
        out[:, t] = rho * out[:, t - 1] + shocks[:, t]
    return out


def _season(rng: np.random.Generator, runs: int, length: int, period: float) -> FloatArray:
    phase = rng.uniform(0.0, 2.0 * math.pi, (runs, 1))
    t = np.arange(length)[None, :]
    return np.asarray(np.sin(2.0 * math.pi * t / period + phase), dtype=float)


def effect_path(effect: float, drift: bool, intervals: int) -> FloatArray:
    """The injected effect per interval: a step from the start, or a linear drift reaching ``effect`` at the end."""
    if drift:
        return effect * np.arange(1, intervals + 1, dtype=float) / intervals
    return np.full(intervals, effect, dtype=float)


@dataclass(frozen=True)
class RateConfig:
    """A rate metric's truth: ``rate`` is the baseline's success rate (or error rate)."""

    rate: float
    per_interval: float  # expected events per interval over both arms, before seasonality
    canary_share: float
    effect: float = 0.0  # absolute change of the candidate's rate (accuracy: negative is worse)
    drift: bool = False
    delays: tuple[float, ...] = (1.0,)  # share of labels arriving 0, 1, 2, ... intervals late
    nan_share: float = 0.0  # share of intervals whose candidate query fails
    modulate_level: bool = True  # False: a stationary rate, for a truly known baseline


@dataclass(frozen=True)
class RateStream:
    """Per-step delivered counts; shape (runs, intervals * STEPS)."""

    cand_succ: FloatArray
    cand_total: FloatArray
    base_succ: FloatArray
    base_total: FloatArray
    nan_interval: BoolArray  # (runs, intervals): the candidate's query failed this interval
    intervals: int

    def per_interval(self, counts: FloatArray) -> FloatArray:
        runs = counts.shape[0]
        return np.asarray(counts.reshape(runs, self.intervals, STEPS).sum(axis=2), dtype=float)

    def cumulative(self, counts: FloatArray) -> FloatArray:
        return np.asarray(np.cumsum(self.per_interval(counts), axis=1), dtype=float)


def rate_stream(
    cfg: RateConfig, runs: int, intervals: int, rng: np.random.Generator, env: Environment | None = None
) -> RateStream:
    env = env or Environment()
    n_steps = intervals * STEPS
    season = _season(rng, runs, intervals, env.period)
    traffic = np.exp(env.traffic_season * season + _ar1(rng, runs, intervals, env.ar_rho, env.traffic_ar_sd))
    level = np.zeros((runs, intervals))
    if cfg.modulate_level:
        level = env.level_season * _season(rng, runs, intervals, env.period)
        level += _ar1(rng, runs, intervals, env.ar_rho, env.level_ar_sd)
    logit = math.log(cfg.rate / (1.0 - cfg.rate))
    base_rate = 1.0 / (1.0 + np.exp(-(logit + level)))
    cand_rate = np.clip(base_rate + effect_path(cfg.effect, cfg.drift, intervals)[None, :], 0.0, 1.0)
    # Expand interval-level paths to steps.
    traffic_s = np.repeat(traffic, STEPS, axis=1)
    rates = {"cand": np.repeat(cand_rate, STEPS, axis=1), "base": np.repeat(base_rate, STEPS, axis=1)}
    shares = {"cand": cfg.canary_share, "base": 1.0 - cfg.canary_share}
    mean_per_step = cfg.per_interval / STEPS
    weights = np.asarray(cfg.delays, dtype=float) / sum(cfg.delays)
    out: dict[str, tuple[FloatArray, FloatArray]] = {}
    for arm in ("cand", "base"):
        succ = np.zeros((runs, n_steps))
        total = np.zeros((runs, n_steps))
        for d, w in enumerate(weights):
            lag = d * STEPS
            if w == 0.0 or lag >= n_steps:
                continue
            # Poisson thinning: the predictions whose labels arrive d intervals late.
            n = rng.poisson(mean_per_step * shares[arm] * w * traffic_s).astype(float)
            s = rng.binomial(n.astype(np.int64), rates[arm]).astype(float)
            total[:, lag:] += n[:, : n_steps - lag]
            succ[:, lag:] += s[:, : n_steps - lag]
        out[arm] = (succ, total)
    nan_interval = rng.random((runs, intervals)) < cfg.nan_share
    return RateStream(
        cand_succ=out["cand"][0],
        cand_total=out["cand"][1],
        base_succ=out["base"][0],
        base_total=out["base"][1],
        nan_interval=nan_interval,
        intervals=intervals,
    )


@dataclass(frozen=True)
class LatencyConfig:
    """Log-normal latency: median ``median`` seconds, log-sd ``sigma``."""

    median: float = 0.1
    sigma: float = 0.5
    per_interval: int = 25  # samples per arm per interval
    shift: float = 0.0  # relative change of the candidate's median (0.1 = 10% slower)
    drift: bool = False
    spread: float = 1.0  # ratio of the candidate's log-sd to the baseline's


@dataclass(frozen=True)
class SampleStream:
    """Latency samples; shape (runs, intervals, per_interval)."""

    cand: FloatArray
    base: FloatArray
    intervals: int


def latency_stream(
    cfg: LatencyConfig, runs: int, intervals: int, rng: np.random.Generator, env: Environment | None = None
) -> SampleStream:
    env = env or Environment()
    m = cfg.per_interval
    level = env.level_season * _season(rng, runs, intervals, env.period)
    level += _ar1(rng, runs, intervals, env.ar_rho, env.level_ar_sd * 0.5)
    mu = math.log(cfg.median) + level
    shift = np.log1p(effect_path(cfg.shift, cfg.drift, intervals))[None, :]
    base = np.exp(mu[:, :, None] + cfg.sigma * rng.standard_normal((runs, intervals, m)))
    cand = np.exp((mu + shift)[:, :, None] + cfg.sigma * cfg.spread * rng.standard_normal((runs, intervals, m)))
    return SampleStream(cand=cand, base=base, intervals=intervals)
