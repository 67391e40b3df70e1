"""The dashboard's HTML, rendered on the server from the view models. Every string that came from the cluster
goes through ``escape`` (text and attributes alike); the only script is the static file the page names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from .svg import interval_chart, metric_chart
from .views import OverviewRow, RolloutView, StepItem

MAX_TEXT = 2000  # characters of one message shown; a status message can be long, a page must stay bounded


def e(text: object) -> str:
    """Escaped and bounded: for element text and quoted attribute values."""
    s = "" if text is None else str(text)
    if len(s) > MAX_TEXT:
        s = s[:MAX_TEXT] + "…"
    return escape(s, quote=True)


def rollout_href(namespace: str, name: str) -> str:
    return f"/rollouts/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _layout(
    title: str, body: str, *, context: str, live: str | None = None, refresh: tuple[str, str] | None = None
) -> str:
    live_attr = f' data-live="{e(live)}"' if live is not None else ""
    if refresh is not None:  # a rollout page: it reloads its content from this URL once the object moves on
        href, version = refresh
        live_attr += f' data-href="{e(href)}" data-version="{e(version)}"'
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · ModelRatchet</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script>'
        f"</head><body{live_attr}>"
        f'<header><a class="brand" href="/">ModelRatchet</a><span class="context">{e(context)}</span></header>'
        f"<main>{body}</main></body></html>\n"
    )


def _phase(phase: str) -> str:
    return f'<span class="phase phase-{e(phase.lower())}">{e(phase)}</span>'


def _verdict(verdict: str) -> str:
    return f'<span class="verdict verdict-{e(verdict)}">{e(verdict)}</span>'


def _bar(fraction: float | None) -> str:
    if fraction is None:
        return ""
    percent = round(max(0.0, min(fraction, 1.0)) * 100)
    # <progress> draws itself: no inline style needed for its width.
    return f'<progress max="100" value="{percent}">{percent}%</progress>'


def overview_cells(row: OverviewRow) -> str:
    weight = "-" if row.weight is None else f"{row.weight}%"
    return (
        f'<td><a href="{e(rollout_href(row.namespace, row.name))}">{e(row.namespace)}/{e(row.name)}</a></td>'
        f'<td data-field="phase">{_phase(row.phase)}</td>'
        f'<td data-field="step">{_bar(row.step_fraction)} {e(row.step)}</td>'
        f'<td data-field="weight">{e(weight)}</td>'
        f'<td data-field="stable"><code>{e(row.stable)}</code></td>'
        f'<td data-field="candidate"><code>{e(row.candidate)}</code></td>'
        f'<td data-field="last_verdict">{_verdict(row.last_verdict)}</td>'
        f'<td data-field="age">{e(row.age)}</td>'
    )


def overview_page(rows: Sequence[OverviewRow], *, namespace: str | None, context: str, error: str | None) -> str:
    selected = namespace or ""
    form = (
        '<form class="filter" method="get" action="/"><label>Namespace '
        f'<input name="namespace" value="{e(selected)}" placeholder="all namespaces"></label>'
        '<button type="submit">Filter</button></form>'
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("Rollout", "Phase", "Step", "Weight", "Stable", "Candidate", "Last verdict", "Age")
    )
    body = "".join(f'<tr id="{e("row-" + r.key)}" data-key="{e(r.key)}">{overview_cells(r)}</tr>' for r in rows)
    empty = "" if rows else '<p class="empty" id="empty">No ModelRollouts to show.</p>'
    err = f'<p class="error">{e(error)}</p>' if error else ""
    live = "/events?" + urlencode({"namespace": selected}) if selected else "/events"
    html = (
        f"<h1>ModelRollouts</h1>{form}{err}"
        f'<p class="live" id="live-state">live updates: connecting…</p>'
        f'<table id="rollouts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{empty}'
    )
    return _layout("ModelRollouts", html, context=context, live=live)


def _steps(items: Sequence[StepItem]) -> str:
    if not items:
        return ""
    lis = "".join(
        f'<li class="step {i.state}" data-state="{i.state}"><span class="n">{i.index + 1}</span>'
        f'<span class="label">{e(i.label)}</span><span class="w">{i.weight}%</span></li>'
        for i in items
    )
    return f'<section><h2>Steps</h2><ol class="steps">{lis}</ol></section>'


def _actions(view: RolloutView, csrf: str, read_only: bool, href: str) -> str:
    if read_only:
        return ""
    buttons = []
    for action, allowed, what in (
        ("promote", view.can_promote, "skip the current step (pass a manual pause)"),
        ("abort", view.can_abort, "roll the candidate back now"),
        ("retry", view.can_retry, "allow the rejected checkpoint again"),
    ):
        if allowed:
            buttons.append(
                f'<form method="post" action="{e(href)}/{action}">'
                f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                f'<button type="submit" id="{action}" title="{e(what)}">{action.capitalize()}</button></form>'
            )
    if not buttons:
        return ""
    return f'<section class="actions"><h2>Actions</h2>{"".join(buttons)}</section>'


def _chart(chart: Any) -> str:
    ci = ""
    if chart.has_interval:
        ci = "<h4>Judge estimate and confidence interval (0: no difference)</h4>" + interval_chart(chart)
    return (
        f'<figure class="metric" data-metric="{e(chart.metric)}"><figcaption><h3><code>{e(chart.metric)}</code></h3>'
        f'<span class="dir">{e(chart.direction)}</span></figcaption>{metric_chart(chart)}{ci}</figure>'
    )


LEGEND = (
    '<p class="legend"><span class="k candidate">candidate</span><span class="k baseline">baseline</span>'
    '<span class="k threshold">threshold</span> markers: ● passed, ✕ failed, ▲ warning, ○ inconclusive'
    " (hover a point for its numbers)</p>"
)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


@dataclass(frozen=True)
class Extras:
    """What the rollout page shows beside the rollout itself, as the API returned it."""

    conditions: Sequence[Mapping[str, Any]]
    events: Sequence[Mapping[str, Any]]
    baseline_yaml: str | None
    baseline_name: str
    events_note: str | None = None


def rollout_page(
    view: RolloutView,
    extras: Extras,
    *,
    context: str,
    csrf: str,
    read_only: bool,
    notice: tuple[str, str] | None,
    version: str | None = None,
) -> str:
    r = view.row
    href = rollout_href(r.namespace, r.name)
    note = ""
    if notice is not None:
        kind, text = notice
        note = f'<p class="notice {e(kind)}" id="notice" role="status">{e(text)}</p>'
    summary = _table(
        ("", ""),
        [
            ("Phase", _phase(r.phase)),
            ("Candidate", f'<code id="candidate">{e(view.candidate or "-")}</code>'),
            ("Judged against", f"<code>{e(view.judged_against or '-')}</code>"),
            ("Desired (spec)", f"<code>{e(view.desired)}</code>"),
            ("Weight", e("-" if r.weight is None else f"{r.weight}%")),
            ("Last verdict", _verdict(r.last_verdict)),
            ("Message", e(view.message or "-")),
            *([("Pending gate", e(view.pending_gate))] if view.pending_gate else []),
            *([("Rejected", " ".join(f"<code>{e(c)}</code>" for c in view.rejected))] if view.rejected else []),
        ],
        "summary",
    )
    charts = "".join(_chart(c) for c in view.charts) or '<p class="empty">No analyses recorded yet.</p>'
    verdicts = "".join(
        f'<li class="v {e(v.verdict)}"><time>{e(v.time)}</time> #{v.history_id} {_verdict(v.verdict)} '
        f'<span class="stage">{e(v.stage)}{"" if v.step is None else f" step {v.step + 1}"}</span> '
        f'<code>{e(v.checkpoint)}</code><div class="msg">{e(v.message)}</div></li>'
        for v in reversed(view.verdicts)
    )
    conditions = _table(
        ("Type", "Status", "Reason", "Message", "Since"),
        [
            (
                e(c.get("type")),
                e(c.get("status")),
                e(c.get("reason")),
                e(c.get("message")),
                e(c.get("lastTransitionTime")),
            )
            for c in extras.conditions
        ],
        "conditions",
    )
    events = _table(
        ("Time", "Type", "Reason", "Message"),
        [(e(ev.get("time")), e(ev.get("type")), e(ev.get("reason")), e(ev.get("message"))) for ev in extras.events],
        "events",
    )
    events_note = f'<p class="note">{e(extras.events_note)}</p>' if extras.events_note else ""
    baseline = (
        f"<pre>{e(extras.baseline_yaml)}</pre>"
        if extras.baseline_yaml is not None
        else f'<p class="error">ModelBaseline {e(extras.baseline_name)} not found</p>'
    )
    body = (
        f"<h1>{e(r.namespace)}/{e(r.name)} {_phase(r.phase)}</h1>{note}"
        '<p class="live" id="live-state">live updates: connecting…</p>'
        f'<div class="cols"><div class="main">{summary}{_actions(view, csrf, read_only, href)}{_steps(view.steps)}'
        f"<section><h2>Metrics per analysis</h2>{LEGEND}{charts}</section>"
        f'<section><h2>Verdicts</h2><ol class="verdicts" reversed>{verdicts}</ol></section>'
        f"<section><h2>Conditions</h2>{conditions}</section>"
        f"<section><h2>Recent Events</h2>{events}{events_note}</section></div>"
        f"<aside><h2>ModelBaseline <code>{e(extras.baseline_name)}</code></h2>{baseline}</aside></div>"
    )
    live = "/events?" + urlencode({"namespace": r.namespace, "name": r.name})
    refresh = None if version is None else (href, version)
    return _layout(f"{r.namespace}/{r.name}", body, context=context, live=live, refresh=refresh)


def error_page(status: int, message: str, *, context: str) -> str:
    return _layout(f"Error {status}", f'<h1>Error {status}</h1><p class="error">{e(message)}</p>', context=context)
