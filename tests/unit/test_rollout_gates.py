"""Manual gates written through status.gate: promote (skip the current step), abort (roll back now, or revert
during the post-promotion watch) and retry (allow a rejected checkpoint again, skipping the cooldown)."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.rollout import DeleteCanary, EmitEvent, EnsureCanary, SetTargetCheckpoint
from modelratchet.rollout.machine import IDLE_REQUEUE
from rollout_sim import Sim, cond, events, iso, make_spec, report, world_actions


def paused_sim(**spec: Any) -> Sim:
    """setWeight 25 -> manual pause -> setWeight 50; returns waiting at the pause (t=1)."""
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}], **spec))
    sim.start()
    assert sim.phase == "Paused"
    return sim


def analyzing_sim(**spec: Any) -> Sim:
    """setWeight 25 -> analyze 10m -> manual pause; returns with the analysis begun (t=1, looks every 30s)."""
    spec.setdefault("analysis", {"interval": "30s"})
    sim = Sim(make_spec([{"setWeight": 25}, {"analyze": {"duration": "10m"}}, {"pause": {}}], **spec))
    sim.start()
    assert sim.status is not None and sim.status.current_step == 1
    return sim


def watching_sim(**spec: Any) -> Sim:
    """setWeight 25 -> promoted at t=2 with a 10m watch."""
    sim = Sim(make_spec([{"setWeight": 25}], postPromotion={"watch": "10m"}, **spec))
    sim.start()
    sim.tick(1)
    assert sim.phase == "Promoted" and sim.status is not None and sim.status.post_promotion_until
    return sim


def gate_event(actions: list[Any], reason: str) -> EmitEvent:
    found = [a for a in actions if isinstance(a, EmitEvent) and a.reason == reason]
    assert len(found) == 1, actions
    return found[0]


# ---------------------------------------------------------------------------------------------- promote


def test_promote_passes_a_manual_pause() -> None:
    sim = paused_sim()
    sim.gate("promote", requested_by="alice", requested_at=iso(5))
    t = sim.tick(5)
    assert events(t.actions) == ["PromoteRequested", "StepReached"]
    assert gate_event(t.actions, "PromoteRequested").message == "step 2/3 skipped by alice"
    assert world_actions(t.actions) == [EnsureCanary("v2", 4)]
    s = t.status
    assert s.gate is None
    assert s.phase == "Progressing" and s.current_step == 2 and s.canary_weight == 50
    assert (cond(s, "Paused").status, cond(s, "Paused").reason) == ("False", "NotPaused")
    assert s.step_started_at == iso(6)
    # The gate is consumed: the next tick does not skip again.
    t = sim.tick(1)
    assert "PromoteRequested" not in events(t.actions)


def test_promote_for_the_rolling_checkpoint() -> None:
    sim = paused_sim()
    sim.gate("promote", checkpoint="v2")
    t = sim.tick(1)
    assert t.status.current_step == 2


def test_a_gate_for_another_checkpoint_is_ignored_and_cleared() -> None:
    sim = paused_sim()
    for action in ("promote", "abort"):
        sim.gate(action, checkpoint="v9")
        t = sim.tick(1)
        assert events(t.actions) == ["GateIgnored"]
        assert gate_event(t.actions, "GateIgnored").message == f"{action} for v9 ignored: v2 is rolling out"
        assert t.status.gate is None and t.status.phase == "Paused" and t.status.current_step == 1


def test_promote_skips_an_analysis_and_drops_its_report() -> None:
    sim = analyzing_sim()
    sim.tick(30)  # t=31 first look
    sim.gate("promote")
    t = sim.tick(30)  # t=61: a look is due, but the step is skipped first
    assert t.request is not None  # the shell measured (it asked with the stored status)
    assert sim.history_ids == [1]  # ... but a skipped step records nothing
    assert t.status.current_step == 2 and t.status.phase == "Paused"
    assert events(t.actions) == ["PromoteRequested", "StepReached", "Paused"]


def test_promote_skips_a_canary_that_never_gets_ready() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}]), canary_ready_override=0)
    sim.run(5)
    assert sim.status is not None and sim.status.current_step == 0
    sim.gate("promote")
    t = sim.tick(1)
    assert t.status.current_step == 1 and t.status.phase == "Paused"


def test_promote_ends_a_timed_pause_early() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {"duration": "1h"}}, {"setWeight": 50}]))
    sim.start()
    assert sim.phase == "Paused"
    sim.gate("promote")
    t = sim.tick(10)
    assert t.status.current_step == 2 and t.status.phase == "Progressing"


def test_promote_releases_a_hold() -> None:
    sim = analyzing_sim(analysis={"interval": "30s", "inconclusiveLimit": 0, "onInconclusive": "hold"})
    sim.script = [report("inconclusive")]
    sim.tick(30)
    assert sim.phase == "Paused" and sim.status is not None
    assert cond(sim.status, "Paused").reason == "WaitingForData"
    sim.gate("promote")
    t = sim.tick(5)
    assert t.status.current_step == 2 and cond(t.status, "Paused").reason == "ManualGate"


def test_promote_accepts_a_blocked_warning() -> None:
    sim = analyzing_sim(analysis={"interval": "30s", "warningPolicy": "block"})
    sim.script = [report("warning")]
    sim.tick(30)
    assert sim.status is not None and cond(sim.status, "Paused").reason == "WarningBlocked"
    sim.gate("promote")
    t = sim.tick(5)
    assert t.status.current_step == 2 and cond(t.status, "Paused").reason == "ManualGate"


def test_promote_at_the_last_step_promotes() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}]))
    sim.start()
    sim.gate("promote")
    t = sim.tick(1)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetTargetCheckpoint("v2")]
    t = sim.tick(1)
    assert t.status.phase == "Promoted" and sim.target_checkpoint == "v2"


@pytest.mark.parametrize("when", ["idle", "promoted", "rolledBack", "promoting"])
def test_promote_with_no_step_to_skip_is_ignored(when: str) -> None:
    if when == "idle":
        sim = Sim(make_spec(checkpoint="v1"))
        sim.tick()
    elif when == "promoted":
        sim = Sim(make_spec([{"setWeight": 25}]))
        sim.start()
        sim.tick(1)
    elif when == "rolledBack":
        sim = analyzing_sim()
        sim.script = [report("failed")]
        sim.tick(30)
    else:
        sim = Sim(make_spec([{"setWeight": 25}]), target_delay=10)
        sim.start()
    before = sim.status
    assert before is not None
    sim.gate("promote")
    t = sim.tick(1)
    assert events(t.actions) == ["GateIgnored"]
    assert gate_event(t.actions, "GateIgnored").message == "promote ignored: no step to skip"
    assert t.status.gate is None and t.status.phase == before.phase
    assert t.status.current_step == before.current_step


# ---------------------------------------------------------------------------------------------- abort


def test_abort_rolls_back_an_analysis_now() -> None:
    sim = analyzing_sim()
    sim.gate("abort", requested_by="bob", reason="bad outputs")
    t = sim.tick(5)
    assert world_actions(t.actions) == [DeleteCanary()]  # once, though two paths want the canary gone
    assert events(t.actions) == ["RolledBack"]
    s = t.status
    assert s.phase == "RolledBack" and s.rejected_checkpoints == ["v2"] and s.gate is None
    rb = cond(s, "RolledBack")
    assert (rb.status, rb.reason) == ("True", "Aborted")
    assert rb.message == "rolled back v2, serving v1: aborted by bob: bad outputs"
    assert cond(s, "Promoted").reason == "Aborted"
    assert s.rolled_back_at == iso(6)
    assert sim.canary is None and sim.target_checkpoint == "v1"


def test_abort_at_a_manual_pause() -> None:
    sim = paused_sim()
    sim.gate("abort", checkpoint="v2")
    t = sim.tick(1)
    assert t.status.phase == "RolledBack"
    assert (cond(t.status, "Paused").status, cond(t.status, "RolledBack").reason) == ("False", "Aborted")


def test_abort_while_promoting_puts_the_stable_checkpoint_back() -> None:
    sim = Sim(make_spec([{"setWeight": 25}]), target_delay=10)
    sim.start()
    assert sim.target_checkpoint == "v2" and sim.phase == "Progressing"
    sim.gate("abort")
    t = sim.tick(1)
    assert world_actions(t.actions) == [DeleteCanary(), SetTargetCheckpoint("v1")]
    assert t.status.phase == "RolledBack" and t.status.stable_checkpoint == "v1"
    assert sim.target_checkpoint == "v1"


def test_abort_during_the_watch_reverts() -> None:
    sim = watching_sim()
    sim.gate("abort", requested_by="bob")
    t = sim.tick(5)
    assert world_actions(t.actions) == [SetTargetCheckpoint("v1")]  # once, and no spurious "restored" event
    assert events(t.actions) == ["Reverted"]
    s = t.status
    assert s.phase == "RolledBack" and s.stable_checkpoint == "v1" and s.rejected_checkpoints == ["v2"]
    assert cond(s, "RolledBack").reason == "Aborted"
    assert cond(s, "RolledBack").message == "reverted v2 to v1: aborted by bob"
    assert sim.target_checkpoint == "v1"
    assert sim.tick(5).actions == []


def test_abort_for_another_checkpoint_during_the_watch_is_ignored() -> None:
    sim = watching_sim()
    sim.gate("abort", checkpoint="v1")
    t = sim.tick(5)
    assert events(t.actions) == ["GateIgnored"]
    assert gate_event(t.actions, "GateIgnored").message == "abort for v1 ignored: v2 is watched"
    assert t.status.phase == "Promoted" and sim.target_checkpoint == "v2" and t.status.gate is None
    sim.gate("abort", checkpoint="v2")
    assert sim.tick(5).status.phase == "RolledBack"


@pytest.mark.parametrize("when", ["idle", "promotedWithoutWatch", "watchOver", "rolledBack"])
def test_abort_with_nothing_to_abort_is_ignored(when: str) -> None:
    if when == "idle":
        sim = Sim(make_spec(checkpoint="v1"))
        sim.tick()
    elif when == "promotedWithoutWatch":
        sim = Sim(make_spec([{"setWeight": 25}]))
        sim.start()
        sim.tick(1)
    elif when == "watchOver":
        sim = watching_sim()
        sim.tick(600)
        assert sim.status is not None and sim.status.post_promotion_until is None
    else:
        sim = paused_sim()
        sim.gate("abort")
        sim.tick(1)
    phase = sim.phase
    sim.gate("abort")
    t = sim.tick(1)
    assert events(t.actions) == ["GateIgnored"]
    assert gate_event(t.actions, "GateIgnored").message == "abort ignored: no rollout in progress"
    assert world_actions(t.actions) == [] and t.status.phase == phase and t.status.gate is None


# ---------------------------------------------------------------------------------------------- retry


def rolled_back_sim(**spec: Any) -> Sim:
    sim = analyzing_sim(**spec)
    sim.script = [report("failed")]
    sim.tick(30)  # t=31
    assert sim.phase == "RolledBack"
    return sim


def test_retry_rolls_a_rejected_checkpoint_out_again() -> None:
    sim = rolled_back_sim()
    sim.tick(30)
    assert sim.phase == "RolledBack"
    sim.gate("retry", requested_by="carol")
    t = sim.tick(5)
    assert events(t.actions) == ["RetryRequested", "RolloutStarted"]
    assert gate_event(t.actions, "RetryRequested").message == "retry of v2 requested by carol"
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
    s = t.status
    assert s.rejected_checkpoints is None and s.gate is None and s.rolled_back_at is None
    assert s.phase == "Progressing" and s.canary_checkpoint == "v2" and s.current_step == 0
    assert s.analysis_count == 0 and s.failed_analyses == 0
    assert (cond(s, "Progressing").status, cond(s, "Progressing").reason) == ("True", "RolloutStarted")
    assert (cond(s, "RolledBack").status, cond(s, "RolledBack").reason) == ("False", "RolloutInProgress")


def test_retry_of_a_named_checkpoint_leaves_the_others_rejected() -> None:
    sim = rolled_back_sim()
    assert sim.status is not None
    sim.status = sim.status.model_copy(update={"rejected_checkpoints": ["v3", "v2", "v0"]})
    sim.gate("retry", checkpoint="v3")
    t = sim.tick(5)
    assert t.status.rejected_checkpoints == ["v2", "v0"]
    assert t.status.phase == "RolledBack"  # spec still asks for v2, which stays rejected
    assert events(t.actions) == ["RetryRequested"]


def test_retry_skips_the_cooldown() -> None:
    sim = rolled_back_sim(cooldown="1h")
    sim.set_spec(checkpoint="v3")
    t = sim.tick(5)
    assert cond(t.status, "Progressing").reason == "CoolingDown"
    sim.gate("retry", checkpoint="v3")  # v3 was never rejected; retry still lifts the cooldown
    t = sim.tick(5)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v3"
    assert t.status.rejected_checkpoints == ["v2"]


def test_retry_of_a_reverted_checkpoint() -> None:
    sim = watching_sim()
    sim.gate("abort")
    sim.tick(5)
    assert sim.status is not None and sim.status.stable_checkpoint == "v1"
    sim.gate("retry")
    t = sim.tick(5)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v2"
    assert t.status.stable_checkpoint == "v1"
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]


def test_retry_during_a_rollout_changes_nothing_else() -> None:
    sim = paused_sim()
    before = sim.status
    sim.gate("retry")
    t = sim.tick(1)
    assert events(t.actions) == ["RetryRequested"]
    assert before is not None
    assert t.status.phase == "Paused" and t.status.current_step == before.current_step
    assert t.status.gate is None


def test_retry_requeues_soon() -> None:
    sim = rolled_back_sim()
    sim.set_spec(checkpoint="v1")  # nothing to start after the retry
    sim.tick(1)
    sim.gate("retry", checkpoint="v2")
    t = sim.tick(1)
    assert t.decision.requeue_after == 1.0
    t = sim.tick(1)
    assert t.decision.requeue_after == IDLE_REQUEUE


# ---------------------------------------------------------------------------------------------- replay


def test_a_gate_tick_replayed_before_its_status_was_written_gives_the_same_result() -> None:
    sim = analyzing_sim()
    sim.gate("abort")
    sim.now = sim.now.replace(microsecond=0)
    a = sim.decide()
    b = sim.decide()
    assert a.status == b.status and a.actions == b.actions
    assert a.status.phase == "RolledBack" and a.status.rejected_checkpoints == ["v2"]
    assert sim.status is not None and sim.status.gate is not None  # nothing written yet
