"""Dashboard HTML and SVG: one chart per metric with one point per analysis, cluster strings escaped
everywhere, actions only when allowed, and no inline script."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from modelratchet.dashboard import pages
from modelratchet.dashboard.svg import interval_chart, metric_chart
from modelratchet.dashboard.views import overview_row, rollout_view
from test_cli_render_report import rolled_back
from test_cli_render_status import NOW, analyzing_status, entry, good_metrics, rollout

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
SVG = "{http://www.w3.org/2000/svg}"


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def extras() -> pages.Extras:
    return pages.Extras(
        conditions=[{"type": "Ready", "status": "False", "reason": "X", "message": EVIL, "lastTransitionTime": "t"}],
        events=[{"time": "t", "type": "Warning", "reason": EVIL, "message": EVIL}],
        baseline_yaml=f"spec:\n  model: '{EVIL}'\n",
        baseline_name=EVIL,
    )


def evil_rollout() -> object:
    history = [entry(i, f"2025-03-04T10:1{i}:00Z", good_metrics(), checkpoint=EVIL, message=EVIL) for i in (3, 2, 1)]
    status = analyzing_status(canary_checkpoint=EVIL, stable_checkpoint=EVIL, message=EVIL, history=history)
    return rollout(status, checkpoint=EVIL, name="fraud-detector")


def test_every_cluster_string_is_text_not_markup() -> None:
    ro = evil_rollout()
    view = rollout_view(ro, NOW)  # type: ignore[arg-type]
    html = pages.rollout_page(view, extras(), context=EVIL, csrf="tok", read_only=False, notice=("ok", EVIL))
    found = tags(html)
    assert [t for t, _ in found if t == "script"] == [("script")], "only the page's own script tag"
    assert not [t for t, _ in found if t == "img"]
    assert all(not any(k.startswith("on") for k in a) for _, a in found), "no event handler attributes"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    overview = pages.overview_page([overview_row(ro, NOW)], namespace=EVIL, context=EVIL, error=EVIL)  # type: ignore[arg-type]
    found = tags(overview)
    assert [t for t, _ in found if t in ("script", "img")] == ["script"]
    assert next(a for t, a in found if t == "input")["value"] == EVIL  # an attribute value, still quoted


def test_page_scripts_come_only_from_the_static_file() -> None:
    html = pages.rollout_page(rollout_view(rolled_back(), NOW), extras(), context="c", csrf="t", read_only=True,
                              notice=None)
    scripts = [a for t, a in tags(html) if t == "script"]
    assert scripts == [{"src": "/static/dashboard.js", "defer": None}]
    assert not re.search(r"<script>[^<]", html)


def test_one_chart_per_metric_with_one_point_per_analysis_and_valid_svg() -> None:
    view = rollout_view(rolled_back(), NOW)
    for chart in view.charts:
        svg = ET.fromstring(metric_chart(chart))
        points = svg.findall(f"{SVG}g")
        assert [p.get("data-history-id") for p in points] == ["2", "3", "4"]
        assert points[-1].get("class") == ("pt failed" if chart.metric in ("accuracy", "elo") else "pt ok")
        assert svg.findall(f".//{SVG}polyline[@class='baseline']"), "the baseline is drawn"
    html = pages.rollout_page(view, extras(), context="c", csrf="t", read_only=True, notice=None)
    assert html.count('<svg class="chart"') == len(view.charts) == 3


def test_svg_escapes_metric_names_and_messages() -> None:
    ro = evil_rollout()
    view = rollout_view(ro, NOW)  # type: ignore[arg-type]
    points = [p.__class__(**{**p.__dict__, "message": EVIL}) for p in view.charts[0].points]
    chart = view.charts[0].__class__(EVIL, "higherIsBetter", points)
    svg = ET.fromstring(metric_chart(chart))  # parses: nothing broke out of an attribute or a <title>
    assert svg.get("data-metric") == EVIL
    assert not svg.findall(f".//{SVG}script")
    assert EVIL in (svg.find(f".//{SVG}title").text or "")  # type: ignore[union-attr]


def test_interval_chart_draws_a_bar_per_judged_analysis() -> None:
    from modelratchet.api.rollout import JudgeFigures
    from test_cli_render_status import metric

    looks = [(1, -0.05, 0.04), (2, -0.03, 0.02), (3, -0.02, -0.005)]
    history = [
        entry(i, f"2025-03-04T10:1{i}:00Z",
              [metric("rate", 0.9, 0.91, judge=JudgeFigures(judge="sequential", estimate=(lo + hi) / 2, ci_low=lo,
                                                            ci_high=hi, samples=100 * i))])
        for i, lo, hi in reversed(looks)
    ]
    view = rollout_view(rollout(analyzing_status(history=history)), NOW)
    svg = ET.fromstring(interval_chart(view.charts[0]))
    bars = svg.findall(f"{SVG}g")
    assert [b.get("data-history-id") for b in bars] == ["1", "2", "3"]
    lengths = []
    for b in bars:
        line = b.find(f"{SVG}line")
        assert line is not None
        lengths.append(abs(float(line.get("y2", 0)) - float(line.get("y1", 0))))
    assert lengths[0] > lengths[1] > lengths[2], "the band narrows as the judge gathers samples"


def test_actions_need_a_running_rollout_and_write_access() -> None:
    paused = rollout_view(rollout(analyzing_status(phase="Paused", current_step=3)), NOW)
    html = pages.rollout_page(paused, extras(), context="c", csrf="tok123", read_only=False, notice=None)
    forms = [a for t, a in tags(html) if t == "form"]
    assert [f["action"] for f in forms] == [
        "/rollouts/ml-prod/fraud-detector/promote",
        "/rollouts/ml-prod/fraud-detector/abort",
    ]
    assert all(f["method"] == "post" for f in forms)
    assert [a["value"] for t, a in tags(html) if t == "input" and a.get("name") == "csrf"] == ["tok123", "tok123"]
    hidden = pages.rollout_page(paused, extras(), context="c", csrf="tok123", read_only=True, notice=None)
    assert not [t for t, _ in tags(hidden) if t == "form"]


def test_the_report_carries_the_baseline_definition_in_a_fence_it_cannot_close() -> None:
    from modelratchet.cli.render_report import render_report

    definition = "spec:\n  model: digits\n  description: '```\n# not a heading'\n"
    text = render_report(rolled_back(), [], NOW, baseline_yaml=definition)
    lines = text.splitlines()
    start = lines.index("### ModelBaseline `fraud-detector`")
    assert lines[start + 2] == "````yaml", "the fence is longer than any backtick run inside"
    assert lines[start + 3 : start + 7] == definition.rstrip("\n").splitlines()
    assert lines[start + 7] == "````"
    assert "### ModelBaseline" not in render_report(rolled_back(), [], NOW)


def test_a_rollout_page_follows_its_own_object() -> None:
    view = rollout_view(rolled_back(), NOW)
    html = pages.rollout_page(view, extras(), context="c", csrf="t", read_only=True, notice=None, version="42")
    body = next(a for t, a in tags(html) if t == "body")
    assert body["data-live"] == "/events?namespace=ml-prod&name=fraud-detector"
    assert (body["data-href"], body["data-version"]) == ("/rollouts/ml-prod/fraud-detector", "42")
    overview = pages.overview_page([], namespace="ml-prod", context="c", error=None)
    body = next(a for t, a in tags(overview) if t == "body")
    assert body["data-live"] == "/events?namespace=ml-prod" and "data-version" not in body
