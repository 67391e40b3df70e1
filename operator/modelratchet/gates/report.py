"""Render a ValidationResult as JSON, a terminal table or a pull-request Markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelratchet.api.rollout import MetricResult

from .format import num, signed

if TYPE_CHECKING:
    from .engine import ValidationResult


def result_json(r: MetricResult) -> dict[str, Any]:
    """One check; the keys are always present (null when unknown), ``judge`` only when one ran."""
    out: dict[str, Any] = {
        "metric": r.metric,
        "value": r.value,
        "baseline": r.baseline,
        "delta": r.delta,
        "classification": r.classification,
        "outcome": r.outcome,
        "severity": r.severity,
        "threshold": None
        if r.threshold is None
        else {"type": r.threshold.type, "value": r.threshold.value, "symmetric": bool(r.threshold.symmetric)},
        "message": r.message,
    }
    if r.judge is not None:
        out["judge"] = r.judge.model_dump(by_alias=True)
    return out


def to_json(result: ValidationResult) -> dict[str, Any]:
    return {
        "model": result.model,
        "status": result.status,
        "results": [result_json(r) for r in result.results],
        "summary": result.summary,
    }


def _headline(result: ValidationResult) -> str:
    status = result.status.upper()
    if result.verdict == "inconclusive":
        return f"{status} (inconclusive: a check without data counts as failing)"
    return status


def _detail(r: MetricResult) -> str:
    """The message without its leading metric name (the table already has a column for it)."""
    prefix = f"{r.metric}: "
    return r.message[len(prefix) :] if r.message.startswith(prefix) else r.message


def _row(r: MetricResult) -> list[str]:
    def opt(x: float | None) -> str:
        return "-" if x is None else num(x)

    return [
        r.metric,
        opt(r.value),
        opt(r.baseline),
        "-" if r.delta is None else signed(r.delta),
        r.classification or "-",
        r.outcome,
        r.severity,
        _detail(r),
    ]


_HEADERS = ["METRIC", "VALUE", "BASELINE", "DELTA", "CHANGE", "OUTCOME", "SEVERITY", "DETAIL"]


def render_text(result: ValidationResult, ignored: Sequence[str] = ()) -> str:
    """A plain table for a terminal or a CI log."""
    rows = [_HEADERS, *(_row(r) for r in result.results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS) - 1)]
    lines = [f"ModelBaseline {result.model}: {_headline(result)}", f"  {result.summary}", ""]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    if ignored:
        lines += ["", f"ignored (not in the baseline): {', '.join(sorted(ignored))}"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: ValidationResult, ignored: Sequence[str] = ()) -> str:
    """A table for a pull-request comment."""
    lines = [
        f"### ModelRatchet check: `{result.model}` — **{_headline(result)}**",
        "",
        result.summary,
        "",
        "| Metric | Value | Baseline | Delta | Change | Outcome | Severity | Detail |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for r in result.results:
        cells = _row(r)
        cells[0] = f"`{cells[0]}`"
        if r.outcome != "passed":
            cells[5] = f"**{cells[5]}**"
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    if ignored:
        lines += ["", "Ignored (not in the baseline): " + ", ".join(f"`{n}`" for n in sorted(ignored))]
    return "\n".join(lines) + "\n"
