"""Rounding-tolerant comparisons shared by the threshold math and the classification.

Thresholds are inclusive: a value exactly at its bound passes even when binary floating point rounds a
subtraction the wrong way (0.92 - 0.87 == 0.05000000000000004). Two numbers a and b count as equal when

- ``math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)`` holds, or
- they differ by no more than the rounding of the subtraction that produced them: a few units in the
  last place (ULPs) of its operands, which matters when a small delta comes from large values
  (1000000.05 - 1000000 is 0.0500000000465...).

Real thresholds are many orders of magnitude coarser than this, so the tolerance only absorbs noise.
"""

from __future__ import annotations

import sys

REL_TOL = 1e-9
ABS_TOL = 1e-12
ROUNDING_ULPS = 16
_EPS = sys.float_info.epsilon


def _rounding(operands: tuple[float, ...]) -> float:
    return ROUNDING_ULPS * _EPS * max((abs(x) for x in operands), default=0.0)


def tolerance(a: float, b: float, *operands: float) -> float:
    """How far apart a and b may be and still count as equal; ``operands`` produced them."""
    return max(REL_TOL * max(abs(a), abs(b)), _rounding(operands), ABS_TOL)


def at_most(a: float, b: float, *operands: float) -> bool:
    """``a <= b``, counting a and b as equal when they differ only by rounding."""
    return a <= b + tolerance(a, b, *operands)


def is_zero(a: float, *operands: float) -> bool:
    """``a == 0`` up to the rounding of the subtraction of ``operands`` that produced it."""
    return abs(a) <= max(_rounding(operands), ABS_TOL)
