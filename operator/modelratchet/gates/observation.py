"""What was measured for one metric of one arm (candidate or baseline)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram over consecutive windows: for each window, the cumulative count at each ``le``.

    ``bounds`` are the ``le`` values, increasing (the last normally ``inf``); ``times`` the windows' end
    times (seconds), which align the candidate's windows with the stable checkpoint's; ``step`` the
    windows' length in seconds.
    """

    bounds: tuple[float, ...]
    times: tuple[float, ...]
    windows: tuple[tuple[float, ...], ...]
    step: float

    def pooled(self) -> tuple[float, ...]:
        """Cumulative counts over all windows."""
        return tuple(math.fsum(w[i] for w in self.windows) for i in range(len(self.bounds)))

    def quantile(self, q: float) -> float | None:
        """``histogram_quantile(q, ...)`` of the pooled counts, as Prometheus interpolates it."""
        cum = self.pooled()
        if not cum or not math.isinf(self.bounds[-1]) or cum[-1] <= 0.0:
            return None
        rank = q * cum[-1]
        j = next(i for i, c in enumerate(cum) if c >= rank)
        if math.isinf(self.bounds[j]):
            return self.bounds[-2] if len(self.bounds) > 1 else None
        lower = 0.0 if j == 0 else self.bounds[j - 1]
        before = 0.0 if j == 0 else cum[j - 1]
        inside = cum[j] - before
        if j == 0 and self.bounds[0] <= 0.0:
            return self.bounds[0]
        return lower + (self.bounds[j] - lower) * ((rank - before) / inside if inside > 0.0 else 1.0)


@dataclass(frozen=True)
class Observation:
    """One metric of one arm.

    A plain number handed to the engine instead of an Observation is a final offline value (an eval
    result in CI): minSamples and the statistical judges, which need live sample data, do not apply to it.
    """

    value: float | None = None  # the metric's value (threshold judge)
    samples: float | None = None  # sample count, for minSamples
    successes: float | None = None  # sequential judge: cumulative counts
    total: float | None = None
    series: tuple[float, ...] | None = None  # mannWhitney: per-request samples
    histogram: Histogram | None = None  # histogram judge: bucket counts per window
    error: str | None = None  # why it could not be measured (query error, empty vector, NaN)
    # A baseline arm whose counts will not grow: a static value's evidence, or what the stable checkpoint
    # measured during the canary (after promotion). Judged two-sample against these frozen counts.
    frozen: bool = False
    exact: bool = False  # a static baseline its author declared exact (no evidence needed)

    def point_value(self) -> float | None:
        """The value to compare and display: the value, else the rate of the counts, else the median."""
        if self.value is not None:
            return float(self.value)
        if self.successes is not None and self.total:
            return float(self.successes) / float(self.total)
        if self.series:
            finite = [x for x in self.series if math.isfinite(x)]
            return float(statistics.median(finite)) if finite else None
        if self.histogram is not None:
            return self.histogram.quantile(0.5)
        return None


@dataclass(frozen=True)
class Schedule:
    """Where a look sits in its rollout, for the judges that spend a false-rollback budget over looks."""

    look: int = 1  # this look, counted from the start of the rollout (or of the post-promotion watch)
    planned: int = 1  # looks planned for the whole rollout (or watch)
    final: bool = True  # the last planned look of the current step (or watch): an undecided judge passes
    ahead: float = 0.0  # data still planned after this look, in analysis intervals at the current traffic split
    interval_seconds: float | None = None  # the analysis interval; None: one histogram window per interval
    # This window's share of the rollout's false-rollback budget, as rollout-wide information fractions: each
    # traffic step starts a window that is judged apart, and the shares add up to the whole budget.
    share: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def of(cls, look: int, max_looks: int) -> Schedule:
        """Equally spaced looks of one analysis, as ``evaluate(look=..., max_looks=...)`` describes them."""
        return cls(look, max_looks, look >= max_looks, float(max(0, max_looks - look)))

    def ahead_windows(self, step: float) -> float:
        """``ahead`` in histogram windows of ``step`` seconds."""
        if self.interval_seconds is None or step <= 0.0:
            return self.ahead
        return self.ahead * self.interval_seconds / step


@dataclass(frozen=True)
class Measured:
    """An observation and whether it came as a plain offline number."""

    obs: Observation
    offline: bool


Input = float | Observation | None


def measured(raw: Input) -> Measured | None:
    """Normalise one entry of a candidate or baseline mapping; None when nothing was supplied."""
    if raw is None:
        return None
    if isinstance(raw, Observation):
        return Measured(raw, offline=False)
    return Measured(Observation(value=float(raw)), offline=True)


def problem(value: float | None) -> str | None:
    """Why a value cannot be judged, or None when it can."""
    if value is None:
        return "no value"
    if math.isnan(value):
        return "value is NaN"
    if math.isinf(value):
        return f"value is {'+' if value > 0 else '-'}inf"
    return None
