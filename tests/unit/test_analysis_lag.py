"""The due time the lag metric measures from is the one the state machine keeps: an analysis is due exactly then,
and not a second earlier, in the canary steps and in the post-promotion watch."""

from __future__ import annotations

from datetime import timedelta

from modelratchet.analysis import due_at, observe_lag
from modelratchet.rollout import analysis_due
from modelratchet.telemetry import REGISTRY
from rollout_sim import Sim, make_spec

STEPS = [{"setWeight": 25}, {"analyze": {"duration": "5m"}}]


def _check_due_times(sim: Sim, stage: str, looks: int) -> None:
    seen = 0
    for _ in range(600):
        status = sim.current_status()
        tick = sim.tick(1.0)
        if tick.request is not None and tick.request.stage == stage:
            due = due_at(sim.spec, status)
            assert due is not None and due <= tick.now
            # Due at that second, not one earlier: the metric measures from the machine's own due time.
            assert analysis_due(sim.spec, status, due) is not None
            assert analysis_due(sim.spec, status, due - timedelta(seconds=1)) is None
            seen += 1
            if seen == looks:
                return
    raise AssertionError(f"only {seen} {stage} analyses in 600 ticks")


def test_due_time_matches_the_state_machine_in_canary_steps() -> None:
    sim = Sim(make_spec(STEPS, analysis={"interval": "7s"}))
    sim.start()
    _check_due_times(sim, "canary", looks=4)


def test_due_time_matches_the_state_machine_after_promotion() -> None:
    spec = make_spec(
        [{"setWeight": 50}, {"analyze": {"duration": "10s"}}],
        analysis={"interval": "5s"},
        postPromotion={"watch": "1m"},
    )
    sim = Sim(spec)
    sim.start()
    sim.run_until(lambda s: s.phase == "Promoted")
    _check_due_times(sim, "postPromotion", looks=3)


def test_no_due_time_when_nothing_is_analysed() -> None:
    sim = Sim(make_spec(STEPS, checkpoint="v1"))  # the target already serves it: nothing to roll out
    sim.start()
    assert sim.phase == "Idle"
    assert due_at(sim.spec, sim.current_status()) is None


def test_lag_is_recorded_from_the_due_time() -> None:
    sim = Sim(make_spec(STEPS, analysis={"interval": "7s"}))
    sim.start()
    sim.run(2)  # in the analyze step, the first analysis due an interval after it began
    status = sim.current_status()
    due = due_at(sim.spec, status)
    assert due is not None
    name = "modelratchet_analysis_lag_seconds"

    def sample(suffix: str, le: str | None = None) -> float:
        value = REGISTRY.get_sample_value(name + suffix, {"le": le} if le else {})
        return value or 0.0

    before = {k: sample(*k) for k in (("_count",), ("_sum",), ("_bucket", "1.0"), ("_bucket", "1.5"))}
    observe_lag(sim.spec, status, due + timedelta(seconds=1.2))
    assert sample("_count") == before[("_count",)] + 1
    assert abs(sample("_sum") - before[("_sum",)] - 1.2) < 1e-9
    # 1.2 s lands in the 1.5 s bucket, not the 1 s one.
    assert sample("_bucket", "1.0") == before[("_bucket", "1.0")]
    assert sample("_bucket", "1.5") == before[("_bucket", "1.5")] + 1
