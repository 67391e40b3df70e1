"""The ``modelratchet history`` views: a terminal table, JSON and Markdown. Pure: entries in, text out."""

from __future__ import annotations

import json
from collections.abc import Sequence

from modelratchet.api.rollout import HistoryEntry, MetricResult
from modelratchet.gates.format import num, pair

from .render_status import sanitize, table

# One word per check outcome; a failed check reads by the severity it carries.
_FAILED_MARK = {"critical": "FAIL", "warning": "WARN", "info": "info"}


def outcome_mark(m: MetricResult) -> str:
    if m.outcome == "passed":
        return "ok"
    if m.outcome == "failed":
        return _FAILED_MARK.get(m.severity, "FAIL")
    return "inconclusive"


def value_vs_baseline(m: MetricResult) -> str:
    """``0.9100 vs 0.9200``: both sides with the same decimals, distinct whenever the numbers differ."""
    if m.value is None:
        return "no data" if m.baseline is None else f"no data vs {num(m.baseline)}"
    if m.baseline is None:
        return num(m.value)
    v, b = pair(m.value, m.baseline)
    return f"{v} vs {b}"


def metric_brief(m: MetricResult) -> str:
    return f"{m.metric} {value_vs_baseline(m)} {outcome_mark(m)}"


def stage_label(entry: HistoryEntry, steps: int | None) -> str:
    """``canary 2/5`` (1-based) or ``post-promotion``."""
    if entry.stage == "postPromotion":
        return "post-promotion"
    if entry.step is None:
        return "canary"
    return f"canary {entry.step + 1}/{steps}" if steps else f"canary {entry.step + 1}"


def render_table(entries: Sequence[HistoryEntry], steps: int | None = None) -> str:
    """Newest first, as stored; one line per analysis with every metric in compact form."""
    if not entries:
        return "No analyses recorded.\n"
    rows = [
        [
            e.time,
            str(e.id),
            e.checkpoint,
            stage_label(e, steps),
            e.verdict,
            "; ".join(metric_brief(m) for m in e.metrics) or "-",
        ]
        for e in entries
    ]
    return table(["TIME", "ID", "CHECKPOINT", "STEP", "VERDICT", "METRICS"], rows)


def render_json(entries: Sequence[HistoryEntry]) -> str:
    """The entries as stored in status.history (camelCase), newest first.

    JSON escapes every control character (``\\u001b``), so this needs no sanitizing.
    """
    return json.dumps([e.wire() for e in entries], indent=2) + "\n"


def md(text: str) -> str:
    """Escape a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(entries: Sequence[HistoryEntry], steps: int | None = None, title: str | None = None) -> str:
    lines = [f"### {title}", ""] if title else []
    if not entries:
        return "\n".join([*lines, "No analyses recorded."]) + "\n"
    lines += ["| Time | # | Checkpoint | Step | Verdict | Metrics |", "| --- | ---: | --- | --- | --- | --- |"]
    for e in entries:
        verdict = e.verdict if e.verdict == "passed" else f"**{e.verdict}**"
        metrics = "<br>".join(md(metric_brief(m)) for m in e.metrics) or "-"
        cells = [e.time, str(e.id), f"`{md(e.checkpoint)}`", stage_label(e, steps), verdict, metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return sanitize("\n".join(lines) + "\n")
