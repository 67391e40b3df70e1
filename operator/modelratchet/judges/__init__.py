"""Statistical judges: decide from live samples whether a candidate regressed against its baseline.

Pure code (numpy and scipy only, no I/O). Every judge returns a :class:`JudgeResult` with the
decision and the figures behind it.

- :func:`sequential_rate`: always-valid sequential likelihood ratio test for rate metrics from
  cumulative counts (Wald 1945; Cox 1963 for the side-by-side case).
- :func:`histogram`: stratified rank tests of location and upper tail on the per-bucket counts of a
  Prometheus histogram over non-overlapping windows (latency in the operator), with Lan-DeMets alpha
  spending over information fractions.
- :func:`mann_whitney`: group-sequential Mann-Whitney rank test of location, with a companion
  rank test of spread, for independent per-request samples (``modelratchet check`` with raw samples).
"""

from .buckets import Counts, histogram, per_bucket
from .mannwhitney import mann_whitney
from .sequential import sequential_rate
from .types import Decision, Direction, JudgeResult

__all__ = [
    "Counts",
    "Decision",
    "Direction",
    "JudgeResult",
    "histogram",
    "mann_whitney",
    "per_bucket",
    "sequential_rate",
]
