"""What was measured for one metric of one arm (candidate or baseline)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


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
    series: tuple[float, ...] | None = None  # mannWhitney: samples over the window
    error: str | None = None  # why it could not be measured (query error, empty vector, NaN)

    def point_value(self) -> float | None:
        """The value to compare and display: the value, else the rate of the counts, else the series median."""
        if self.value is not None:
            return float(self.value)
        if self.successes is not None and self.total:
            return float(self.successes) / float(self.total)
        if self.series:
            finite = [x for x in self.series if math.isfinite(x)]
            return float(statistics.median(finite)) if finite else None
        return None


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
