"""metav1.Condition bookkeeping."""

from __future__ import annotations

from modelratchet.api.common import Condition
from modelratchet.rollout.conditions import get_condition, set_condition


def test_new_condition_is_appended_with_now_as_transition_time() -> None:
    out = set_condition([], "Ready", "True", "Resolved", "ok", now="2025-01-01T00:00:00Z", generation=3)
    assert out == [
        Condition(
            type="Ready",
            status="True",
            reason="Resolved",
            message="ok",
            last_transition_time="2025-01-01T00:00:00Z",
            observed_generation=3,
        )
    ]


def test_same_status_keeps_transition_time_but_updates_reason_message_and_generation() -> None:
    first = set_condition([], "Ready", "False", "TargetNotFound", "a", now="2025-01-01T00:00:00Z", generation=1)
    second = set_condition(first, "Ready", "False", "BaselineNotFound", "b", now="2025-01-01T00:05:00Z", generation=2)
    assert second == [
        Condition(
            type="Ready",
            status="False",
            reason="BaselineNotFound",
            message="b",
            last_transition_time="2025-01-01T00:00:00Z",
            observed_generation=2,
        )
    ]


def test_status_change_moves_transition_time() -> None:
    first = set_condition([], "Ready", "False", "TargetNotFound", "a", now="2025-01-01T00:00:00Z", generation=1)
    second = set_condition(first, "Ready", "True", "Resolved", "", now="2025-01-01T00:05:00Z", generation=1)
    assert second[0].last_transition_time == "2025-01-01T00:05:00Z"
    assert second[0].status == "True"
    third = set_condition(second, "Ready", "Unknown", "Checking", "", now="2025-01-01T00:06:00Z", generation=1)
    assert third[0].last_transition_time == "2025-01-01T00:06:00Z"


def test_other_conditions_and_order_are_kept_and_input_is_not_mutated() -> None:
    base = set_condition([], "A", "True", "R", "", now="t0", generation=1)
    base = set_condition(base, "B", "False", "R", "", now="t0", generation=1)
    base = set_condition(base, "C", "True", "R", "", now="t0", generation=1)
    snapshot = [c.model_copy() for c in base]
    out = set_condition(base, "B", "True", "Now", "m", now="t1", generation=2)
    assert [c.type for c in out] == ["A", "B", "C"]
    assert out[0] == base[0] and out[2] == base[2]
    assert out[1].status == "True" and out[1].last_transition_time == "t1"
    assert base == snapshot


def test_get_condition() -> None:
    conds = set_condition([], "Ready", "True", "Resolved", "", now="t0", generation=1)
    assert get_condition(conds, "Ready") is conds[0]
    assert get_condition(conds, "Paused") is None
    assert get_condition(None, "Ready") is None
    assert get_condition([], "Ready") is None
