"""Traffic routing in the pure core: exact weights, header routes and mirrors with a router, the candidate's pod
count independent of its share, steps that end only once the route is verified, and the window analyses use."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.api.rollout import ModelRolloutSpec
from modelratchet.rollout import DeleteCanary, EnsureCanary, RouteState, SetRoute
from modelratchet.rollout.machine import parse_ts
from modelratchet.rollout.traffic import STABLE_ONLY, wanted_canary_replicas
from pydantic import ValidationError
from rollout_sim import Sim, events, iso, make_spec, report, world_actions

ROUTER = {"gatewayAPI": {"httpRoute": "digits", "stableService": "digits-stable"}}


def routed(steps: list[dict[str, Any]], **extra: Any) -> ModelRolloutSpec:
    routing = {**ROUTER, **extra.pop("trafficRouting", {})}
    return make_spec(steps, trafficRouting=routing, **extra)


def test_exact_weights_hold_at_any_replica_count() -> None:
    # One target pod: a replica split could only offer 50%; a router gives 5% on one canary pod.
    sim = Sim(routed([{"setWeight": 5}, {"pause": {}}]), target_replicas=1)
    t = sim.tick()
    # The route waits for the candidate's pod: no request is sent to a pod that cannot answer yet.
    assert world_actions(t.actions) == [EnsureCanary("v2", 1)] and sim.route is None
    t = sim.tick(1)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetRoute(RouteState(5))]
    t = sim.tick(1)
    assert t.status.current_step == 1 and sim.route == RouteState(5)


def test_canary_replicas_decide_the_pods_independently_of_the_share() -> None:
    spec = routed([{"setWeight": 50}], trafficRouting={"canaryReplicas": 2})
    sim = Sim(spec, target_replicas=10)
    t = sim.tick()
    assert EnsureCanary("v2", 2) in world_actions(t.actions)
    # Proportional by default: 50% of 10 pods.
    assert wanted_canary_replicas(routed([{"setWeight": 50}]), sim.current_status(), 10) == 5


def test_a_step_ends_only_once_the_route_is_accepted() -> None:
    sim = Sim(routed([{"setWeight": 25}, {"pause": {}}]), route_delay=3)
    sim.tick()
    sim.tick(1)  # the canary is ready: the route is applied, then takes three looks to be accepted
    for _ in range(3):
        t = sim.tick(1)
        assert t.status.current_step == 0
        assert t.status.message is not None and "Accepted" in t.status.message
        assert SetRoute(RouteState(25)) in world_actions(t.actions)  # re-applied until accepted
    t = sim.tick(1)
    assert t.status.current_step == 1


def test_a_route_someone_changed_is_put_back_and_the_step_waits() -> None:
    sim = Sim(routed([{"setWeight": 25}, {"analyze": {"duration": "5m"}}]))
    sim.start()
    sim.route = RouteState(100)  # edited by hand
    t = sim.tick(1)
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetRoute(RouteState(25))]
    assert sim.route == RouteState(25)


def test_header_route_and_mirror_steps_then_promotion_leaves_stable_only() -> None:
    steps = [
        {"setMirror": {"percent": 100}},
        {"analyze": {"duration": "1m"}},
        {"setMirror": {"percent": 0}},
        {"setHeaderRoute": {"match": [{"name": "X-Canary", "value": "yes"}]}},
        {"setWeight": 5},
        {"pause": {"duration": "10s"}},
    ]
    sim = Sim(routed(steps), target_replicas=3)
    sim.tick()
    t = sim.tick(1)
    # Shadow traffic: one candidate pod, no weight, mirrored once it is ready.
    assert world_actions(t.actions) == [EnsureCanary("v2", 1), SetRoute(RouteState(0, (), 100))]
    t = sim.tick(1)
    assert t.status.current_step == 1 and t.status.serving_since == iso(2)
    t = sim.tick(60)  # the shadow phase is judged by the same gates
    assert t.request is not None and t.request.window_seconds == 60.0
    sim.run_until(lambda s: s.route == RouteState(0, (("X-Canary", "yes", "Exact"),), 0))
    sim.run_until(lambda s: s.route == RouteState(5, (("X-Canary", "yes", "Exact"),), 0))
    sim.run_until(lambda s: s.phase == "Promoted", dt=5)
    sim.tick(1)  # the canary goes once the route no longer sends it anything
    assert sim.route == STABLE_ONLY and sim.canary is None and sim.target_checkpoint == "v2"
    st = sim.status
    assert st is not None and st.header_route is None and st.mirror_percent is None and not st.canary_weight


def test_a_regressed_candidate_is_rolled_back_during_shadow_and_the_route_cleaned() -> None:
    sim = Sim(routed([{"setMirror": {"percent": 100}}, {"analyze": {"duration": "5m"}}, {"setWeight": 5}]))
    sim.run_until(lambda s: s.status is not None and s.status.current_step == 1)
    sim.script = [report("failed")]
    t = sim.tick(30)
    assert t.status.phase == "RolledBack" and "RolledBack" in events(t.actions)
    # The route lets go of the candidate first; its pods go once the route, read back, no longer mirrors.
    assert world_actions(t.actions) == [SetRoute(STABLE_ONLY)] and sim.canary is not None
    t = sim.tick(1)
    assert world_actions(t.actions) == [DeleteCanary()]
    assert sim.route == STABLE_ONLY and sim.canary is None and sim.target_checkpoint == "v1"


def test_after_an_operator_outage_the_route_converges_to_the_stored_status() -> None:
    sim = Sim(routed([{"setWeight": 50}, {"analyze": {"duration": "5m"}}]))
    sim.run_until(lambda s: s.status is not None and s.status.current_step == 1)
    sim.script = [report("failed")]
    t = sim.tick(30, apply=False)  # rollback stored; the operator died before touching the route
    assert t.status.phase == "RolledBack" and sim.route == RouteState(50)
    t = sim.tick(120)
    assert world_actions(t.actions) == [SetRoute(STABLE_ONLY)] and sim.route == STABLE_ONLY
    t = sim.tick(1)
    assert world_actions(t.actions) == [DeleteCanary()] and sim.canary is None
    t = sim.tick(1)
    assert world_actions(t.actions) == []  # nothing left to do: no churn


def test_analysis_window_starts_when_the_candidate_serves_at_the_current_share() -> None:
    steps = [{"setWeight": 5}, {"analyze": {"duration": "2m"}}, {"setWeight": 25}, {"analyze": {"duration": "2m"}}]
    sim = Sim(routed(steps), canary_delay=10)
    sim.tick()
    sim.run_until(lambda s: s.status is not None and s.status.current_step == 1)
    first_serving = sim.status.serving_since if sim.status else None
    assert first_serving is not None and first_serving > iso(0)
    sim.run_until(lambda s: s.status is not None and s.status.current_step == 3, dt=5)
    assert sim.status is not None and sim.status.serving_since is not None
    assert sim.status.serving_since > first_serving  # the 25% share restarted the window
    t = sim.run_until(lambda s: s.ticks[-1].request is not None, dt=5)
    assert t.request is not None
    assert sim.status is not None and sim.status.history is not None
    assert sim.status.history[0].window_start == sim.status.serving_since  # recorded with the analysis
    served = parse_ts(sim.status.serving_since)
    assert served is not None and t.request.window_seconds == (t.now - served).total_seconds()


@pytest.mark.parametrize(
    "steps",
    [[{"setHeaderRoute": {"match": [{"name": "X-Canary", "value": "1"}]}}], [{"setMirror": {"percent": 10}}]],
)
def test_router_steps_need_a_router(steps: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError, match="need a router"):
        make_spec(steps)
    assert routed(steps).routed
