"""Analysis policies of the rollout state machine: failureLimit, inconclusiveLimit and onInconclusive,
warningPolicy, escalateAfter, cooldown, rejected checkpoints and the post-promotion watch."""

from __future__ import annotations

from typing import Any

from modelratchet.api.baseline import Verdict
from modelratchet.rollout import DeleteCanary, EnsureCanary, SetTargetCheckpoint
from modelratchet.rollout.machine import IDLE_REQUEUE
from rollout_sim import Sim, at, cond, events, iso, make_spec, metric, notifications, report, world_actions

F: Verdict = "failed"
P: Verdict = "passed"
W: Verdict = "warning"
I: Verdict = "inconclusive"  # noqa: E741
# What the status says while spec.checkpoint still names the rejected v2 (with GitOps: git does), v1 serving.
REJECTED_V2 = (
    "spec.checkpoint v2 was rejected; v1 keeps serving. Set spec.checkpoint to another checkpoint (with GitOps:"
    " revert the commit that set v2, or commit a new checkpoint), or run `modelratchet retry` to roll v2 out again"
)


def analyzing(verdicts: list[Verdict], duration: str = "2m", **spec: Any) -> Sim:
    """setWeight 25 -> analyze <duration> -> manual pause; interval 30s. Returns at t=1 with the analysis begun,
    so looks come at t=31, 61, 91, ... and the step ends at 1 + duration."""
    analysis = {"interval": "30s", **spec.pop("analysis", {})}
    s = make_spec(
        [{"setWeight": 25}, {"analyze": {"duration": duration}}, {"pause": {}}],
        analysis=analysis,
        **spec,
    )
    sim = Sim(s, script=[report(v, f"verdict {v}") for v in verdicts])
    sim.start()
    assert sim.status is not None and sim.status.current_step == 1
    return sim


def step(sim: Sim) -> int | None:
    return sim.status.current_step if sim.status else None


# ---------------------------------------------------------------------------------------------- failures


def test_a_failed_analysis_rolls_back_at_once_by_default() -> None:
    sim = analyzing([F])
    sim.script = [report("failed", "accuracy 0.80 < 0.90")]
    t = sim.tick(30)
    assert t.request is not None
    assert world_actions(t.actions) == [DeleteCanary()]
    assert events(t.actions) == ["RolledBack"]
    assert notifications(t.actions) == ["analysis", "rolledBack"]
    s = t.status
    assert s.phase == "RolledBack"
    assert s.rejected_checkpoints == ["v2"]
    assert s.rolled_back_at == iso(31) and s.first_failure_at == iso(31)
    assert s.canary_checkpoint is None and s.current_step is None and s.canary_weight == 0
    assert s.stable_checkpoint == "v1" and s.last_good_checkpoints == ["v1"]
    assert s.failed_analyses == 1 and s.last_verdict == "failed"
    assert s.message == "rolled back v2, serving v1: analysis failed: accuracy 0.80 < 0.90"
    assert (cond(s, "RolledBack").status, cond(s, "RolledBack").reason) == ("True", "AnalysisFailed")
    assert (cond(s, "Progressing").status, cond(s, "Progressing").reason) == ("False", "AnalysisFailed")
    assert (cond(s, "Promoted").status, cond(s, "Promoted").reason) == ("False", "AnalysisFailed")
    assert cond(s, "Paused").status == "False"
    assert (cond(s, "AnalysisPassing").status, cond(s, "AnalysisPassing").reason) == ("False", "Failed")
    assert sim.canary is None and sim.target_checkpoint == "v1"
    assert not any(isinstance(a, SetTargetCheckpoint) for a in sim.applied)  # the target was never touched
    # The rejected checkpoint stays out, however long we wait.
    t = sim.tick(30)
    assert t.actions == [] and t.request is None
    assert t.status.phase == "RolledBack"
    assert t.status.message == REJECTED_V2
    assert (cond(t.status, "Progressing").status, cond(t.status, "Progressing").reason) == (
        "False",
        "CheckpointRejected",
    )
    assert cond(t.status, "RolledBack").reason == "AnalysisFailed"
    for _ in range(3):
        t = sim.tick(86400)
        assert t.actions == [] and t.status.phase == "RolledBack" and t.decision.requeue_after == IDLE_REQUEUE
    assert sim.all_events().count("RolloutStarted") == 1


def test_failure_limit_tolerates_that_many_failures() -> None:
    sim = analyzing([F, F, P, P], analysis={"failureLimit": 2})
    for _ in range(4):
        sim.tick(30)
    assert sim.phase == "Paused" and step(sim) == 2  # advanced at t=121 to the manual pause
    assert sim.status is not None and sim.status.failed_analyses == 2
    assert sim.status.first_failure_at == iso(31)


def test_failure_limit_exceeded_rolls_back() -> None:
    sim = analyzing([F, F, F], analysis={"failureLimit": 2})
    sim.tick(30)
    sim.tick(30)
    assert sim.phase == "Progressing"
    t = sim.tick(30)
    assert t.status.phase == "RolledBack" and t.status.failed_analyses == 3
    assert t.status.first_failure_at == iso(31)


def test_a_step_cannot_end_on_a_tolerated_failure() -> None:
    sim = analyzing([P, P, P, F, P], analysis={"failureLimit": 1})
    for _ in range(4):
        sim.tick(30)
    assert sim.now == at(121)  # the step's end
    assert step(sim) == 1 and sim.phase == "Progressing"  # last look failed: keep analyzing past the end
    t = sim.tick(30)
    assert step(sim) == 2 and t.now == at(151)


def test_failed_counts_are_per_rollout_not_per_step() -> None:
    s = make_spec(
        [{"setWeight": 25}, {"analyze": {"duration": "30s"}}, {"analyze": {"duration": "30s"}}],
        analysis={"interval": "30s", "failureLimit": 1},
    )
    sim = Sim(s, script=[report("failed"), report("passed"), report("failed")])
    sim.start()
    sim.tick(30)  # t=31 F (tolerated), step 1 cannot end on it
    assert step(sim) == 1
    sim.tick(30)  # t=61 P -> step 2
    assert step(sim) == 2
    t = sim.tick(30)  # t=91 F: the second failure of this rollout
    assert t.status.phase == "RolledBack"


# ---------------------------------------------------------------------------------------------- inconclusive


def test_inconclusive_past_the_limit_rolls_back_by_default() -> None:
    sim = analyzing([I, I, I], analysis={"inconclusiveLimit": 2})
    sim.tick(30)
    sim.tick(30)
    assert sim.phase == "Progressing" and sim.status is not None and sim.status.inconclusive_analyses == 2
    t = sim.tick(30)
    assert t.status.phase == "RolledBack"
    assert cond(t.status, "RolledBack").reason == "InconclusiveLimit"
    assert t.status.message == "rolled back v2, serving v1: no conclusive data: verdict inconclusive"
    assert (cond(t.status, "AnalysisPassing").status, cond(t.status, "AnalysisPassing").reason) == (
        "False",
        "Inconclusive",
    )
    assert t.status.rejected_checkpoints == ["v2"]


def test_inconclusive_limit_zero_fails_closed_at_once() -> None:
    sim = analyzing([I], analysis={"inconclusiveLimit": 0})
    assert sim.tick(30).status.phase == "RolledBack"


def test_a_judge_asking_for_more_samples_is_not_counted_until_the_step_ends() -> None:
    sim = analyzing([], analysis={"inconclusiveLimit": 0})
    sim.script = [report("inconclusive", pending=True) for _ in range(4)]
    for _ in range(3):
        t = sim.tick(30)  # t=31, 61, 91
        assert t.status.phase == "Progressing" and t.status.inconclusive_analyses == 0
    t = sim.tick(30)  # t=121: the step's duration is over, still pending -> as good as no data
    assert t.status.phase == "RolledBack" and t.status.inconclusive_analyses == 1


def test_query_problems_are_reported_on_the_analysis_condition() -> None:
    sim = analyzing([])
    sim.script = [report("inconclusive", problems=["prometheus unreachable", "no series for accuracy"])]
    t = sim.tick(30)
    c = cond(t.status, "AnalysisPassing")
    assert (c.status, c.reason) == ("False", "QueryError")
    assert c.message == "prometheus unreachable; no series for accuracy"


def test_hold_waits_for_data_and_resumes() -> None:
    sim = analyzing([I, I, I, P, P], duration="5m", analysis={"inconclusiveLimit": 1, "onInconclusive": "hold"})
    t = sim.tick(30)  # t=31 I (1)
    assert t.status.phase == "Progressing"
    t = sim.tick(30)  # t=61 I (2 > 1) -> hold
    assert t.status.phase == "Paused"
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("True", "WaitingForData")
    assert t.status.message == "holding: waiting for data (verdict inconclusive)"
    assert events(t.actions) == ["WaitingForData"]
    assert notifications(t.actions) == ["analysis", "paused"]
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)]  # the canary stays for the next look
    assert t.decision.requeue_after == 30.0
    t = sim.tick(30)  # t=91 I (3): still holding, analyses go on, no new event
    assert t.request is not None and t.status.phase == "Paused"
    assert events(t.actions) == [] and notifications(t.actions) == ["analysis"]
    t = sim.tick(30)  # t=121 P: data is back
    assert t.status.phase == "Progressing" and t.status.inconclusive_analyses == 0
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("False", "DataReturned")
    assert events(t.actions) == ["Resumed"]
    assert step(sim) == 1
    sim.run_until(lambda s: step(s) == 2, dt=30)
    assert sim.now == at(301)  # the step ran its full 5m


def test_hold_never_rolls_back_while_data_is_missing() -> None:
    sim = analyzing([], analysis={"inconclusiveLimit": 0, "onInconclusive": "hold"})
    sim.default_report = report("inconclusive")
    for _ in range(120):  # an hour
        sim.tick(30)
    assert sim.phase == "Paused" and step(sim) == 1
    assert sim.status is not None and sim.status.inconclusive_analyses == 120
    assert sim.history_ids[0] == 120 and len(sim.history_ids) == 50  # historyLimit default
    assert sim.all_events().count("WaitingForData") == 1


def test_proceed_fails_open_past_the_limit_and_says_so() -> None:
    sim = analyzing([I, I], duration="1m", analysis={"inconclusiveLimit": 1, "onInconclusive": "proceed"})
    t = sim.tick(30)  # t=31 (1)
    assert t.status.phase == "Progressing" and "InconclusiveProceeding" not in events(t.actions)
    t = sim.tick(30)  # t=61 (2 > 1), the step is over -> proceed
    assert "InconclusiveProceeding" in events(t.actions)
    assert step(sim) == 2


def test_proceed_below_the_limit_keeps_looking_like_the_other_policies() -> None:
    sim = analyzing([I, I, I, I], duration="1m", analysis={"inconclusiveLimit": 3, "onInconclusive": "proceed"})
    sim.tick(30)
    t = sim.tick(30)  # t=61: the step is over but only 2 of 3 tolerated inconclusive looks are used
    assert step(sim) == 1 and t.status.phase == "Progressing"
    assert t.status.message == "analyzing v2 at step 2/3 (2 analyses)"
    sim.tick(30)
    assert step(sim) == 1
    t = sim.tick(30)  # t=121: 4 > 3 -> fail open, recorded
    assert step(sim) == 2 and "InconclusiveProceeding" in events(t.actions)


def test_proceed_does_not_end_a_step_on_an_inconclusive_look_below_the_limit() -> None:
    sim = analyzing([P, I, P], duration="1m", analysis={"onInconclusive": "proceed"})
    sim.tick(30)
    sim.tick(30)  # t=61: last look inconclusive (1 of 3)
    assert step(sim) == 1
    sim.tick(30)  # t=91: passed
    assert step(sim) == 2


# ---------------------------------------------------------------------------------------------- warnings


def test_warnings_proceed_by_default() -> None:
    sim = analyzing([W, W], duration="1m")
    t = sim.tick(30)
    assert (cond(t.status, "AnalysisPassing").status, cond(t.status, "AnalysisPassing").reason) == ("True", "Warning")
    sim.tick(30)
    assert step(sim) == 2
    assert sim.status is not None and sim.status.consecutive_warnings == 2


def test_warning_blocks_when_the_policy_says_so() -> None:
    sim = analyzing([W, P, P], duration="5m", analysis={"warningPolicy": "block"})
    t = sim.tick(30)
    assert t.status.phase == "Paused" and step(sim) == 1
    assert (cond(t.status, "Paused").status, cond(t.status, "Paused").reason) == ("True", "WarningBlocked")
    assert t.status.message == (
        "blocked by a warning: verdict warning; `modelratchet promote` to accept, `abort` to reject"
    )
    assert events(t.actions) == ["WarningBlocked"]
    assert notifications(t.actions) == ["analysis", "paused"]
    assert t.decision.requeue_after == 30.0
    # Later passes do not unblock by themselves: a person accepts or rejects the warning.
    for _ in range(2):
        t = sim.tick(30)
        assert t.request is not None and t.status.phase == "Paused" and events(t.actions) == []
    sim.run(20, dt=30)  # far past the step's end
    assert sim.phase == "Paused" and step(sim) == 1


def test_a_second_warning_while_blocked_does_not_repeat_the_event() -> None:
    sim = analyzing([W, W], duration="5m", analysis={"warningPolicy": "block"})
    sim.tick(30)
    t = sim.tick(30)
    assert t.status.phase == "Paused" and events(t.actions) == []


def test_consecutive_warnings_escalate_to_a_failure() -> None:
    sim = analyzing([W, W], analysis={"escalateAfter": 2})
    t = sim.tick(30)
    assert t.status.phase == "Progressing" and t.status.consecutive_warnings == 1
    t = sim.tick(30)
    assert t.status.phase == "RolledBack"
    assert events(t.actions) == ["WarningEscalated", "RolledBack"]
    assert cond(t.status, "RolledBack").reason == "AnalysisFailed"
    assert t.status.last_verdict == "failed" and t.status.failed_analyses == 1
    assert [h.verdict for h in t.status.history or []] == ["warning", "warning"]  # history records what was seen


def test_a_pass_resets_the_warning_streak() -> None:
    sim = analyzing([W, P, W, P], analysis={"escalateAfter": 2})
    for _ in range(4):
        sim.tick(30)
    assert step(sim) == 2 and sim.phase == "Paused"
    assert sim.status is not None and sim.status.failed_analyses == 0


def test_missing_data_does_not_break_a_warning_streak() -> None:
    sim = analyzing([W, I, W], analysis={"escalateAfter": 2})
    sim.tick(30)
    sim.tick(30)
    t = sim.tick(30)
    assert t.status.phase == "RolledBack" and "WarningEscalated" in events(t.actions)


def test_an_escalated_warning_within_the_failure_limit_cannot_end_the_step() -> None:
    sim = analyzing([W, W, P], duration="1m", analysis={"escalateAfter": 2, "failureLimit": 1})
    sim.tick(30)
    t = sim.tick(30)  # t=61: escalated (tolerated); the step is over but may not end on a failure
    assert t.status.phase == "Progressing" and step(sim) == 1
    assert (cond(t.status, "AnalysisPassing").status, cond(t.status, "AnalysisPassing").reason) == (
        "False",
        "WarningEscalated",
    )
    assert t.status.message == "analyzing v2 at step 2/3 (2 analyses)"
    sim.tick(30)  # t=91 P
    assert step(sim) == 2


def test_escalation_beats_blocking() -> None:
    sim = analyzing([W, W], duration="5m", analysis={"escalateAfter": 2, "warningPolicy": "block"})
    assert sim.tick(30).status.phase == "Paused"
    t = sim.tick(30)  # the second warning while blocked escalates
    assert t.status.phase == "RolledBack"


# ---------------------------------------------------------------------------------------------- cooldown


def test_cooldown_after_a_rollback_delays_the_next_rollout() -> None:
    sim = analyzing([F], cooldown="10m")
    sim.tick(30)  # rolled back at t=31
    assert sim.phase == "RolledBack"
    sim.set_spec(checkpoint="v3")
    t = sim.tick(30)  # t=61
    assert t.status.phase == "RolledBack" and t.actions == []
    assert t.status.message == "cooling down after a rollback; v3 starts in 570s"
    assert (cond(t.status, "Progressing").status, cond(t.status, "Progressing").reason) == ("False", "CoolingDown")
    assert t.decision.requeue_after == IDLE_REQUEUE  # min(570s, heartbeat)
    t = sim.tick(569)  # t=630, a second early
    assert t.status.phase == "RolledBack" and t.decision.requeue_after == 1.0
    t = sim.tick(1)  # t=631
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v3"
    assert t.status.rollout_started_at == iso(631)


def test_following_the_requeue_starts_right_when_the_cooldown_ends() -> None:
    sim = analyzing([F], cooldown="95s")
    sim.tick(30)  # rolled back at t=31; the next rollout may start at t=126
    sim.set_spec(checkpoint="v3")
    sim.tick(0)
    sim.follow(6)
    started = [t for t in sim.ticks if "RolloutStarted" in events(t.actions)]
    assert started[-1].now == at(126)


def test_no_cooldown_by_default() -> None:
    sim = analyzing([F])
    sim.tick(30)
    sim.set_spec(checkpoint="v3")
    t = sim.tick(1)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v3"


def test_cooldown_also_follows_a_post_promotion_revert() -> None:
    s = make_spec([{"setWeight": 25}], cooldown="5m", postPromotion={"watch": "5m"}, analysis={"interval": "30s"})
    sim = Sim(s, script=[report("failed")])
    sim.start()
    sim.tick(1)  # promoted at t=2
    assert sim.phase == "Promoted"
    t = sim.tick(30)  # t=32: regression -> revert
    assert t.status.phase == "RolledBack"
    sim.set_spec(checkpoint="v3")
    t = sim.tick(10)
    assert cond(t.status, "Progressing").reason == "CoolingDown"


# ---------------------------------------------------------------------------------------------- rejected


def test_a_rejected_checkpoint_stays_rejected_across_later_rollouts() -> None:
    sim = analyzing([F])
    sim.tick(30)
    sim.set_spec(checkpoint="v3")
    sim.run_until(lambda s: s.phase == "Paused", dt=30)  # v3 passed its analysis and waits at the manual gate
    sim.gate("promote")
    sim.run_until(lambda s: s.phase == "Promoted", dt=1)
    assert sim.status is not None and sim.status.stable_checkpoint == "v3"
    sim.set_spec(checkpoint="v2")  # someone points git back at the rejected one
    for _ in range(5):
        t = sim.tick(60)
        assert world_actions(t.actions) == [] and t.status.phase == "Promoted"
        assert cond(t.status, "Progressing").reason == "CheckpointRejected"
    assert sim.target_checkpoint == "v3"


def test_rejected_list_is_bounded_newest_first() -> None:
    s = make_spec([{"setWeight": 25}, {"analyze": {"duration": "30s"}}], analysis={"interval": "30s"})
    sim = Sim(s, default_report=report("failed"))
    for i in range(55):
        sim.set_spec(checkpoint=f"c{i}")
        sim.start()
        sim.tick(30)
        assert sim.phase == "RolledBack", i
    assert sim.status is not None and sim.status.rejected_checkpoints is not None
    assert len(sim.status.rejected_checkpoints) == 50
    assert sim.status.rejected_checkpoints[:2] == ["c54", "c53"]


# ---------------------------------------------------------------------------------------------- post-promotion


def promoted(verdicts: list[Verdict], watch: str = "2m", **spec: Any) -> Sim:
    """setWeight 25 -> analyze 1m, watch after promotion. Canary looks at t=31, 61; promoted at t=62; watch looks
    at t=92, 122, 152; the watch ends at t=182."""
    analysis = {"interval": "30s", **spec.pop("analysis", {})}
    s = make_spec(
        [{"setWeight": 25}, {"analyze": {"duration": "1m"}}],
        analysis=analysis,
        postPromotion={"watch": watch},
        **spec,
    )
    sim = Sim(s, script=[report(v, f"verdict {v}") for v in verdicts])
    sim.start()
    sim.tick(30)
    sim.tick(30)
    t = sim.tick(1)
    assert t.status.phase == "Promoted" and t.status.promoted_at == iso(62)
    return sim


def test_promotion_starts_a_watch() -> None:
    sim = promoted([P, P])
    assert sim.status is not None
    assert sim.status.post_promotion_until == iso(182)
    assert sim.status.message == f"promoted v2 (was v1); watching until {iso(182)}"
    assert sim.ticks[-1].decision.requeue_after == 1.0


def test_watch_analyses_judge_the_promoted_checkpoint_against_the_previous_one() -> None:
    sim = promoted([P, P, P, P, P])
    t = sim.tick(30)  # t=92
    r = t.request
    assert r is not None
    assert (r.stage, r.checkpoint, r.stable_checkpoint) == ("postPromotion", "v2", "v1")
    assert (r.look, r.max_looks, r.window_seconds, r.interval_seconds) == (1, 4, 30.0, 30.0)
    # What v1 measured during v2's canary (its value, and its counts when the canary recorded them).
    assert {k: v.baseline for k, v in r.recorded_baselines.items()} == {"accuracy": 0.92}
    h = (t.status.history or [])[0]
    assert (h.id, h.stage, h.step, h.checkpoint, h.verdict) == (3, "postPromotion", None, "v2", "passed")
    assert t.decision.requeue_after == 30.0
    assert t.actions == [t.actions[0]] and notifications(t.actions) == ["analysis"]
    sim.tick(30)
    sim.tick(30)  # t=152
    t = sim.tick(30)  # t=182: the final look, and the watch is over
    assert t.request is not None and (t.request.look, t.request.max_looks) == (4, 4)
    assert events(t.actions) == ["WatchCompleted"]
    assert t.status.post_promotion_until is None and t.status.phase == "Promoted"
    assert t.status.message == "serving v2"
    t = sim.tick(30)
    assert t.request is None and t.actions == []
    assert sim.history_ids == [6, 5, 4, 3, 2, 1]


def test_a_regression_at_the_final_look_of_the_watch_still_reverts() -> None:
    sim = promoted([P, P, P, P, P, F])
    sim.run(3, dt=30)  # t=92, 122, 152
    t = sim.tick(30)  # t=182: the last look fails
    assert t.status.phase == "RolledBack" and events(t.actions) == ["Reverted"]


def test_a_late_tick_still_takes_the_final_look_of_the_watch_but_no_later_one() -> None:
    sim = promoted([P, P, P, P, P, F])
    sim.run(3, dt=30)  # t=92, 122, 152
    t = sim.tick(45)  # t=197: the look due at 182 (the watch's end) is still taken
    assert t.request is not None and t.request.look == 4
    assert t.status.phase == "RolledBack"
    sim2 = promoted([P, P], watch="100s")  # looks at 92, 122, 152; the next one (182) is past the end (162)
    sim2.run(3, dt=30)
    t = sim2.tick(30)  # t=182
    assert t.request is None and "WatchCompleted" in events(t.actions)
    assert [r.max_looks for r in (x.request for x in sim2.ticks) if r and r.stage == "postPromotion"] == [3, 3, 3]


def test_recorded_baselines_skip_metrics_without_a_baseline() -> None:
    sim = Sim(
        make_spec(
            [{"setWeight": 25}, {"analyze": {"duration": "30s"}}],
            analysis={"interval": "30s"},
            postPromotion={"watch": "2m"},
        ),
        script=[report("passed", metrics=[metric("accuracy", 0.9, 0.91), metric("latency", 0.2, None)])],
    )
    sim.start()
    sim.tick(30)
    sim.tick(1)
    assert sim.phase == "Promoted"
    t = sim.tick(30)
    assert t.request is not None
    assert {k: v.baseline for k, v in t.request.recorded_baselines.items()} == {"accuracy": 0.91}


def test_a_regression_after_promotion_reverts_to_the_previous_checkpoint() -> None:
    sim = promoted([P, P, P])
    sim.script = [report("passed"), report("failed", "p99 latency 900ms > 500ms")]
    sim.tick(30)  # t=92 P
    t = sim.tick(30)  # t=122 F
    assert world_actions(t.actions) == [SetTargetCheckpoint("v1")]
    assert events(t.actions) == ["Reverted"]
    assert notifications(t.actions) == ["analysis", "reverted"]
    s = t.status
    assert s.phase == "RolledBack"
    assert s.stable_checkpoint == "v1" and s.previous_checkpoint is None
    assert s.rejected_checkpoints == ["v2"] and s.last_good_checkpoints == ["v1"]
    assert s.post_promotion_until is None and s.rolled_back_at == iso(122)
    assert s.message == "reverted v2 to v1: regressed after promotion: p99 latency 900ms > 500ms"
    assert (cond(s, "Promoted").status, cond(s, "Promoted").reason) == ("False", "PostPromotionRegression")
    assert (cond(s, "RolledBack").status, cond(s, "RolledBack").reason) == ("True", "PostPromotionRegression")
    assert (s.history or [])[0].verdict == "failed" and (s.history or [])[0].stage == "postPromotion"
    assert s.first_failure_at == iso(122)
    assert sim.target_checkpoint == "v1"
    t = sim.tick(30)
    assert t.actions == [] and t.request is None
    assert t.status.message == REJECTED_V2


def test_watch_failure_limit() -> None:
    sim = promoted([P, P, F, P, F], analysis={"failureLimit": 1})
    sim.tick(30)  # t=92 F (1, tolerated)
    assert sim.phase == "Promoted"
    sim.tick(30)  # t=122 P
    t = sim.tick(30)  # t=152 F (2)
    assert t.status.phase == "RolledBack" and sim.target_checkpoint == "v1"


def test_canary_failures_do_not_count_against_the_watch() -> None:
    sim = promoted([F, P, P, F], analysis={"failureLimit": 1})  # one tolerated canary failure at t=31
    assert sim.status is not None and sim.status.failed_analyses == 0
    sim.tick(30)  # t=92 P
    t = sim.tick(30)  # t=122 F: the first failure of the watch, tolerated
    assert t.status.phase == "Promoted"


def test_watch_inconclusive_reverts_when_failing_closed() -> None:
    sim = promoted([P, P, I, I], analysis={"inconclusiveLimit": 1})
    sim.tick(30)
    assert sim.phase == "Promoted"
    t = sim.tick(30)
    assert t.status.phase == "RolledBack" and cond(t.status, "RolledBack").reason == "InconclusiveLimit"
    assert t.status.message is not None and "no conclusive data after promotion" in t.status.message


def test_watch_inconclusive_is_tolerated_when_holding_or_proceeding() -> None:
    for policy in ("hold", "proceed"):
        sim = promoted([P, P, I, I, I], analysis={"inconclusiveLimit": 0, "onInconclusive": policy})
        sim.run(4, dt=30)
        assert sim.phase == "Promoted" and sim.target_checkpoint == "v2", policy


def test_watch_pending_inconclusive_is_not_counted() -> None:
    sim = promoted([P, P], analysis={"inconclusiveLimit": 0})
    sim.script = [report("inconclusive", pending=True)] * 3
    sim.run(3, dt=30)
    assert sim.phase == "Promoted" and sim.status is not None and sim.status.inconclusive_analyses == 0


def test_watch_escalates_consecutive_warnings() -> None:
    sim = promoted([P, P, W, W], analysis={"escalateAfter": 2})
    sim.tick(30)
    assert sim.phase == "Promoted"
    t = sim.tick(30)
    assert t.status.phase == "RolledBack"
    assert events(t.actions) == ["WarningEscalated", "Reverted"]


def test_canary_warnings_do_not_carry_into_the_watch() -> None:
    sim = promoted([P, W, W], analysis={"escalateAfter": 2})  # one warning at the end of the canary
    assert sim.status is not None and sim.status.consecutive_warnings == 0
    t = sim.tick(30)
    assert t.status.phase == "Promoted" and t.status.consecutive_warnings == 1


def test_a_new_checkpoint_during_the_watch_ends_it_and_rolls_out() -> None:
    sim = promoted([P, P])
    sim.tick(30)
    sim.set_spec(checkpoint="v3")
    t = sim.tick(5)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "v3"
    assert t.status.post_promotion_until is None
    assert t.status.stable_checkpoint == "v2"
    assert world_actions(t.actions) == [EnsureCanary("v3", 1)]


def test_revert_without_an_earlier_good_checkpoint() -> None:
    s = make_spec([{"setWeight": 25}], analysis={"interval": "30s"}, postPromotion={"watch": "2m"})
    sim = Sim(s, target_checkpoint=None, script=[report("failed")])
    sim.start()
    sim.tick(1)
    assert sim.phase == "Promoted" and sim.status is not None and sim.status.previous_checkpoint is None
    t = sim.tick(30)
    assert events(t.actions) == ["RevertImpossible"]
    assert world_actions(t.actions) == []
    assert t.status.phase == "Failed" and t.status.post_promotion_until is None
    assert "no earlier good checkpoint" in (t.status.message or "")
    assert sim.target_checkpoint == "v2"
    # It stays Failed (and keeps serving) until a new checkpoint is asked for.
    assert sim.tick(60).status.phase == "Failed"
    sim.set_spec(checkpoint="v3")
    assert sim.tick(1).status.phase == "Progressing"


def test_revert_falls_back_to_the_last_good_list() -> None:
    sim = promoted([P, P])
    assert sim.status is not None
    # e.g. a status written by an older operator without previousCheckpoint
    sim.status = sim.status.model_copy(update={"previous_checkpoint": None, "last_good_checkpoints": ["v2", "v0"]})
    sim.script = [report("failed")]
    t = sim.tick(30)
    assert world_actions(t.actions) == [SetTargetCheckpoint("v0")]
    assert t.status.stable_checkpoint == "v0" and t.status.last_good_checkpoints == ["v0"]
