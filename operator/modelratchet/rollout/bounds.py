"""Keep a ModelRollout's status within what etcd and the API server accept (pure).

etcd refuses values over 1.5 MiB by default and the API server refuses request bodies over 3 MiB; messages and
the history carry text that comes from outside (PromQL errors, judge output), so both are bounded before a write.
"""

from __future__ import annotations

from modelratchet.api.rollout import HistoryEntry, MetricResult, ModelRolloutStatus

MAX_STATUS_BYTES = 256 * 1024
MAX_MESSAGE = 1024
_ELLIPSIS = "\u2026"


def cap(text: str, limit: int = MAX_MESSAGE) -> str:
    """At most ``limit`` characters; a cut text ends with an ellipsis so readers know it was cut."""
    if len(text) <= limit:
        return text
    return (text[: limit - 1] + _ELLIPSIS) if limit > 0 else ""


def _cap_metric(m: MetricResult, limit: int) -> None:
    m.message = cap(m.message, limit)
    if m.judge is not None:
        m.judge.judge = cap(m.judge.judge, limit)


def _cap_entry(e: HistoryEntry, limit: int) -> None:
    e.message = cap(e.message, limit)
    for m in e.metrics:
        _cap_metric(m, limit)


def _size(status: ModelRolloutStatus) -> int:
    return len(status.model_dump_json(by_alias=True, exclude_none=True).encode())


def _entry_size(entry: HistoryEntry) -> int:
    return len(entry.model_dump_json(by_alias=True, exclude_none=True).encode())


def bound_status(
    status: ModelRolloutStatus, *, max_bytes: int = MAX_STATUS_BYTES, max_message: int = MAX_MESSAGE
) -> ModelRolloutStatus:
    """A copy of ``status`` whose messages are at most ``max_message`` characters and whose JSON (by alias,
    without nulls) fits ``max_bytes``, by dropping the oldest history entries.

    The newest entry always stays (even if the status is still too big with it alone), and ``lastHistoryId``
    is left alone, so the ids of dropped entries are never handed out again.
    """
    out = status.model_copy(deep=True)
    if out.message is not None:
        out.message = cap(out.message, max_message)
    for c in out.conditions or []:
        c.message = cap(c.message, max_message)
    if out.gate is not None and out.gate.reason is not None:
        out.gate.reason = cap(out.gate.reason, max_message)
    for e in out.history or []:
        _cap_entry(e, max_message)

    history = out.history
    if not history or _size(out) <= max_bytes:
        return out
    # Compact JSON: the history array costs the sum of its entries plus one comma between two of them, so the
    # fitting prefix is found with one serialisation per entry instead of one of the whole status per drop.
    out.history = []
    budget = max_bytes - _size(out)
    keep, used = 0, 0
    for entry in history:  # newest first
        cost = _entry_size(entry) + (1 if keep else 0)
        if keep and used + cost > budget:
            break
        keep, used = keep + 1, used + cost
    out.history = history[:keep]
    while len(out.history) > 1 and _size(out) > max_bytes:  # never expected; keeps the promise regardless
        out.history = out.history[:-1]
    return out
