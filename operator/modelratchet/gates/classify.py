"""Improved / neutral / regressed: how a metric moved against its baseline."""

from __future__ import annotations

from modelratchet.api.common import Direction
from modelratchet.api.rollout import Classification

from .tolerance import is_zero, tolerance


def classify(value: float, baseline: float, direction: Direction, neutral_band: float) -> Classification:
    """Direction-aware: a lower loss is an improvement.

    Neutral when ``|value - baseline| < neutral_band``; a change of exactly the band (up to rounding)
    is not neutral, and no change at all is always neutral, even with a band of 0.
    """
    diff = value - baseline
    if is_zero(diff, value, baseline) or abs(diff) < neutral_band - tolerance(abs(diff), neutral_band, value, baseline):
        return "neutral"
    better = diff > 0 if direction == "higherIsBetter" else diff < 0
    return "improved" if better else "regressed"
