"""bound_status: messages capped, the oldest history dropped until the status fits, ids never reused."""

from __future__ import annotations

from modelratchet.api.common import Condition
from modelratchet.api.rollout import (
    GateRequest,
    HistoryEntry,
    JudgeFigures,
    MetricResult,
    ModelRolloutStatus,
)
from modelratchet.rollout.bounds import MAX_MESSAGE, MAX_STATUS_BYTES, bound_status, cap

BIG = 64 * 1024


def _size(status: ModelRolloutStatus) -> int:
    return len(status.model_dump_json(by_alias=True, exclude_none=True).encode())


def _metric(message: str = "ok", judge: str | None = None) -> MetricResult:
    return MetricResult(
        metric="accuracy",
        value=0.9,
        baseline=0.91,
        outcome="passed",
        severity="critical",
        message=message,
        judge=JudgeFigures(judge=judge) if judge is not None else None,
    )


def _history(n: int, message: str, metric_message: str = "ok") -> list[HistoryEntry]:
    """n entries, newest first, ids n..1."""
    return [
        HistoryEntry(
            id=i,
            time="2026-01-01T00:00:00Z",
            checkpoint=f"s3://models/v{i}",
            step=1,
            verdict="passed",
            message=message,
            metrics=[_metric(metric_message)],
        )
        for i in range(n, 0, -1)
    ]


def _condition(message: str) -> Condition:
    return Condition(
        type="Ready", status="True", reason="Ok", message=message, last_transition_time="2026-01-01T00:00:00Z"
    )


def test_fifty_entries_of_64_kib_messages_fit() -> None:
    status = ModelRolloutStatus(
        phase="Progressing",
        message="m" * BIG,
        last_history_id=50,
        conditions=[_condition("c" * BIG)],
        history=_history(50, "h" * BIG, "x" * BIG),
    )
    assert _size(status) > 50 * BIG  # over 6 MB as the analyses wrote it
    out = bound_status(status)
    assert _size(out) <= MAX_STATUS_BYTES
    assert out.message is not None and len(out.message) == MAX_MESSAGE and out.message.endswith("\u2026")
    assert out.conditions is not None and len(out.conditions[0].message) == MAX_MESSAGE
    assert out.history is not None and out.history
    assert all(len(e.message) <= MAX_MESSAGE for e in out.history)
    assert all(len(m.message) <= MAX_MESSAGE for e in out.history for m in e.metrics)
    assert out.history[0].id == 50, "the newest entry stays"
    assert out.last_history_id == 50
    # Capped entries are small, so all 50 still fit: nothing was dropped that did not have to be.
    assert [e.id for e in out.history] == list(range(50, 0, -1))
    # The input is left as it was.
    assert status.message == "m" * BIG and len(status.history or []) == 50


def test_oldest_entries_go_first_until_it_fits() -> None:
    status = ModelRolloutStatus(last_history_id=120, history=_history(120, "h" * 900, "x" * 900))
    out = bound_status(status, max_bytes=32 * 1024)
    assert out.history is not None
    ids = [e.id for e in out.history]
    assert 1 < len(ids) < 120
    assert ids == list(range(120, 120 - len(ids), -1)), "a contiguous run of the newest entries"
    assert _size(out) <= 32 * 1024
    # Greedy and exact: one more entry would not have fitted.
    one_more = out.model_copy(update={"history": (status.history or [])[: len(ids) + 1]})
    assert _size(one_more) > 32 * 1024
    assert out.last_history_id == 120, "ids of dropped entries are never handed out again"


def test_the_newest_entry_is_kept_even_when_it_alone_is_too_big() -> None:
    entry = _history(1, "h")[0]
    entry.metrics = [_metric("x" * 1000) for _ in range(100)]
    status = ModelRolloutStatus(last_history_id=7, history=[entry, *_history(3, "h")])
    out = bound_status(status, max_bytes=10 * 1024)
    assert out.history is not None and [e.id for e in out.history] == [1]
    assert out.last_history_id == 7


def test_judge_and_gate_strings_are_capped() -> None:
    entry = _history(1, "h")[0]
    entry.metrics = [_metric("m", judge="j" * 5000)]
    status = ModelRolloutStatus(
        history=[entry], gate=GateRequest(action="promote", reason="r" * 5000), last_history_id=1
    )
    out = bound_status(status, max_message=100)
    assert out.history is not None and out.history[0].metrics[0].judge is not None
    assert len(out.history[0].metrics[0].judge.judge) == 100
    assert out.gate is not None and out.gate.reason is not None and len(out.gate.reason) == 100


def test_a_small_status_is_unchanged_and_bounding_is_idempotent() -> None:
    status = ModelRolloutStatus(
        phase="Promoted", message="promoted v2", conditions=[_condition("fine")], history=_history(5, "passed")
    )
    out = bound_status(status)
    assert out == status
    big = ModelRolloutStatus(history=_history(80, "h" * 2000, "x" * 2000), last_history_id=80)
    once = bound_status(big, max_bytes=64 * 1024)
    assert bound_status(once, max_bytes=64 * 1024) == once


def test_an_empty_history_stays_as_it_was() -> None:
    assert bound_status(ModelRolloutStatus(message="x" * 5000)).history is None
    assert bound_status(ModelRolloutStatus(history=[])).history == []


def test_cap() -> None:
    assert cap("abc", 3) == "abc"
    assert cap("abcd", 3) == "ab\u2026"
    assert cap("abcd", 0) == ""
