"""Server-rendered SVG charts: no script, presentation attributes only (the page's CSP allows no inline style),
every string from the cluster escaped."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

from modelratchet.gates.format import num

from .views import ChartPoint, MetricChart

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28
COLORS = {
    "candidate": "#1f6feb",
    "baseline": "#6e7781",
    "threshold": "#cf222e",
    "ok": "#1f6feb",
    "failed": "#cf222e",
    "warning": "#bf8700",
    "inconclusive": "#8c959f",
    "info": "#8250df",
}
MAX_MESSAGE = 300  # characters of a check's message in a point's tooltip


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _range(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


class _Frame:
    """Maps analysis index and value to pixels."""

    def __init__(self, count: int, lo: float, hi: float):
        self.count, self.lo, self.hi = count, lo, hi

    def x(self, i: int) -> float:
        span = WIDTH - LEFT - RIGHT
        return LEFT + (span / 2 if self.count <= 1 else span * i / (self.count - 1))

    def y(self, v: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (self.hi - v) / (self.hi - self.lo)


def _axes(frame: _Frame, points: Sequence[ChartPoint]) -> list[str]:
    out = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#d0d7de"/>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#d0d7de"/>',
    ]
    for v in (frame.lo, (frame.lo + frame.hi) / 2, frame.hi):
        y = frame.y(v)
        out.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#f0f2f4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{escape(num(v))}</text>')
    step = max(1, math.ceil(len(points) / 12))  # at most about 12 labels
    for i, p in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            out.append(
                f'<text x="{frame.x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11">'
                f"#{p.history_id}</text>"
            )
    return out


def _polyline(frame: _Frame, values: Sequence[float | None], color: str, dash: str | None, cls: str) -> str:
    """Consecutive known values joined; a missing one breaks the line."""
    segments: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            segments.append([])
        else:
            segments[-1].append(f"{frame.x(i):.1f},{frame.y(v):.1f}")
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return "".join(
        f'<polyline class="{cls}" points="{" ".join(s)}" fill="none" stroke="{color}" stroke-width="2"{dashed}/>'
        for s in segments
        if len(s) > 1
    ) + "".join(
        f'<circle class="{cls}" cx="{s[0].split(",")[0]}" cy="{s[0].split(",")[1]}" r="1.5" fill="{color}"/>'
        for s in segments
        if len(s) == 1
    )


def _tooltip(p: ChartPoint) -> str:
    parts = [f"#{p.history_id} {p.time}"]
    if p.weight is not None:
        parts.append(f"weight {p.weight}%")
    parts.append(f"value {num(p.value) if p.value is not None else '-'}")
    parts.append(f"baseline {num(p.baseline) if p.baseline is not None else '-'}")
    if p.bounds:
        parts.append("threshold " + " / ".join(num(b) for b in p.bounds))
    parts.append(f"{p.outcome} ({p.severity})")
    if p.message:
        parts.append(p.message[:MAX_MESSAGE])
    return escape("\n".join(parts))


def _marker(x: float, y: float, mark: str) -> str:
    color = COLORS[mark]
    if mark == "failed":  # a cross: readable without colour
        a, b, c, d = x - 5, x + 5, y - 5, y + 5
        cross = f"M{a:.1f},{c:.1f}L{b:.1f},{d:.1f}M{a:.1f},{d:.1f}L{b:.1f},{c:.1f}"
        return f'<path d="{cross}" stroke="{color}" stroke-width="2.5"/>'

    if mark == "warning":  # a triangle
        return f'<path d="M{x:.1f},{y - 6:.1f}L{x + 6:.1f},{y + 5:.1f}L{x - 6:.1f},{y + 5:.1f}Z" fill="{color}"/>'
    if mark == "inconclusive":  # a hollow circle
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="{color}" stroke-width="2"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"/>'


def metric_chart(chart: MetricChart) -> str:
    """Candidate, baseline and threshold per analysis; each analysis is one ``g.pt`` with its outcome marked."""
    pts = chart.points
    values = _finite(v for p in pts for v in (p.value, p.baseline, *p.bounds))
    frame = _Frame(len(pts), *_range(values))
    label = escape(f"{chart.metric}: candidate, baseline and threshold per analysis")
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{label}" data-metric="{escape(chart.metric)}">',
        *_axes(frame, pts),
    ]
    widest = max((len(p.bounds) for p in pts), default=0)
    for k in range(widest):
        bound = [p.bounds[k] if len(p.bounds) > k else None for p in pts]
        out.append(_polyline(frame, bound, COLORS["threshold"], "2 3", "threshold"))
    out.append(_polyline(frame, [p.baseline for p in pts], COLORS["baseline"], "6 4", "baseline"))
    out.append(_polyline(frame, [p.value for p in pts], COLORS["candidate"], None, "candidate"))
    for i, p in enumerate(pts):
        x = frame.x(i)
        # No value (no data): the marker sits on the axis.
        y = frame.y(p.value) if p.value is not None and math.isfinite(p.value) else HEIGHT - BOTTOM
        out.append(
            f'<g class="pt {p.mark}" data-history-id="{p.history_id}"><title>{_tooltip(p)}</title>'
            f"{_marker(x, y, p.mark)}</g>"
        )
    out.append("</svg>")
    return "".join(out)


def interval_chart(chart: MetricChart) -> str:
    """The judge's estimate and confidence interval per analysis around zero (no effect): the band narrows as
    samples come in, and the judge decides once it clears the bound."""
    pts = chart.points
    values = [*_finite(v for p in pts for v in (p.estimate, p.ci_low, p.ci_high)), 0.0]
    frame = _Frame(len(pts), *_range(values))
    label = escape(f"{chart.metric}: judge estimate and confidence interval per analysis")
    out = [
        f'<svg class="chart ci" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{label}" data-metric="{escape(chart.metric)}">',
        *_axes(frame, pts),
        f'<line x1="{LEFT}" y1="{frame.y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{frame.y(0):.1f}" stroke="#6e7781"'
        ' stroke-dasharray="6 4"/>',
    ]
    for i, p in enumerate(pts):
        if p.ci_low is None or p.ci_high is None:
            continue
        x = frame.x(i)
        lo, hi = frame.y(max(p.ci_low, frame.lo)), frame.y(min(p.ci_high, frame.hi))
        tip = escape(
            f"#{p.history_id} {p.judge}: estimate {num(p.estimate) if p.estimate is not None else '-'}, "
            f"CI [{num(p.ci_low)}, {num(p.ci_high)}], {p.samples if p.samples is not None else '-'} samples"
        )
        color = COLORS[p.mark]
        est = (
            f'<circle cx="{x:.1f}" cy="{frame.y(p.estimate):.1f}" r="3.5" fill="{color}"/>'
            if p.estimate is not None and math.isfinite(p.estimate)
            else ""
        )
        out.append(
            f'<g class="ci-bar" data-history-id="{p.history_id}"><title>{tip}</title>'
            f'<line x1="{x:.1f}" y1="{lo:.1f}" x2="{x:.1f}" y2="{hi:.1f}" stroke="{color}" stroke-width="3"/>'
            f"{est}</g>"
        )
    out.append("</svg>")
    return "".join(out)
