"""`modelratchet history` rendering: compact metrics, the terminal table, JSON and Markdown."""

from __future__ import annotations

import json

import pytest
from modelratchet.api.rollout import HistoryEntry, MetricResult
from modelratchet.cli.render_history import (
    metric_brief,
    render_json,
    render_markdown,
    render_table,
    stage_label,
)
from test_cli_render_status import V42, V43, bad_metrics, entry, good_metrics, metric


def history() -> list[HistoryEntry]:
    """Newest first, as status.history keeps it: two passes at step 2/5, then a failure at step 5/5."""
    return [
        entry(3, "2025-03-04T10:31:00Z", bad_metrics(), verdict="failed", step=4,
              message="1 passed, 2 failed (accuracy, elo), 0 inconclusive"),
        entry(2, "2025-03-04T10:11:00Z", good_metrics()),
        entry(1, "2025-03-04T10:10:30Z", good_metrics()),
    ]


@pytest.mark.parametrize(
    ("m", "text"),
    [
        (metric("accuracy", 0.93, 0.92), "accuracy 0.93 vs 0.92 ok"),
        # Side by side with the same decimals, so 0.915 vs 0.92 does not read as 0.915 vs 0.92x.
        (metric("accuracy", 0.915, 0.92), "accuracy 0.915 vs 0.920 ok"),
        (metric("elo", 1450.0, 1485.0, outcome="failed"), "elo 1450 vs 1485 FAIL"),
        (metric("p99_ms", 212.0, 180.0, outcome="failed", severity="warning"), "p99_ms 212 vs 180 WARN"),
        (metric("drift", 0.2, 0.1, outcome="failed", severity="info"), "drift 0.2 vs 0.1 info"),
        (metric("eval_loss", 0.43, None, threshold=("max", 0.5)), "eval_loss 0.43 ok"),
        (metric("accuracy", None, 0.92, outcome="inconclusive"), "accuracy no data vs 0.92 inconclusive"),
        (metric("accuracy", None, None, outcome="inconclusive"), "accuracy no data inconclusive"),
    ],
)
def test_metric_brief(m: MetricResult, text: str) -> None:
    assert metric_brief(m) == text


def test_stage_labels() -> None:
    assert stage_label(entry(1, "t", [], step=0), 5) == "canary 1/5"
    assert stage_label(entry(1, "t", [], step=0), None) == "canary 1"
    assert stage_label(entry(1, "t", [], step=None, stage="postPromotion"), 5) == "post-promotion"


def test_table() -> None:
    assert render_table(history(), 5) == (
        "TIME                   ID   CHECKPOINT              STEP         VERDICT   METRICS\n"
        "2025-03-04T10:31:00Z   3    s3://models/fraud/v43   canary 5/5   failed    "
        "eval_loss 0.47 vs 0.45 ok; accuracy 0.87 vs 0.92 FAIL; elo 1450 vs 1485 FAIL\n"
        "2025-03-04T10:11:00Z   2    s3://models/fraud/v43   canary 2/5   passed    "
        "eval_loss 0.43 vs 0.45 ok; accuracy 0.93 vs 0.92 ok; elo 1490 vs 1485 ok\n"
        "2025-03-04T10:10:30Z   1    s3://models/fraud/v43   canary 2/5   passed    "
        "eval_loss 0.43 vs 0.45 ok; accuracy 0.93 vs 0.92 ok; elo 1490 vs 1485 ok\n"
    )


def test_table_of_post_promotion_analyses_and_an_entry_without_metrics() -> None:
    entries = [
        entry(9, "2025-03-04T11:00:00Z", [], verdict="inconclusive", step=None, stage="postPromotion",
              checkpoint=V43),
        entry(8, "2025-03-04T10:59:30Z", good_metrics()[:1], step=None, stage="postPromotion", checkpoint=V43),
    ]
    lines = render_table(entries, 5).splitlines()
    assert lines[1].split() == ["2025-03-04T11:00:00Z", "9", V43, "post-promotion", "inconclusive", "-"]
    assert lines[2].endswith("post-promotion   passed         eval_loss 0.43 vs 0.45 ok")


def test_empty_history() -> None:
    assert render_table([], 5) == "No analyses recorded.\n"
    assert render_markdown([], 5) == "No analyses recorded.\n"
    assert render_json([]) == "[]\n"


def test_json_is_the_stored_entries() -> None:
    data = json.loads(render_json(history()))
    assert [e["id"] for e in data] == [3, 2, 1]
    assert data[0] == history()[0].wire()
    assert data[0]["metrics"][1] == {
        "metric": "accuracy",
        "value": 0.87,
        "baseline": 0.92,
        "delta": -0.05,
        "classification": "regressed",
        "outcome": "failed",
        "severity": "critical",
        "threshold": {"type": "ratio", "value": 0.05},
        "message": "accuracy: 0.87 is 5.4% below baseline 0.92, more than 5% (ratio)",
    }


def test_markdown_table_shape() -> None:
    entries = [*history(), entry(0, "2025-03-04T10:00:00Z", good_metrics(), checkpoint=V42)]
    text = render_markdown(entries, 5, title="Analyses of ModelRollout `ml-prod/fraud-detector`")
    lines = text.splitlines()
    assert lines[:4] == [
        "### Analyses of ModelRollout `ml-prod/fraud-detector`",
        "",
        "| Time | # | Checkpoint | Step | Verdict | Metrics |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    rows = lines[4:]
    assert len(rows) == 4
    assert rows[0] == (
        "| 2025-03-04T10:31:00Z | 3 | `s3://models/fraud/v43` | canary 5/5 | **failed** | "
        "eval_loss 0.47 vs 0.45 ok<br>accuracy 0.87 vs 0.92 FAIL<br>elo 1450 vs 1485 FAIL |"
    )
    assert rows[1].split(" | ")[4] == "passed"  # only verdicts that are not a pass are bold
    for row in rows:
        assert row.startswith("| ") and row.endswith(" |")
        assert row.replace("\\|", "").count("|") == 7  # 6 cells


def test_markdown_escapes_pipes_in_cells() -> None:
    m = metric("f1|macro", 0.8, 0.81)
    text = render_markdown([entry(1, "2025-03-04T10:00:00Z", [m])], 5)
    assert "f1\\|macro 0.80 vs 0.81 ok" in text
    assert text.splitlines()[-1].replace("\\|", "").count("|") == 7
