"""The ``modelratchet report`` Markdown: one rollout, fit for a pull request or an incident. Pure."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from modelratchet.api.rollout import HistoryEntry, MetricResult, ModelRollout
from modelratchet.gates.format import num, pair, signed

from .render_history import md, stage_label
from .render_status import (
    describe_step,
    desired_checkpoint,
    human_duration,
    parse_time,
    progress,
    registry_lines,
    rfc3339,
    running,
    sanitize,
    status_of,
    step_label,
    training_lines,
    watching,
)


@dataclass(frozen=True)
class TimelineEvent:
    """One line of the timeline: a Kubernetes Event or a condition transition."""

    time: str
    source: str  # Normal / Warning (Events) or condition
    reason: str
    message: str
    count: int = 1


def subject(ro: ModelRollout) -> tuple[str | None, str | None]:
    """(the candidate of the latest rollout, the stable checkpoint it was judged against)."""
    s = status_of(ro)
    if s.canary_checkpoint:
        return s.canary_checkpoint, s.stable_checkpoint
    if s.phase == "Promoted":
        return s.stable_checkpoint, s.previous_checkpoint
    if s.phase == "RolledBack" and s.rejected_checkpoints:
        return s.rejected_checkpoints[0], s.stable_checkpoint
    return desired_checkpoint(ro), s.stable_checkpoint


_HEADLINE = {
    "Promoted": "Promoted",
    "RolledBack": "Rolled back",
    "Progressing": "In progress",
    "Paused": "Paused",
    "Failed": "Failed",
    "Idle": "Idle",
}


def _code(text: str | None) -> str:
    return "-" if not text else f"`{md(text)}`"


def _counts(entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return "none"
    c = Counter(e.verdict for e in entries)
    parts = [f"{c[v]} {v}" for v in ("passed", "warning", "failed", "inconclusive") if c[v]]
    return f"{len(entries)}: " + ", ".join(parts)


def _summary(ro: ModelRollout, entries: Sequence[HistoryEntry], now: datetime) -> list[str]:
    s = status_of(ro)
    candidate, stable = subject(ro)
    rows: list[tuple[str, str]] = [
        ("Target", f"Deployment {_code(ro.spec.target_ref.name)}"),
        ("Baseline", f"ModelBaseline {_code(ro.spec.baseline_ref.name)}"),
        ("Candidate", _code(candidate)),
        ("Stable (judged against)", _code(stable)),
        ("Phase", s.phase or "not reconciled yet"),
    ]
    if running(ro):
        rows.append(("Step", md(step_label(ro.spec.steps, s.current_step))))
    p = progress(ro, now)
    if p is not None:
        percent = "" if p.fraction is None else f"{math.floor(min(p.fraction, 1.0) * 100 + 1e-9)}%: "
        rows.append(("Progress", md(percent + p.label)))
    # A finished rollout's message is its outcome; a running one's says what it is doing.
    rows.append(("Outcome" if s.phase in ("Promoted", "RolledBack", "Failed") else "Message", md(s.message or "-")))
    start = parse_time(s.rollout_started_at)
    end = parse_time(s.promoted_at if s.phase == "Promoted" else s.rolled_back_at if s.phase == "RolledBack" else None)
    if start:
        rows.append(("Started", rfc3339(start)))
    if start and end and end >= start:
        rows.append(("Ended", f"{rfc3339(end)} (after {human_duration((end - start).total_seconds())})"))
    if watching(ro) and s.post_promotion_until:
        rows.append(("Post-promotion watch", f"until {s.post_promotion_until}"))
    rows.append(("Analyses", _counts(entries)))
    if s.rejected_checkpoints:
        rows.append(("Rejected checkpoints", ", ".join(_code(c) for c in s.rejected_checkpoints)))
    gate = s.gate
    if gate is not None:
        who, at = gate.requested_by or "unknown", gate.requested_at or "-"
        rows.append(("Pending gate", f"{gate.action} of {_code(gate.checkpoint)} by {who} at {at}"))
    # The registry version and its aliases, pending verdict writes, suspended training (spec.source, onRollback).
    rows += [(k, md(v)) for k, v in registry_lines(ro) + training_lines(ro)]
    return ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]


def _timeline(ro: ModelRollout, events: Sequence[TimelineEvent]) -> list[TimelineEvent]:
    items = list(events)
    for c in status_of(ro).conditions or []:
        items.append(TimelineEvent(c.last_transition_time, "condition", f"{c.type}={c.status} ({c.reason})", c.message))
    # Unreadable times sort first rather than failing the report.
    return sorted(items, key=lambda e: (parse_time(e.time) is not None, e.time))


def _steps(ro: ModelRollout) -> list[str]:
    s = status_of(ro)
    n = len(ro.spec.steps)
    if not running(ro) or s.current_step is None:
        return [
            "| Step | Action |",
            "| ---: | --- |",
            *(f"| {i + 1}/{n} | {describe_step(st)} |" for i, st in enumerate(ro.spec.steps)),
        ]
    current = s.current_step
    lines = ["| Step | Action | State |", "| ---: | --- | --- |"]
    for i, step in enumerate(ro.spec.steps):
        state = "done" if i < current else "**current**" if i == current else "pending"
        lines.append(f"| {i + 1}/{n} | {describe_step(step)} | {state} |")
    return lines


def _fenced(text: str, lang: str) -> list[str]:
    """A code block whose fence is longer than any backtick run inside: cluster text cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", text.rstrip("\n"), fence]


def threshold_text(m: MetricResult) -> str:
    t = m.threshold
    if t is None:
        return "-"
    if t.value is None:
        return t.type
    return f"{t.type} {'±' if t.symmetric else ''}{num(t.value)}"


def _outcome_cell(m: MetricResult) -> str:
    if m.outcome == "passed":
        return "passed"
    if m.outcome == "failed":
        return f"**failed** ({m.severity})"
    return "*inconclusive*"


def _values(m: MetricResult) -> tuple[str, str]:
    if m.value is not None and m.baseline is not None:
        return pair(m.value, m.baseline)
    return ("-" if m.value is None else num(m.value), "-" if m.baseline is None else num(m.baseline))


def _detail(m: MetricResult) -> str:
    prefix = f"{m.metric}: "
    return m.message[len(prefix) :] if m.message.startswith(prefix) else m.message


def _metric_table(name: str, rows: list[tuple[HistoryEntry, MetricResult]], steps: int, checkpoints: bool) -> list[str]:
    judged = any(m.judge is not None for _, m in rows)
    headers = ["#", "Time", *(["Checkpoint"] if checkpoints else []), "Step", "Value", "Baseline", "Delta"]
    headers += ["Threshold", "Outcome"]
    if judged:
        headers += ["Judge", "Estimate", "CI", "Samples"]
    headers.append("Detail")
    right = {"#", "Value", "Baseline", "Delta", "Estimate", "Samples"}
    lines = [f"#### `{md(name)}`", "", "| " + " | ".join(headers) + " |"]
    lines.append("| " + " | ".join("---:" if h in right else "---" for h in headers) + " |")
    for e, m in rows:
        value, baseline = _values(m)
        cells = [str(e.id), e.time, *([_code(e.checkpoint)] if checkpoints else []), stage_label(e, steps)]
        cells += [value, baseline, "-" if m.delta is None else signed(m.delta), threshold_text(m), _outcome_cell(m)]
        if judged:
            j = m.judge
            if j is None:
                cells += ["-", "-", "-", "-"]
            else:
                ci = "-" if j.ci_low is None or j.ci_high is None else f"[{num(j.ci_low)}, {num(j.ci_high)}]"
                samples = "-" if j.samples is None else str(j.samples)
                if j.expected_more:
                    samples += f" (+{j.expected_more} needed)"
                cells += [j.judge, "-" if j.estimate is None else signed(j.estimate), ci, samples]
        cells.append(md(_detail(m)) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def select_entries(ro: ModelRollout, all_checkpoints: bool = False) -> list[HistoryEntry]:
    """The analyses the report covers, oldest first: those of the candidate, or every one kept."""
    entries = list(reversed(status_of(ro).history or []))
    if all_checkpoints:
        return entries
    candidate, _ = subject(ro)
    return [e for e in entries if e.checkpoint == candidate]


def render_report(
    ro: ModelRollout,
    events: Sequence[TimelineEvent],
    now: datetime,
    *,
    all_checkpoints: bool = False,
    events_note: str | None = None,
    baseline_yaml: str | None = None,
) -> str:
    """``baseline_yaml``: the ModelBaseline's definition, shown at the end (None: not shown)."""
    s = status_of(ro)
    name = f"{ro.metadata.get('namespace', '-')}/{ro.metadata.get('name', '-')}"
    candidate, stable = subject(ro)
    entries = select_entries(ro, all_checkpoints)
    steps = len(ro.spec.steps)
    headline = _HEADLINE.get(s.phase or "", "Not reconciled yet")
    out = [
        f"## ModelRollout `{md(name)}`: **{headline}**",
        "",
        f"Candidate {_code(candidate)} against stable {_code(stable)} on Deployment {_code(ro.spec.target_ref.name)}.",
        "",
        *_summary(ro, entries, now),
        "",
        "### Timeline",
        "",
    ]
    timeline = _timeline(ro, events)
    if timeline:
        out += ["| Time | Source | Reason | Message |", "| --- | --- | --- | --- |"]
        for ev in timeline:
            count = f" (x{ev.count})" if ev.count > 1 else ""
            out.append(f"| {ev.time} | {ev.source} | {md(ev.reason)}{count} | {md(ev.message) or '-'} |")
    else:
        out.append("No events or conditions recorded.")
    if events_note:
        out += ["", f"_{md(events_note)}_"]
    out += ["", "### Steps", "", *_steps(ro), "", "### Analyses", ""]
    several = len({e.checkpoint for e in entries}) > 1
    if not entries:
        scope = "" if all_checkpoints else f" of {_code(candidate)}"
        out.append(f"No analyses recorded{scope}.")
    else:
        out += [
            "| # | Time | " + ("Checkpoint | " if several else "") + "Step | Verdict | Summary |",
            "| ---: | --- | " + ("--- | " if several else "") + "--- | --- | --- |",
        ]
        for e in entries:
            verdict = e.verdict if e.verdict == "passed" else f"**{e.verdict}**"
            cp = f"{_code(e.checkpoint)} | " if several else ""
            out.append(f"| {e.id} | {e.time} | {cp}{stage_label(e, steps)} | {verdict} | {md(e.message) or '-'} |")
        out += ["", "### Metrics over time", ""]
        by_metric: dict[str, list[tuple[HistoryEntry, MetricResult]]] = {}
        for e in entries:
            for m in e.metrics:
                by_metric.setdefault(m.metric, []).append((e, m))
        for metric, rows in by_metric.items():
            out += [*_metric_table(metric, rows, steps, several), ""]
        out.pop()
    if baseline_yaml is not None:
        out += ["", f"### ModelBaseline {_code(ro.spec.baseline_ref.name)}", "", *_fenced(baseline_yaml, "yaml")]
    out += ["", f"_Generated by `modelratchet report` at {rfc3339(now)}._"]
    return sanitize("\n".join(out) + "\n")
