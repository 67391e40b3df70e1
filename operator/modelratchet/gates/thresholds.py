"""The math of one threshold: does a value hold against its bound (or tiers of bounds)?

delta and ratio measure *worsening* against the baseline, positive when the candidate is worse:

- delta: ``baseline - value`` (higherIsBetter) or ``value - baseline`` (lowerIsBetter);
  symmetric: ``abs(value - baseline)``.
- ratio: the same difference relative to ``abs(baseline)``. For a positive baseline this is exactly
  DESIGN's ``value / baseline >= 1 - threshold`` (or ``<= 1 + threshold``); dividing by the magnitude
  keeps the direction right for a negative baseline.

A check passes when worsening <= bound, inclusive and tolerant to rounding (see ``tolerance``).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelratchet.api.baseline import Threshold, Tier
from modelratchet.api.common import Direction, Severity

from .tolerance import at_most

SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Check:
    """The outcome of one threshold for one value."""

    passed: bool
    severity: Severity  # the crossed tier's severity on failure, else the metric's severity
    bound: float  # the bound crossed, or the (lowest) bound applied when passed
    tier: Tier | None  # the crossed tier of a tiered threshold
    worsening: float | None  # delta and ratio only; negative when the candidate is better


def worsening(kind: str, direction: Direction, value: float, baseline: float, *, symmetric: bool = False) -> float:
    """How much worse than the baseline the value is, in the threshold's unit (absolute or relative)."""
    diff = value - baseline
    if kind == "ratio":
        diff /= abs(baseline)
    elif symmetric:
        return abs(diff)
    return -diff if direction == "higherIsBetter" else diff


def _scale(kind: str, value: float, baseline: float) -> tuple[float, ...]:
    """The operands whose rounding the comparison must tolerate."""
    if kind == "ratio":
        return (1.0, value / baseline)
    return (value, baseline)


def check(
    threshold: Threshold,
    direction: Direction,
    severity: Severity,
    value: float,
    baseline: float | None = None,
) -> Check:
    """Judge a finite value; delta and ratio need a finite baseline (non-zero for ratio)."""
    if threshold.type in ("min", "max"):
        assert threshold.value is not None  # the model guarantees value for min/max
        bound = threshold.value
        ok = at_most(bound, value) if threshold.type == "min" else at_most(value, bound)
        return Check(ok, severity, bound, None, None)

    if baseline is None:
        raise ValueError(f"a {threshold.type} threshold needs a baseline")
    if threshold.type == "ratio" and baseline == 0:
        raise ValueError("a ratio threshold needs a non-zero baseline")
    worse = worsening(threshold.type, direction, value, baseline, symmetric=bool(threshold.symmetric))
    scale = _scale(threshold.type, value, baseline)

    if threshold.tiers is None:
        assert threshold.value is not None
        ok = at_most(worse, threshold.value, *scale)
        return Check(ok, severity, threshold.value, None, worse)

    crossed = [t for t in threshold.tiers if not at_most(worse, t.value, *scale)]
    if not crossed:
        return Check(True, severity, threshold.tiers[0].value, None, worse)
    # The worst severity crossed decides; among equals, the furthest bound crossed is reported.
    tier = max(crossed, key=lambda t: (SEVERITY_RANK[t.severity], t.value))
    return Check(False, tier.severity, tier.value, tier, worse)


def judge_bound(threshold: Threshold, severity: Severity) -> tuple[float, Severity] | None:
    """The one bound a statistical judge tests, and the severity of its failure.

    A judge decides a single regression size. With tiers it tests the lowest bound that carries the
    worst severity present, the bound that can change the verdict; min and max have none.
    """
    if threshold.type not in ("delta", "ratio"):
        return None
    if threshold.tiers is None:
        assert threshold.value is not None
        return threshold.value, severity
    worst = max(SEVERITY_RANK[t.severity] for t in threshold.tiers)
    tier = next(t for t in threshold.tiers if SEVERITY_RANK[t.severity] == worst)
    return tier.value, tier.severity
