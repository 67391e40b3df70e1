"""Statistical judges: decide from live samples whether a candidate regressed against its baseline.

Pure code (numpy and scipy only, no I/O). Every judge returns a :class:`JudgeResult` with the
decision and the figures behind it.

- :func:`sequential_rate`: always-valid sequential likelihood ratio test for rate metrics from
  cumulative counts (Wald 1945; Cox 1963 for the side-by-side case).
- :func:`mann_whitney`: group-sequential Mann-Whitney rank test of location, with a companion
  rank test of spread, for samples such as latencies (Lan and DeMets 1983 alpha spending).
"""

from .mannwhitney import mann_whitney
from .sequential import sequential_rate
from .types import Decision, Direction, JudgeResult

__all__ = ["Decision", "Direction", "JudgeResult", "mann_whitney", "sequential_rate"]
