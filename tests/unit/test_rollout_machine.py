"""The rollout state machine driven tick by tick in a simulated world: phases, steps, supersede, broken
references, history, conditions, requeue and idempotency. Policies and gates have their own files."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from modelratchet.api.rollout import HistoryEntry, ModelRolloutStatus
from modelratchet.rollout import (
    CanaryState,
    DeleteCanary,
    EmitEvent,
    EnsureCanary,
    Notify,
    SetTargetCheckpoint,
    TargetState,
    World,
    analysis_due,
    plan,
    reconcile,
)
from modelratchet.rollout.machine import ERROR_REQUEUE_MAX, IDLE_REQUEUE, parse_ts, ts
from rollout_sim import (
    T0,
    Sim,
    at,
    cond,
    events,
    iso,
    make_spec,
    notifications,
    report,
    roundtrip,
    world_actions,
)

# ---------------------------------------------------------------------------------------------- first sight


def test_first_sight_adopts_the_target_checkpoint_and_idles_when_nothing_is_asked() -> None:
    sim = Sim(make_spec(checkpoint="v1"))
    t = sim.tick()
    s = t.status
    assert s.phase == "Idle"
    assert s.stable_checkpoint == "v1"
    assert s.last_good_checkpoints == ["v1"]
    assert s.canary_checkpoint is None and s.current_step is None
    assert s.observed_generation == 1
    assert s.message == "serving v1"
    assert t.actions == []
    assert t.decision.requeue_after == IDLE_REQUEUE
    assert (cond(s, "Ready").status, cond(s, "Ready").reason) == ("True", "ReferencesResolved")
    assert (cond(s, "Progressing").status, cond(s, "Progressing").reason) == ("False", "Idle")
    assert (cond(s, "Paused").status, cond(s, "Paused").reason) == ("False", "NotPaused")
    # Nothing changes on later ticks.
    later = sim.run(5, dt=30)
    assert all(x.actions == [] for x in later)
    assert all(x.decision.requeue_after == IDLE_REQUEUE for x in later)
    assert sim.status == roundtrip(s)


def test_idle_starts_a_rollout_when_the_spec_asks_for_a_new_checkpoint() -> None:
    sim = Sim(make_spec(checkpoint="v1"))
    sim.tick()
    sim.set_spec(checkpoint="v2")
    t = sim.tick(30)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v2"
    assert t.status.observed_generation == 2
    assert cond(t.status, "Progressing").observed_generation == 2
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]


def test_rolled_back_goes_idle_when_the_spec_returns_to_stable() -> None:
    sim = Sim(make_spec(), script=[report("failed")])
    sim.start()
    sim.tick(30)
    assert sim.phase == "RolledBack"
    sim.set_spec(checkpoint="v1")
    t = sim.tick(5)
    assert t.status.phase == "Idle" and t.status.message == "serving v1" and t.actions == []
    assert t.status.rejected_checkpoints == ["v2"]  # still rejected
    assert cond(t.status, "RolledBack").status == "True"  # the latest candidate was rejected


def test_status_none_and_empty_status_are_the_same_start() -> None:
    spec = make_spec()
    world = World(target=TargetState("v1", 4, 4, True), canary=None)
    a = reconcile(spec, None, generation=1, world=world, now=T0)
    b = reconcile(spec, ModelRolloutStatus(), generation=1, world=world, now=T0)
    assert a.status == b.status and a.actions == b.actions


def test_happy_path_trace() -> None:
    sim = Sim(make_spec())  # setWeight 25, analyze 1m; interval 30s; target v1 x4

    t = sim.tick()  # t=0: start, ask for the canary
    assert t.status.phase == "Progressing"
    assert t.status.stable_checkpoint == "v1" and t.status.canary_checkpoint == "v2"
    assert t.status.current_step == 0 and t.status.canary_weight == 25
    assert t.status.rollout_started_at == iso(0) and t.status.step_started_at == iso(0)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
    assert events(t.actions) == ["RolloutStarted"]
    assert notifications(t.actions) == ["started"]
    assert t.status.message == "waiting for 1 canary pod(s) of v2 to be ready"
    assert (cond(t.status, "Progressing").status, cond(t.status, "Progressing").reason) == ("True", "RolloutStarted")
    assert (cond(t.status, "Promoted").status, cond(t.status, "Promoted").reason) == ("False", "RolloutInProgress")
    assert cond(t.status, "RolledBack").status == "False"
    assert t.decision.requeue_after == 1.0
    assert t.request is None

    t = sim.tick(1)  # t=1: canary ready -> step 1 (analyze)
    assert t.status.current_step == 1 and t.status.step_started_at == iso(1)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
    assert events(t.actions) == ["StepReached"]
    assert notifications(t.actions) == ["stepReached"]
    assert t.request is None

    t = sim.tick(1)  # t=2: nothing due; sleep until the first analysis (t=31)
    assert t.request is None
    assert t.decision.requeue_after == 29.0
    assert t.status.message == "analyzing v2 at step 2/2 (0 analyses)"
    assert (cond(t.status, "Progressing").reason) == "Analyzing"

    t = sim.tick(29)  # t=31: first analysis
    assert t.request is not None
    assert (t.request.stage, t.request.checkpoint, t.request.stable_checkpoint) == ("canary", "v2", "v1")
    assert (t.request.look, t.request.max_looks, t.request.interval_seconds) == (1, 2, 30.0)
    assert t.request.window_seconds == 30.0  # since the canary served (t=1), not since the rollout began (t=0)
    assert t.status.current_step == 1 and t.status.analysis_count == 1
    assert sim.history_ids == [1]
    assert notifications(t.actions) == ["analysis"]
    assert (cond(t.status, "AnalysisPassing").status, cond(t.status, "AnalysisPassing").reason) == ("True", "Passed")
    assert t.decision.requeue_after == 30.0

    t = sim.tick(30)  # t=61: second analysis, step over -> promote: write the target, wait for it
    assert t.request is not None and t.request.look == 2
    assert sim.history_ids == [2, 1]
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetTargetCheckpoint("v2")]  # canary serves on
    assert t.status.phase == "Progressing" and t.status.current_step == 2
    assert cond(t.status, "Progressing").reason == "Promoting"

    t = sim.tick(1)  # t=62: target Available on v2 -> promoted, canary removed
    assert world_actions(t.actions) == [DeleteCanary()]
    assert events(t.actions) == ["Promoted"]
    assert notifications(t.actions) == ["promoted"]
    s = t.status
    assert s.phase == "Promoted"
    assert s.stable_checkpoint == "v2" and s.previous_checkpoint == "v1"
    assert s.last_good_checkpoints == ["v2", "v1"]
    assert s.canary_checkpoint is None and s.current_step is None and s.canary_weight == 0
    assert s.promoted_at == iso(62) and s.post_promotion_until is None
    assert s.message == "promoted v2 (was v1)"
    assert (cond(s, "Promoted").status, cond(s, "Promoted").reason) == ("True", "Promoted")
    assert (cond(s, "Progressing").status, cond(s, "Progressing").reason) == ("False", "Promoted")
    assert (cond(s, "RolledBack").status, cond(s, "RolledBack").reason) == ("False", "Promoted")
    assert sim.canary is None and sim.target_checkpoint == "v2"

    t = sim.tick(30)  # steady state
    assert t.actions == [] and t.status.phase == "Promoted" and t.status.message == "serving v2"
    assert t.request is None and t.decision.requeue_after == IDLE_REQUEUE


def test_full_multi_step_rollout() -> None:
    spec = make_spec(
        [
            {"setWeight": 10},
            {"pause": {"duration": "30s"}},
            {"setWeight": 50},
            {"analyze": {"duration": "1m"}},
            {"pause": {}},
            {"setWeight": 100},
        ],
    )
    sim = Sim(spec, target_replicas=4)
    sim.tick()
    assert world_actions(sim.ticks[-1].actions) == [EnsureCanary("v2", 1)]  # 10% of 4+c: 1 pod (20%)
    t = sim.tick(1)  # step 1: timed pause
    assert t.status.current_step == 1 and t.status.phase == "Paused"
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("True", "TimedPause")
    assert t.decision.requeue_after == 30.0
    t = sim.tick(30)  # pause over -> setWeight 50
    assert t.status.current_step == 2 and t.status.phase == "Progressing" and t.status.canary_weight == 50
    assert EnsureCanary("v2", 4) in t.actions
    t = sim.tick(1)  # canary scaled -> analyze
    assert t.status.current_step == 3
    sim.run_until(lambda s: s.status is not None and s.status.current_step == 4, dt=30)
    assert sim.phase == "Paused"
    assert cond(sim.status, "Paused").reason == "ManualGate"
    assert sim.history_ids == [2, 1]
    sim.tick(3600)  # an hour later, still waiting for a person
    assert sim.phase == "Paused" and sim.status is not None and sim.status.current_step == 4
    sim.gate("promote")
    t = sim.tick(1)
    assert t.status.current_step == 5 and t.status.canary_weight == 100
    assert EnsureCanary("v2", 16) in t.actions  # capped at 80%
    sim.tick(1)
    t = sim.tick(1)
    assert t.status.phase == "Promoted" and sim.target_checkpoint == "v2" and sim.canary is None
    assert sim.all_events().count("StepReached") == 5
    assert sim.all_notifications().count("paused") == 2  # the timed pause and the manual gate


def test_reconcile_does_not_mutate_its_inputs() -> None:
    sim = Sim(make_spec())
    sim.start()
    sim.tick(1)
    before = sim.status.model_copy(deep=True) if sim.status else None
    spec_before = sim.spec.model_copy(deep=True)
    sim.now += timedelta(seconds=60)
    sim.decide(report("failed"))
    assert sim.status == before
    assert sim.spec == spec_before


def test_failed_phase_written_by_the_shell_recovers() -> None:
    sim = Sim(make_spec(), status=ModelRolloutStatus(phase="Failed", message="spec.steps: invalid"))
    t = sim.tick()
    assert t.status.phase == "Progressing" and t.status.stable_checkpoint == "v1"
    assert t.status.last_good_checkpoints == ["v1"]
    sim2 = Sim(
        make_spec(checkpoint="v1"),
        status=ModelRolloutStatus(phase="Failed", stable_checkpoint="v1", message="spec.steps: invalid"),
    )
    t = sim2.tick()
    assert t.status.phase == "Idle" and t.status.message == "serving v1"


# ---------------------------------------------------------------------------------------------- steps


def test_set_weight_waits_for_ready_pods_and_keeps_asking() -> None:
    sim = Sim(make_spec(), canary_delay=3)
    sim.tick()
    for _ in range(3):
        t = sim.tick(1)
        assert t.status.current_step == 0
        assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
        assert t.status.message == "waiting for 1 canary pod(s) of v2 to be ready"
        assert t.decision.requeue_after == 1.0
    t = sim.tick(1)
    assert t.status.current_step == 1


def test_a_canary_that_never_serves_is_rolled_back_at_the_progress_deadline() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"analyze": {"duration": "1m"}}, {"setWeight": 50}]))
    sim.canary_ready_override = 0  # pods that never start: an image or a checkpoint that does not load
    sim.tick()
    t = sim.tick(599)
    assert t.status.phase == "Progressing" and t.status.current_step == 0
    assert t.status.message == "waiting for 1 canary pod(s) of v2 to be ready"
    t = sim.tick(1)  # 10m, the default
    assert t.status.phase == "RolledBack" and t.status.rejected_checkpoints == ["v2"]
    assert world_actions(t.actions) == [DeleteCanary()]
    assert cond(t.status, "RolledBack").reason == "ProgressDeadlineExceeded"
    assert t.status.message == (
        "rolled back v2, serving v1: step 1/3 still waiting for 1 canary pod(s) of v2 to be ready after 10m "
        "(spec.progressDeadline)"
    )
    assert "RolledBack" in events(t.actions) and notifications(t.actions) == ["rolledBack"]


def test_the_progress_deadline_counts_from_each_traffic_step() -> None:
    spec = make_spec(
        [{"setWeight": 25}, {"pause": {"duration": "20m"}}, {"setWeight": 50}], progressDeadline="5m"
    )
    sim = Sim(spec)
    sim.tick()
    sim.tick(1)  # the canary serves 25%: the pause begins
    t = sim.tick(1200)  # longer than the deadline in all, but not waiting for the candidate
    assert t.status.current_step == 2 and t.status.phase == "Progressing"
    sim.canary_ready_override = 1  # the pods this share needs beyond the first do not come
    t = sim.tick(299)
    assert t.status.phase == "Progressing" and t.status.message.startswith("waiting for ")
    waiting = t.status.message
    t = sim.tick(1)
    assert t.status.phase == "RolledBack" and f"step 3/3 still {waiting} after 5m" in t.status.message


def test_a_zero_progress_deadline_waits_for_the_canary_forever() -> None:
    sim = Sim(make_spec(progressDeadline="0s"))
    sim.canary_ready_override = 0
    sim.tick()
    t = sim.tick(30 * 24 * 3600)
    assert t.status.phase == "Progressing" and t.status.current_step == 0


def test_set_weight_waits_for_the_right_checkpoint_and_count() -> None:
    spec = make_spec([{"setWeight": 50}, {"analyze": {"duration": "1m"}}])
    status = ModelRolloutStatus(
        phase="Progressing",
        stable_checkpoint="v1",
        last_good_checkpoints=["v1"],
        canary_checkpoint="v2",
        current_step=0,
        canary_weight=50,
        step_started_at=iso(0),
        rollout_started_at=iso(0),
    )
    world = World(target=TargetState("v1", 4, 4, True), canary=CanaryState("v0", 4, 4))
    d = reconcile(spec, status, generation=1, world=world, now=at(1))
    assert d.status.current_step == 0  # ready pods, but of another checkpoint
    world = World(target=TargetState("v1", 4, 4, True), canary=CanaryState("v2", 6, 6))
    d = reconcile(spec, status, generation=1, world=world, now=at(1))
    assert d.status.current_step == 0 and plan(spec, d.status, world) == [EnsureCanary("v2", 4)]  # scaling to 4
    world = World(target=TargetState("v1", 4, 4, True), canary=CanaryState("v2", 4, 3))
    d = reconcile(spec, status, generation=1, world=world, now=at(1))
    assert d.status.current_step == 0  # one pod not ready yet
    world = World(target=TargetState("v1", 4, 4, True), canary=CanaryState("v2", 4, 4))
    d = reconcile(spec, status, generation=1, world=world, now=at(1))
    assert d.status.current_step == 1


def test_set_weight_zero_keeps_an_empty_canary() -> None:
    sim = Sim(make_spec([{"setWeight": 0}, {"pause": {}}]))
    t = sim.tick()
    assert world_actions(t.actions) == [EnsureCanary("v2", 0)]
    t = sim.tick(1)
    assert t.status.current_step == 1 and t.status.phase == "Paused"
    # Level-based: the empty canary is kept (not deleted) in later steps, and not scaled up.
    assert world_actions(t.actions) == [EnsureCanary("v2", 0)]
    t = sim.tick(1)
    assert world_actions(t.actions) == [EnsureCanary("v2", 0)] and sim.canary == ("v2", 0)


def test_instant_steps_run_in_one_reconcile() -> None:
    spec = make_spec([{"pause": {"duration": "0s"}}, {"pause": {"duration": "0s"}}, {"setWeight": 20}])
    sim = Sim(spec)
    t = sim.tick()
    assert t.status.current_step == 2 and t.status.phase == "Progressing"
    assert events(t.actions) == ["RolloutStarted", "StepReached", "StepReached"]
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
    t = sim.tick(1)  # canary ready -> past the last step -> promote
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetTargetCheckpoint("v2")]
    t = sim.tick(1)
    assert t.status.phase == "Promoted"


def test_a_rollout_of_only_instant_steps_promotes_in_two_ticks() -> None:
    sim = Sim(make_spec([{"pause": {"duration": "0s"}}]))
    t = sim.tick()
    assert world_actions(t.actions) == [SetTargetCheckpoint("v2")]
    t = sim.tick(1)
    assert t.status.phase == "Promoted"


def test_timed_pause() -> None:
    spec = make_spec([{"setWeight": 20}, {"pause": {"duration": "2m"}}, {"setWeight": 40}])
    sim = Sim(spec)
    sim.tick()
    t = sim.tick(5)  # t=5 enters the pause until t=125
    assert t.status.phase == "Paused" and t.status.current_step == 1
    assert t.status.message == f"paused at step 2/3 until {iso(125)}"
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("True", "TimedPause")
    assert events(t.actions) == ["StepReached", "Paused"] and notifications(t.actions) == ["stepReached", "paused"]
    assert t.decision.requeue_after == IDLE_REQUEUE  # the heartbeat caps every requeue
    t = sim.tick(100)  # t=105
    assert t.status.phase == "Paused" and events(t.actions) == [] and t.decision.requeue_after == 20.0
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]  # the canary is kept meanwhile
    t = sim.tick(19.5)  # t=124.5, not yet
    assert t.status.phase == "Paused"
    t = sim.tick(0.5)  # t=125 exactly
    assert t.status.phase == "Progressing" and t.status.current_step == 2
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("False", "NotPaused")


def test_manual_pause_waits_for_a_gate() -> None:
    sim = Sim(make_spec([{"setWeight": 20}, {"pause": {}}]))
    sim.tick()
    t = sim.tick(1)
    assert t.status.phase == "Paused"
    assert cond(t.status, "Paused").reason == "ManualGate"
    assert "modelratchet promote" in (t.status.message or "")
    assert events(t.actions) == ["StepReached", "Paused"]
    for _ in range(5):
        t = sim.tick(86400)
        assert t.status.phase == "Paused" and t.status.current_step == 1
        assert events(t.actions) == [] and notifications(t.actions) == []
        assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
        assert t.decision.requeue_after == IDLE_REQUEUE
        assert t.request is None


def test_analyze_runs_every_interval_until_the_duration() -> None:
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": "5m"}}], analysis={"interval": "1m"})
    sim = Sim(spec)
    sim.start()  # t=1: analyze starts
    requests = []
    while sim.status is not None and sim.status.current_step == 1:
        t = sim.tick(5)
        if t.request is not None:
            requests.append(t.request)
    assert sim.status is not None
    assert [(r.look, r.max_looks) for r in requests] == [(i, 5) for i in range(1, 6)]
    assert [r.window_seconds for r in requests] == [60.0, 120.0, 180.0, 240.0, 300.0]  # since serving at t=1
    assert [h.time for h in reversed(sim.status.history or [])] == [iso(61), iso(121), iso(181), iso(241), iso(301)]
    assert sim.status.current_step == 2  # advanced at t=301 (1+5m) together with the last look


def test_analysis_window_and_interval_in_requests() -> None:
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": "90s"}}], analysis={"interval": "20s"})
    sim = Sim(spec, canary_delay=4)
    sim.tick()
    sim.run_until(lambda s: s.ticks[-1].request is not None, dt=1)
    req = sim.ticks[-1].request
    assert req is not None
    assert req.interval_seconds == 20.0 and req.max_looks == 4  # looks at 20, 40, 60, 80s; the step ends at 90s
    # The canary needed 4 looks to be ready: the window starts when it served, never before.
    assert sim.status is not None and sim.status.serving_since is not None
    served = parse_ts(sim.status.serving_since)
    assert served is not None and served > T0
    assert req.window_seconds == (sim.now - served).total_seconds() < (sim.now - T0).total_seconds()
    assert req.recorded_baselines == {}


@pytest.mark.parametrize(
    ("duration", "interval", "looks"),
    [("1m", "30s", 2), ("90s", "20s", 4), ("100s", "30s", 3), ("5m", "1m", 5), ("10s", "30s", 1), ("1m", "1m", 1)],
)
def test_max_looks_is_the_number_of_looks_the_step_makes(duration: str, interval: str, looks: int) -> None:
    # A sequential judge spends its error budget over max_looks; its final look must be one that happens.
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": duration}}], analysis={"interval": interval})
    sim = Sim(spec)
    sim.start()
    sim.follow(50)
    made = [t.request for t in sim.ticks if t.request is not None]
    assert [(r.look, r.max_looks) for r in made] == [(k, looks) for k in range(1, looks + 1)]
    assert sim.phase == "Promoted"


def test_a_report_that_was_not_asked_for_is_ignored() -> None:
    sim = Sim(make_spec())
    sim.start()  # analyze step just started; nothing is due
    d = sim.decide(report("failed"))
    assert d.status.history is None and d.status.phase == "Progressing"
    assert d.status.last_analysis_at is None


def test_step_cannot_end_without_an_analysis() -> None:
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": "10s"}}], analysis={"interval": "30s"})
    sim = Sim(spec)
    sim.start()
    t = sim.tick(15)  # past the 10s duration, no analysis yet
    assert t.status.current_step == 1
    t = sim.tick(16)  # t=32 >= 1 + 30: first analysis; the duration is over -> advance
    assert t.request is not None and t.status.current_step == 2


def test_each_analyze_step_needs_its_own_look_even_after_earlier_passes() -> None:
    spec = make_spec(
        [{"setWeight": 20}, {"analyze": {"duration": "30s"}}, {"analyze": {"duration": "10s"}}],
        analysis={"interval": "30s"},
    )
    sim = Sim(spec)
    sim.start()
    t = sim.tick(30)  # t=31: step 1 passes and ends
    assert t.status.current_step == 2 and t.status.last_verdict == "passed"
    t = sim.tick(20)  # t=51: step 2's 10s are over, but it has not looked yet
    assert t.status.current_step == 2 and t.status.analysis_count == 0
    t = sim.tick(10)  # t=61: its first look, the rollout's second (the judges' budget spans both steps)
    assert t.request is not None and (t.request.look, t.request.max_looks, t.request.final) == (2, 2, True)
    assert t.status.current_step == 3 and t.status.looks == 2


def test_decided_pass_ends_the_analysis_early() -> None:
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": "10m"}}, {"pause": {}}])
    sim = Sim(spec, script=[report("passed"), report("passed", decided=True)])
    sim.start()
    t = sim.tick(30)
    assert t.status.current_step == 1
    t = sim.tick(30)
    assert t.status.current_step == 2 and t.status.phase == "Paused"
    assert "AnalysisDecided" in events(t.actions)


def test_decided_warning_does_not_end_the_analysis_early() -> None:
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": "10m"}}, {"pause": {}}])
    sim = Sim(spec, script=[report("warning", decided=True)])
    sim.start()
    t = sim.tick(30)
    assert t.status.current_step == 1 and "AnalysisDecided" not in events(t.actions)


def test_promotion_waits_for_the_target_to_be_available() -> None:
    sim = Sim(make_spec([{"setWeight": 20}]), target_delay=3)
    sim.tick()
    t = sim.tick(1)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetTargetCheckpoint("v2")]
    for _ in range(3):
        t = sim.tick(1)
        assert t.status.phase == "Progressing"
        assert world_actions(t.actions) == [EnsureCanary("v2", 1)]  # the target says v2 already: not rewritten
        assert t.status.message == "promoting v2: waiting for the target to become Available"
        assert sim.canary == ("v2", 1)  # the canary keeps serving meanwhile
    t = sim.tick(1)
    assert t.status.phase == "Promoted" and sim.canary is None


def test_rollout_from_a_target_without_a_checkpoint_does_not_restart_every_tick() -> None:
    sim = Sim(make_spec(), target_checkpoint=None)
    sim.tick()
    assert sim.status is not None
    assert sim.status.stable_checkpoint is None and sim.status.last_good_checkpoints is None
    sim.run_until(lambda s: s.phase == "Promoted", dt=10)
    assert sim.all_events().count("RolloutStarted") == 1
    assert sim.status.rollout_started_at == iso(0)
    assert sim.status.stable_checkpoint == "v2" and sim.status.previous_checkpoint is None
    assert sim.status.last_good_checkpoints == ["v2"]
    assert sim.target_checkpoint == "v2"


def test_a_leftover_canary_is_removed_when_idle() -> None:
    sim = Sim(make_spec(checkpoint="v1"), canary=("v9", 2))
    t = sim.tick()
    assert world_actions(t.actions) == [DeleteCanary()]
    assert sim.tick(30).actions == []


def test_target_drift_is_put_back_to_stable() -> None:
    sim = Sim(make_spec(checkpoint="v1"))
    sim.tick()
    sim.target_checkpoint = "hand-edited"
    t = sim.tick(5)
    assert world_actions(t.actions) == [SetTargetCheckpoint("v1")]
    assert events(t.actions) == ["CheckpointRestored"]
    assert t.decision.requeue_after == 2.0
    assert sim.tick(2).actions == []


def test_a_stale_canary_of_the_same_checkpoint_is_not_mistaken_for_the_new_one() -> None:
    # Status says idle, yet a ready canary of the desired checkpoint is still around: what was seen before the
    # rollout began is not the canary it asks for, so it waits for one observed after acting on its status.
    status = ModelRolloutStatus(phase="Idle", stable_checkpoint="v1", last_good_checkpoints=["v1"])
    world = World(target=TargetState("v1", 4, 4, True), canary=CanaryState("v2", 1, 1))
    d = reconcile(make_spec(), status, generation=1, world=world, now=T0)
    assert d.status.current_step == 0
    assert d.actions and world_actions(d.actions) == []  # the decision itself changes nothing
    assert plan(make_spec(), d.status, world) == [EnsureCanary("v2", 1)]


def test_canary_lost_during_analysis_is_recreated() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"analyze": {"duration": "10m"}}]))
    sim.start()
    sim.tick(1)
    sim.canary = None  # someone deleted it
    t = sim.tick(5)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]
    assert sim.canary == ("v2", 1)


def test_canary_follows_the_target_when_it_scales() -> None:
    sim = Sim(make_spec([{"setWeight": 50}, {"analyze": {"duration": "10m"}}]), target_replicas=2)
    sim.start()
    assert sim.canary == ("v2", 2)
    sim.target_replicas = 6  # an HPA scaled the target
    t = sim.tick(5)
    assert world_actions(t.actions) == [EnsureCanary("v2", 6)]


# ---------------------------------------------------------------------------------------------- supersede


def _analyzing(spec_kw: dict[str, Any] | None = None) -> Sim:
    sim = Sim(make_spec([{"setWeight": 25}, {"analyze": {"duration": "5m"}}, {"pause": {}}], **(spec_kw or {})))
    sim.start()
    sim.tick(30)  # t=31: one analysis recorded
    assert sim.history_ids == [1]
    return sim


def test_new_checkpoint_mid_rollout_supersedes_the_canary() -> None:
    sim = _analyzing()
    sim.set_spec(checkpoint="v3")
    t = sim.tick(10)
    assert world_actions(t.actions) == [EnsureCanary("v3", 1)]  # the canary is re-applied with v3 in place
    assert sim.canary == ("v3", 1)
    assert events(t.actions) == ["RolloutSuperseded", "RolloutStarted"]
    s = t.status
    assert s.phase == "Progressing" and s.canary_checkpoint == "v3" and s.current_step == 0
    assert s.rollout_started_at == iso(41) and s.analysis_count == 0
    assert s.rejected_checkpoints is None  # superseded, not rejected
    assert s.stable_checkpoint == "v1"
    assert s.observed_generation == 2
    t = sim.tick(1)
    assert t.status.current_step == 1
    t = sim.tick(30)
    assert t.request is not None and t.request.checkpoint == "v3" and t.request.look == 1
    assert sim.history_ids == [2, 1]  # ids continue across rollouts


def test_supersede_back_to_stable_goes_idle() -> None:
    sim = _analyzing()
    sim.set_spec(checkpoint="v1")
    t = sim.tick(10)
    assert world_actions(t.actions) == [DeleteCanary()]
    assert t.status.phase == "Idle" and t.status.canary_checkpoint is None and t.status.current_step is None
    assert t.status.message == "serving v1"
    assert cond(t.status, "Progressing").reason == "Idle"
    assert sim.tick(30).actions == []


def test_supersede_to_a_rejected_checkpoint_does_not_roll_it_out() -> None:
    sim = _analyzing()
    assert sim.status is not None
    sim.status = sim.status.model_copy(update={"rejected_checkpoints": ["v0"]})
    sim.set_spec(checkpoint="v0")
    t = sim.tick(10)
    assert world_actions(t.actions) == [DeleteCanary()]
    assert t.status.phase == "Idle"
    assert cond(t.status, "Progressing").reason == "CheckpointRejected"


def test_supersede_at_a_manual_pause() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}]))
    sim.start()
    assert sim.phase == "Paused"
    sim.set_spec(checkpoint="v3")
    t = sim.tick(10)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v3"
    assert (cond(t.status, "Paused").status) == "False"


def test_supersede_at_a_manual_pause_to_a_rejected_checkpoint_is_not_paused_anymore() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}]))
    sim.start()
    assert sim.status is not None and sim.phase == "Paused"
    sim.status = sim.status.model_copy(update={"rejected_checkpoints": ["v0"]})
    sim.set_spec(checkpoint="v0")
    t = sim.tick(10)
    assert t.status.phase == "Idle"
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("False", "NotPaused")


def test_supersede_while_promoting_puts_the_stable_checkpoint_back() -> None:
    sim = Sim(make_spec([{"setWeight": 25}]), target_delay=5)
    sim.start()  # promotion asked: the target template says v2 but is not available yet
    assert sim.target_checkpoint == "v2" and sim.phase == "Progressing"
    sim.set_spec(checkpoint="v3")
    t = sim.tick(1)
    assert world_actions(t.actions) == [EnsureCanary("v3", 1), SetTargetCheckpoint("v1")]
    assert "CheckpointRestored" in events(t.actions)
    assert t.status.canary_checkpoint == "v3" and t.status.stable_checkpoint == "v1"


# ---------------------------------------------------------------------------------------------- broken references


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ({"target_exists": False}, "TargetNotFound"),
        ({"target_error": 'container "server" not found'}, "CheckpointFieldNotFound"),
        ({"baseline_error": 'ModelBaseline "model" not found'}, "BaselineNotFound"),
        ({"baseline_error": "metric accuracy: bad threshold", "baseline_reason": "BaselineInvalid"}, "BaselineInvalid"),
    ],
)
def test_broken_reference_at_start(breakage: dict[str, object], reason: str) -> None:
    sim = Sim(make_spec(), **breakage)  # type: ignore[arg-type]
    t = sim.tick()
    s = t.status
    ready = cond(s, "Ready")
    assert (ready.status, ready.reason) == ("False", reason)
    assert ready.message and s.message == ready.message
    assert s.phase is None and s.stable_checkpoint is None
    assert s.observed_generation == 1
    assert t.actions == [EmitEvent("Warning", reason, ready.message)]
    assert t.decision.requeue_after == 2.0
    # Backoff grows while broken, capped; the event is not repeated.
    waits = [sim.tick(dt).decision.requeue_after for dt in (10, 30, 100, 1000)]
    assert waits == [5.0, 20.0, ERROR_REQUEUE_MAX, ERROR_REQUEUE_MAX]
    assert all(x.actions == [] for x in sim.ticks[1:])
    assert sim.status is not None and cond(sim.status, "Ready").last_transition_time == iso(0)
    # Fixed: the rollout starts.
    sim.target_exists, sim.target_error, sim.baseline_error = True, None, None
    t = sim.tick(1)
    assert t.status.phase == "Progressing"
    assert (cond(t.status, "Ready").status, cond(t.status, "Ready").reason) == ("True", "ReferencesResolved")
    assert cond(t.status, "Ready").last_transition_time == iso(1141)
    assert events(t.actions) == ["ReferencesResolved", "RolloutStarted"]


def test_an_empty_baseline_reason_never_makes_an_empty_condition_reason() -> None:
    sim = Sim(make_spec(), baseline_error="ModelBaseline 'model' not found", baseline_reason="")
    t = sim.tick()
    assert cond(t.status, "Ready").reason == "BaselineNotFound"


def test_reference_precedence_and_reason_change_emits_again() -> None:
    sim = Sim(make_spec(), target_exists=False, target_error="x", baseline_error="y")
    t = sim.tick()
    assert cond(t.status, "Ready").reason == "TargetNotFound"
    assert "'serving' not found" in cond(t.status, "Ready").message
    sim.target_exists = True
    t = sim.tick(1)
    assert cond(t.status, "Ready").reason == "CheckpointFieldNotFound"
    assert events(t.actions) == ["CheckpointFieldNotFound"]
    assert cond(t.status, "Ready").last_transition_time == iso(0)  # still False: no transition
    sim.target_error = None
    t = sim.tick(1)
    assert cond(t.status, "Ready").reason == "BaselineNotFound" and cond(t.status, "Ready").message == "y"
    assert events(t.actions) == ["BaselineNotFound"]


def test_broken_reference_mid_rollout_freezes_and_resumes() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}, {"analyze": {"duration": "1m"}}]))
    sim.start()
    assert sim.phase == "Paused" and sim.status is not None
    sim.target_exists = False
    frozen = sim.status.model_copy(deep=True)
    t = sim.tick(5)
    assert t.status.phase == "Paused" and t.status.current_step == 1
    assert world_actions(t.actions) == []  # nothing is touched while the target is missing
    assert t.status.message == "Deployment 'serving' not found"
    # Everything but Ready, message and observedGeneration stays as it was.
    strip = {"conditions", "message", "observed_generation"}
    assert t.status.model_dump(exclude=strip) == frozen.model_dump(exclude=strip)
    # A gate written meanwhile waits until the references resolve.
    sim.gate("promote")
    t = sim.tick(5)
    assert t.status.gate is not None and t.status.current_step == 1
    sim.target_exists = True
    t = sim.tick(5)
    assert events(t.actions)[0] == "ReferencesResolved"
    assert t.status.gate is None and t.status.current_step == 2


def test_message_of_a_waiting_state_comes_back_when_references_resolve() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}]))
    sim.start()
    assert sim.status is not None
    paused_message = sim.status.message
    sim.baseline_error = "ModelBaseline 'model' not found"
    assert sim.tick(5).status.message == "ModelBaseline 'model' not found"
    sim.baseline_error = None
    t = sim.tick(5)
    assert t.status.message == paused_message
    assert t.status.phase == "Paused"


def test_broken_reference_during_analysis_does_not_record_or_judge() -> None:
    sim = _analyzing()
    sim.baseline_error = "gone"
    d = sim.decide(report("failed"))
    sim.now += timedelta(seconds=30)
    d = sim.decide(report("failed"))
    assert d.status.phase == "Progressing" and d.status.history == sim.status.history  # type: ignore[union-attr]
    assert d.status.failed_analyses == 0


# ---------------------------------------------------------------------------------------------- history


def test_history_is_bounded_newest_first_with_increasing_ids() -> None:
    spec = make_spec([{"setWeight": 25}, {"analyze": {"duration": "10m"}}], history_limit=3)
    sim = Sim(spec)
    sim.start()
    for _ in range(7):
        sim.tick(30)
    assert sim.history_ids == [7, 6, 5]
    assert sim.status is not None and sim.status.last_history_id == 7
    times = [parse_ts(h.time) for h in sim.status.history or []]
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]
    assert all(h.checkpoint == "v2" and h.step == 1 and h.stage == "canary" for h in sim.status.history or [])


def test_history_entry_content() -> None:
    m = report("warning", "accuracy dipped").metrics
    sim = Sim(make_spec(), script=[report("warning", "accuracy dipped", metrics=m)])
    sim.start()
    sim.tick(30)
    assert sim.status is not None and sim.status.history is not None
    assert sim.status.history[0] == HistoryEntry(
        id=1,
        time=iso(31),
        checkpoint="v2",
        step=1,
        stage="canary",
        verdict="warning",
        message="accuracy dipped",
        window_start=iso(1),
        metrics=m,
    )
    assert sim.status.last_verdict == "warning" and sim.status.last_analysis_at == iso(31)


def test_lowering_history_limit_trims_on_the_next_reconcile() -> None:
    spec = make_spec([{"setWeight": 25}, {"analyze": {"duration": "10m"}}])
    sim = Sim(spec)
    sim.start()
    for _ in range(5):
        sim.tick(30)
    assert sim.history_ids == [5, 4, 3, 2, 1]
    sim.set_spec(historyLimit=2)
    t = sim.tick(1)  # no analysis due this tick
    assert t.request is None
    assert sim.history_ids == [5, 4]


def test_ids_are_never_reused_even_if_last_history_id_was_lost() -> None:
    sim = _analyzing()
    assert sim.status is not None
    sim.status = sim.status.model_copy(update={"last_history_id": None})
    sim.tick(30)
    assert sim.history_ids == [2, 1]


def test_history_ids_continue_across_rollouts_and_promotion() -> None:
    spec = make_spec(postPromotion={"watch": "1m"})
    sim = Sim(spec)
    sim.run_until(lambda s: s.phase == "Promoted", dt=30)
    first = sim.history_ids
    sim.run_until(lambda s: s.status is not None and not s.status.post_promotion_until, dt=30)
    assert sim.status is not None and sim.status.history is not None
    assert sim.history_ids[: len(sim.history_ids) - len(first)] == list(range(sim.history_ids[0], first[0], -1))
    assert sim.status.history[0].stage == "postPromotion" and sim.status.history[0].step is None
    sim.set_spec(checkpoint="v3")
    sim.run_until(
        lambda s: s.phase == "Promoted" and s.status is not None and s.status.stable_checkpoint == "v3", dt=30
    )
    ids = sim.history_ids
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert ids[0] == len(ids)  # no gaps, no reuse


# ---------------------------------------------------------------------------------------------- idempotency


def _scenario() -> Sim:
    """A rollout that goes through most states, with a failure, a manual gate, a watch and a revert."""
    spec = make_spec(
        [
            {"setWeight": 20},
            {"analyze": {"duration": "1m"}},
            {"pause": {}},
            {"setWeight": 60},
            {"pause": {"duration": "20s"}},
        ],
        analysis={"interval": "20s", "failureLimit": 1},
        postPromotion={"watch": "2m"},
    )
    return Sim(
        spec,
        script=[
            report("failed"),
            report("passed"),
            report("passed"),
            report("passed"),
            report("passed"),
            report("failed"),
            report("failed"),
        ],
    )


GATE_AT = 16  # the tick (5s apart) at which someone promotes through the manual pause


def _drive(sim: Sim, check: object) -> None:
    for i in range(60):
        if i == GATE_AT:
            sim.gate("promote")
        assert callable(check)
        check(sim)
        sim.tick(5)


def test_reconcile_twice_before_writing_gives_the_same_decision() -> None:
    def check(sim: Sim) -> None:
        request = analysis_due(sim.spec, sim.current_status(), sim.now + timedelta(seconds=5))
        rep = report("passed") if request is not None else None
        before = sim.status.model_copy(deep=True) if sim.status else None
        sim.now += timedelta(seconds=5)
        a = sim.decide(rep)
        b = sim.decide(rep)
        sim.now -= timedelta(seconds=5)
        assert a.status == b.status and a.actions == b.actions and a.requeue_after == b.requeue_after
        assert sim.status == before

    sim = _scenario()
    _drive(sim, check)
    _assert_scenario_ran(sim)


def _assert_scenario_ran(sim: Sim) -> None:
    """The scenario really went through a tolerated failure, the gate, the watch and a revert."""
    assert sim.status is not None
    assert sim.phase == "RolledBack"
    assert cond(sim.status, "RolledBack").reason == "PostPromotionRegression"
    assert [(h.stage, h.verdict) for h in reversed(sim.status.history or [])] == [
        ("canary", "failed"),
        ("canary", "passed"),
        ("canary", "passed"),
        ("postPromotion", "passed"),
        ("postPromotion", "passed"),
        ("postPromotion", "failed"),
        ("postPromotion", "failed"),
    ]
    assert "PromoteRequested" in sim.all_events()
    assert sim.target_checkpoint == "v1" and sim.status.stable_checkpoint == "v1"


def test_a_tick_replayed_after_a_crash_does_not_duplicate_history() -> None:
    sim = _analyzing()
    # The analysis tick ran and its actions were applied, but the status write was lost.
    t = sim.tick(30, write=False)
    assert t.request is not None and [h.id for h in t.status.history or []] == [2, 1]
    assert sim.history_ids == [1]
    # The shell tries again (same time, analysis due again since nothing was stored).
    t = sim.tick(0)
    assert t.request is not None
    assert sim.history_ids == [2, 1]
    # Replaying once more after the write: nothing is due, a report handed in anyway is ignored.
    d = sim.decide(report("failed"))
    assert [h.id for h in d.status.history or []] == [2, 1]
    assert d.status.failed_analyses == 0
    assert analysis_due(sim.spec, sim.current_status(), sim.now) is None


def test_a_promotion_whose_status_write_is_lost_changes_nothing() -> None:
    sim = Sim(make_spec([{"setWeight": 20}]))
    sim.tick()
    t = sim.tick(1, write=False)  # the decision to promote is not stored (a 409, a crash): nothing is acted on
    assert t.status.current_step == 1 and t.planned == []
    assert sim.target_checkpoint == "v1" and sim.phase == "Progressing" and sim.status is not None
    assert sim.status.current_step == 0
    t = sim.tick(1)  # decided again, stored, then acted on
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetTargetCheckpoint("v2")]
    sim.tick(1)
    assert sim.phase == "Promoted" and sim.target_checkpoint == "v2" and sim.canary is None


def test_a_crash_between_record_and_act_is_healed_by_the_next_look() -> None:
    sim = _analyzing()
    sim.script = [report("failed")]
    t = sim.tick(30, apply=False)  # rollback stored, the operator died before deleting the canary
    assert t.status.phase == "RolledBack" and sim.canary == ("v2", 1)
    t = sim.tick(1)  # the stored status says no canary: it goes, and nothing is judged or recorded twice
    assert world_actions(t.actions) == [DeleteCanary()] and sim.canary is None
    assert t.status.phase == "RolledBack" and sim.history_ids == [2, 1]
    assert t.status.rejected_checkpoints == ["v2"] and events(t.actions) == []


def test_a_lost_revert_never_puts_the_regressed_checkpoint_back_as_stable() -> None:
    # A revert decided after promotion whose status write was lost, then data goes missing: the old order (act,
    # then record) had already written v1 into the target, and the watch's end wrote the regressed v2 back as
    # stable. Recorded first, the world follows the status: v2 stays until a stored revert moves it.
    sim = Sim(make_spec([{"setWeight": 20}], postPromotion={"watch": "5m"}, analysis={"interval": "30s"}))
    sim.start()
    sim.tick(1)
    assert sim.phase == "Promoted" and sim.target_checkpoint == "v2"
    sim.script = [report("failed")]
    sim.tick(30, write=False)
    assert sim.target_checkpoint == "v2" and sim.status is not None and sim.status.stable_checkpoint == "v2"
    sim.script = [report("inconclusive")] * 20
    for _ in range(12):
        t = sim.tick(30)
        assert sim.target_checkpoint == t.status.stable_checkpoint  # the world is what the status says
    sim.script = [report("failed")]
    t = sim.tick(30)
    assert t.status.phase == "RolledBack" and t.status.stable_checkpoint == "v1" and sim.target_checkpoint == "v1"
    assert t.status.rejected_checkpoints == ["v2"] and "v2" not in (t.status.last_good_checkpoints or [])


def test_a_forged_stable_checkpoint_is_never_written_into_the_target() -> None:
    # Only the operator may write status (admission policy); should a status say otherwise anyway, the target
    # receives only a checkpoint the rollout recorded as good.
    sim = Sim(make_spec([{"setWeight": 20}]))
    sim.start()
    sim.tick(1)
    assert sim.phase == "Promoted" and sim.status is not None
    sim.status = sim.status.model_copy(update={"stable_checkpoint": "evil:1"})
    t = sim.tick(1)
    assert sim.target_checkpoint == "v2"
    assert not [a for a in world_actions(t.actions) if isinstance(a, SetTargetCheckpoint)]
    degraded = cond(t.status, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "UnvalidatedCheckpoint") and "evil:1" in degraded.message
    assert "UnvalidatedCheckpoint" in events(t.actions)
    t = sim.tick(1)
    assert "UnvalidatedCheckpoint" not in events(t.actions)  # announced once
    assert sim.target_checkpoint == "v2"


# ---------------------------------------------------------------------------------------------- conditions


CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def test_conditions_follow_metav1_conventions_through_a_whole_scenario() -> None:
    sim = _scenario()
    sim.spec = sim.spec.model_copy()  # keep generation bumps explicit below
    previous: ModelRolloutStatus | None = None
    for i in range(60):
        if i == GATE_AT:
            sim.gate("promote")
        if i == 40:
            sim.generation += 1  # e.g. a label-only spec change
        t = sim.tick(5)
        s = t.status
        types = [c.type for c in s.conditions or []]
        assert len(types) == len(set(types))
        for c in s.conditions or []:
            assert CAMEL.match(c.type) and CAMEL.match(c.reason), c
            assert c.status in ("True", "False", "Unknown")
            assert parse_ts(c.last_transition_time) is not None
            assert c.observed_generation is not None and c.observed_generation <= sim.generation
            old = next((o for o in (previous.conditions if previous else None) or [] if o.type == c.type), None)
            if old is None or old.status != c.status:
                assert c.last_transition_time == ts(t.now), c
            else:
                assert c.last_transition_time == old.last_transition_time, (old, c)
        assert cond(s, "Ready").observed_generation == sim.generation
        assert s.observed_generation == sim.generation
        previous = s
    _assert_scenario_ran(sim)


def test_a_condition_flipped_and_back_in_one_reconcile_keeps_its_transition_time() -> None:
    spec = make_spec([{"setWeight": 25}, {"pause": {"duration": "20s"}}, {"pause": {"duration": "20s"}}])
    sim = Sim(spec)
    sim.start()  # t=1: first pause
    assert sim.status is not None and cond(sim.status, "Paused").last_transition_time == iso(1)
    t = sim.tick(20)  # t=21: the first pause ends and the second begins in the same reconcile
    assert t.status.current_step == 2 and t.status.phase == "Paused"
    paused = cond(t.status, "Paused")
    assert paused.status == "True" and paused.last_transition_time == iso(1)  # True as stored: no transition
    assert paused.message == f"paused at step 3/3 until {iso(41)}"


def test_paused_condition_tracks_the_phase() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"pause": {}}]))
    for _ in range(20):
        t = sim.tick(3)
        if t.status.phase in ("Paused", "Progressing"):
            assert (cond(t.status, "Paused").status == "True") == (t.status.phase == "Paused")


# ---------------------------------------------------------------------------------------------- requeue


def test_requeue_is_always_sane() -> None:
    sim = _scenario()
    _drive(sim, lambda s: None)
    _assert_scenario_ran(sim)
    for t in sim.ticks:
        assert 0.2 <= t.decision.requeue_after <= ERROR_REQUEUE_MAX


def test_following_requeue_alone_completes_a_rollout_promptly() -> None:
    spec = make_spec(
        [{"setWeight": 25}, {"analyze": {"duration": "5m"}}, {"pause": {"duration": "2m"}}], analysis={"interval": "1m"}
    )
    sim = Sim(spec)
    sim.follow(40)
    promoted_at = parse_ts(sim.status.promoted_at if sim.status else None)
    assert promoted_at is not None
    # Started at 0; canary ready at 1; five looks 61..301; pause 301..421; promoted a second later.
    assert promoted_at == at(422)
    ticks_until = next(i for i, t in enumerate(sim.ticks) if t.status.phase == "Promoted")
    assert ticks_until <= 20  # no busy polling during the analysis or the pause


def test_analysis_requeue_wakes_at_the_step_end_if_sooner() -> None:
    spec = make_spec([{"setWeight": 25}, {"analyze": {"duration": "45s"}}], analysis={"interval": "30s"})
    sim = Sim(spec)
    sim.start()  # t=1
    t = sim.tick(30)  # t=31: look 1; next look would be at 61, the step ends at 46
    assert t.decision.requeue_after == 15.0


def test_requeue_while_waiting_for_a_gate_or_idle_is_the_heartbeat() -> None:
    sim = Sim(make_spec(checkpoint="v1"))
    assert sim.tick().decision.requeue_after == IDLE_REQUEUE


# ---------------------------------------------------------------------------------------------- clock


@pytest.mark.parametrize(
    "now",
    [
        datetime(2025, 3, 1, 12, 0, 0),  # naive: taken as UTC
        datetime(2025, 3, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 3, 1, 7, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_timestamps_are_utc_whatever_clock_the_shell_passes(now: datetime) -> None:
    world = World(target=TargetState("v1", 4, 4, True), canary=None)
    d = reconcile(make_spec(), None, generation=1, world=world, now=now)
    assert d.status.rollout_started_at == "2025-03-01T12:00:00Z"
    assert cond(d.status, "Ready").last_transition_time == "2025-03-01T12:00:00Z"
    # And a later tick with that clock compares correctly with the stored times.
    status = roundtrip(d.status)
    world = World(target=TargetState("v1", 4, 4, True), canary=CanaryState("v2", 1, 1))
    d = reconcile(make_spec(), status, generation=1, world=world, now=now + timedelta(seconds=1))
    assert d.status.current_step == 1 and d.status.step_started_at == "2025-03-01T12:00:01Z"


def test_ts_and_parse_ts_round_trip_in_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert ts(datetime(2025, 3, 1, 14, 0, 0, tzinfo=plus2)) == "2025-03-01T12:00:00Z"
    assert ts(datetime(2025, 3, 1, 12, 0, 0)) == "2025-03-01T12:00:00Z"  # naive is UTC
    assert ts(datetime(2025, 3, 1, 14, 0, 0, 500, tzinfo=plus2)) == "2025-03-01T12:00:00.000500Z"
    assert parse_ts("2025-03-01T12:00:00Z") == datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_ts("2025-03-01T14:00:00+02:00") == datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_ts("2025-03-01T12:00:00") == datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_ts(None) is None and parse_ts("") is None


def test_sub_second_clock() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    world = World(target=TargetState("v1", 4, 4, True), canary=None)
    d = reconcile(make_spec(), None, generation=1, world=world, now=now)
    assert d.status.rollout_started_at == "2025-03-01T12:00:00.250000Z"
    assert parse_ts(d.status.rollout_started_at) == now


def test_notify_carries_the_checkpoint() -> None:
    sim = Sim(make_spec())
    t = sim.tick()
    started = [a for a in t.actions if isinstance(a, Notify)]
    assert started == [Notify("started", "rolling out v2 (stable v1)", "v2")]
