"""The CLI never prints terminal control sequences that came from a status (one sanitizer, every view)."""

from __future__ import annotations

import json

import pytest
from modelratchet.api.rollout import ModelRollout
from modelratchet.cli.render_history import render_json, render_markdown
from modelratchet.cli.render_history import render_table as history_table
from modelratchet.cli.render_report import TimelineEvent, render_report
from modelratchet.cli.render_status import render_detail, render_table, sanitize
from modelratchet.cli.watch import _final
from test_cli_render_status import NOW, analyzing_status, condition, entry, good_metrics, metric, rollout

EVIL = "\x1b]0;evil\x07\x1b[2J"
CHECKPOINT = f"s3://models/v9{EVIL}"


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert "evil" not in text and "[2J" not in text, repr(text)
    assert all(c in "\n\t" or 0x20 <= ord(c) < 0x7F or ord(c) > 0x9F for c in text), repr(text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (EVIL, ""),
        ("a\x1b[31mred\x1b[0m b", "ared b"),
        ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
        ("cr\roverwrite\x08\x7f", "croverwrite"),
        ("c1 \x9b2J csi and \x85 nel", "c1  csi and  nel"),
        ("osc \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end", "osc link end"),
        ("unterminated \x1b]0;title", "unterminated 0;title"),
        ("bidi \u202eevil\u202c", "bidi evil"),
        ("lone esc \x1b", "lone esc "),
        ("plain: accuracy 0.93 \u2265 0.92 \u2026", "plain: accuracy 0.93 \u2265 0.92 \u2026"),
    ],
)
def test_sanitize(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


def _evil_rollout() -> ModelRollout:
    history = [
        entry(
            2,
            "2025-03-04T10:11:00Z",
            [*good_metrics(), metric("loss" + EVIL, 0.5, 0.4, outcome="failed", message="loss: " + EVIL)],
            checkpoint=CHECKPOINT,
            message="1 failed " + EVIL,
            verdict="failed",
        ),
    ]
    status = analyzing_status(
        message=f"analyzing {CHECKPOINT}",
        canary_checkpoint=CHECKPOINT,
        history=history,
        conditions=[condition("Ready", "False", "InvalidQuery", "2025-03-04T09:00:00Z", "parse error " + EVIL)],
    )
    return rollout(status, checkpoint=CHECKPOINT)


def test_every_view_strips_a_hostile_checkpoint_and_messages() -> None:
    ro = _evil_rollout()
    assert ro.status is not None and ro.status.history
    entries = ro.status.history
    events = [TimelineEvent("2025-03-04T10:11:00Z", "Warning", "AnalysisFailed", "x" + EVIL)]
    outputs = {
        "status": render_detail(ro, NOW),
        "status table": render_table([ro], NOW, all_namespaces=True),
        "history": history_table(entries, 5),
        "history markdown": render_markdown(entries, 5, title="t" + EVIL),
        "report": render_report(ro, events, NOW, all_checkpoints=True),
        "watch": _final("r", "failed", ro),
    }
    for name, text in outputs.items():
        _clean(text)
        assert "s3://models/v9" in text or name == "watch", name


def test_json_history_escapes_instead() -> None:
    ro = _evil_rollout()
    assert ro.status is not None and ro.status.history
    text = render_json(ro.status.history)
    assert "\x1b" not in text and "\x07" not in text
    assert json.loads(text)[0]["checkpoint"] == CHECKPOINT, "JSON keeps the data, escaped"
