"""Human sentences and compact numbers for check results.

Numbers show up to 4 significant digits (``0.30000000000000004`` reads ``0.3``); two numbers printed side
by side share their decimals (``0.43 <= 0.50``) and gain digits when they would otherwise look equal.
"""

from __future__ import annotations

import math

from modelratchet.api.baseline import Threshold
from modelratchet.api.common import Direction

from .thresholds import Check
from .tolerance import is_zero, tolerance


def num(x: float, digits: int = 4) -> str:
    """Compact: ``digits`` significant digits, whole numbers from ``10**digits`` up, no float noise."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    if 10**digits <= abs(x) < 1e15:
        return str(round(x))
    return f"{x:.{digits}g}"


def signed(x: float, digits: int = 4) -> str:
    """A change with its sign: ``+0.05``, ``-0.08``, ``0``."""
    text = num(x, digits)
    return f"+{text}" if x > 0 and text != "0" else text


def _decimals(text: str) -> int | None:
    if "e" in text or "inf" in text or "nan" in text:
        return None
    return len(text.partition(".")[2])


def pair(a: float, b: float, digits: int = 4, *, align: bool = True) -> tuple[str, str]:
    """Two numbers for one comparison: distinct whenever the numbers differ, with the same decimals if ``align``."""
    while True:
        sa, sb = num(a, digits), num(b, digits)
        if sa != sb or digits >= 15 or abs(a - b) <= tolerance(a, b):
            break
        digits += 2
    da, db = _decimals(sa), _decimals(sb)
    if not align or da is None or db is None or max(abs(a), abs(b)) >= 10**digits:
        return sa, sb
    places = max(da, db)
    return f"{a:.{places}f}", f"{b:.{places}f}"


def percent(fraction: float, digits: int = 2) -> str:
    return num(fraction * 100, digits)


def _tier(check: Check, threshold: Threshold) -> str:
    if threshold.tiers is not None and check.tier is not None:
        return f", {check.tier.severity} tier"
    return ""


def threshold_message(
    name: str,
    threshold: Threshold,
    direction: Direction,
    check: Check,
    value: float,
    baseline: float | None,
) -> str:
    """One sentence saying what was compared with what, and whether it held."""
    kind = threshold.type
    if kind in ("min", "max"):
        v, t = pair(value, check.bound)
        if kind == "min":
            return f"{name}: {v} {'>=' if check.passed else '<'} {t} (min)"
        return f"{name}: {v} {'<=' if check.passed else '>'} {t} (max)"

    assert baseline is not None and check.worsening is not None
    tag = f"({kind}{_tier(check, threshold)})"
    diff = value - baseline
    if is_zero(diff, value, baseline):
        return f"{name}: unchanged at baseline {num(baseline)} {tag}"
    worse = check.worsening > 0 and not is_zero(check.worsening, value, baseline)

    if kind == "ratio":
        rel = abs(diff) / abs(baseline)
        v, b = pair(value, baseline)
        side = "above" if diff > 0 else "below"
        if not worse:
            return f"{name}: {v} is {percent(rel)}% {side} baseline {b}, no regression {tag}"
        shown, limit = pair(rel * 100, check.bound * 100, 2, align=False)
        verdict = "within" if check.passed else "more than"
        return f"{name}: {v} is {shown}% {side} baseline {b}, {verdict} {limit}% {tag}"

    if threshold.symmetric:
        v, b = pair(value, baseline)
        amount, limit = pair(abs(diff), check.bound, align=False)
        side = "above" if diff > 0 else "below"
        verdict = "within" if check.passed else "beyond"
        return f"{name}: {v} is {amount} {side} baseline {b}, {verdict} ±{limit} {tag}"

    verb = "rose" if diff > 0 else "dropped"
    if not worse:
        return f"{name}: {verb} {num(abs(diff))} from {num(baseline)}, no regression {tag}"
    amount, limit = pair(abs(diff), check.bound, align=False)
    verdict = "within" if check.passed else "beyond"
    return f"{name}: {verb} {amount} from {num(baseline)}, {verdict} {limit} {tag}"
