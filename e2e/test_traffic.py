"""Gateway API traffic routing end to end: the operator drives an HTTPRoute served by a real gateway (Traefik),
in front of pods that really serve, and the client counts who answered.

Every rollout here routes with trafficRouting.gatewayAPI: the HTTPRoute's rule starts on the stable Service
alone; the operator adds the candidate's Service with exact weights, a header rule, or a mirror (a TraefikService,
since Traefik's Gateway API provider has no RequestMirror), and gives the rule back as it was.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import V1, V2, V3, Scenario, digits_baseline, rollout_spec
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REQUESTS = 2000  # per weight step: ±3 points holds with margin (WRR is exact; the rest is pod restarts)


@pytest.fixture
def routed(
    kube_api: Any, namespace: str, prometheus: Any, operator: OperatorProcess, data_plane: Any, tmp_path: Path
) -> Iterator[Scenario]:
    """One stable pod behind `<target>-stable`; the HTTPRoute's single rule sends everything there."""
    sc = Scenario(kube_api, namespace, prometheus, model=f"digits-{namespace}", log_dir=tmp_path,
                  data_plane=data_plane)
    sc.start_servers()
    sc.deploy_target(V1, replicas=1, route_service=sc.stable_service)
    yield sc
    sc.close()
    if not operator.alive():
        pytest.fail(f"the operator died:\n{operator.log_tail()}")


def _route(sc: Scenario) -> dict[str, Any]:
    obj: dict[str, Any] = sc.custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", sc.ns, "httproutes", sc.route
    )
    return obj


def _spec(sc: Scenario, checkpoint: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    routing = {"gatewayAPI": {"httpRoute": sc.route, "stableService": sc.stable_service, "mirror": "traefikService"},
               "canaryReplicas": 1}
    return rollout_spec(sc.target, "digits", checkpoint, steps=steps, trafficRouting=routing, **extra)


def _paused_at(sc: Scenario, step: int) -> None:
    sc.wait_phase("digits", "Paused", timeout=90, also=lambda s: s.get("currentStep") == step)


def _assert_route_given_back(sc: Scenario, original_rules: list[dict[str, Any]]) -> None:
    """The rule is the stable Service alone again, with nothing of the operator's left anywhere."""
    wait_for(lambda: _route(sc)["spec"]["rules"] == original_rules, timeout=30, message="route given back")
    route = _route(sc)
    annotations = route["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("modelratchet.io/")], annotations
    wait_for(lambda: sc.core.list_namespaced_service(sc.ns, field_selector=f"metadata.name={sc.target}-canary")
             .items == [], timeout=30, message="canary Service deleted")
    assert sc.canary() is None


def test_exact_weights_at_one_stable_and_one_canary_pod(routed: Scenario) -> None:
    sc = routed
    original = copy.deepcopy(_route(sc)["spec"]["rules"])
    sc.create("modelbaselines", "digits", digits_baseline(sc.model))
    steps = [{"setWeight": 5}, {"pause": {}}, {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    sc.create("modelrollouts", "digits", _spec(sc, V2, steps))
    assert sc.data_plane is not None
    errors = {}
    for step, weight in ((1, 5), (3, 25), (5, 50)):
        _paused_at(sc, step)
        counts = sc.data_plane.count_answers(sc.host, REQUESTS)
        share = 100 * counts[V2] / REQUESTS
        errors[weight] = share - weight
        print(f"[figure] weight {weight}%: candidate answered {counts[V2]}/{REQUESTS} = {share:.2f}% "
              f"(error {share - weight:+.2f} points; stable {counts[V1]}, none {counts['']})")
        # A handful of requests can meet the gateway while it swaps its configuration: few, and never judged.
        assert counts[""] <= REQUESTS // 100, counts
        assert abs(share - weight) <= 3, counts
        # One canary pod whatever the weight: the router, not the pod count, sets the share.
        canary = sc.canary()
        assert canary is not None and canary["spec"]["replicas"] == 1
        sc.gate("digits", "promote", V2)
    status = sc.wait_phase("digits", "Promoted", timeout=90)
    assert status["stableCheckpoint"] == V2 and sc.target_checkpoint() == V2
    _assert_route_given_back(sc, original)
    # The target rolls its own pods to V2 after the promotion is recorded: the old ones answer until they are gone.
    wait_for(lambda: not any(sc._pod_checkpoint(p) == V1 for p in sc._serving_pods()), timeout=90,
             message="the target's V1 pods replaced after promotion")
    counts = sc.data_plane.count_answers(sc.host, 200)
    print(f"[figure] after promotion: {dict(counts)}")
    assert counts[V1] == 0 and counts[V2] >= 198, "promoted: the stable Service now serves the new checkpoint"
    print(f"[figure] per-step weight error (points): {json.dumps({k: round(v, 2) for k, v in errors.items()})}")


def test_a_header_route_sends_only_matching_requests_to_the_candidate(routed: Scenario) -> None:
    sc = routed
    original = copy.deepcopy(_route(sc)["spec"]["rules"])
    sc.create("modelbaselines", "digits", digits_baseline(sc.model))
    steps = [{"setHeaderRoute": {"match": [{"name": "X-Canary", "value": "yes"}]}}, {"pause": {}}]
    sc.create("modelrollouts", "digits", _spec(sc, V2, steps))
    _paused_at(sc, 1)
    assert sc.data_plane is not None
    plane = sc.data_plane
    # Traefik reports the route Accepted a moment before it routes by it (its provider throttles reloads).
    wait_for(lambda: plane.request(sc.host, "/healthz", headers={"X-Canary": "yes"}).checkpoint == V2, timeout=30,
             message="the header rule in effect at the gateway")
    with_header = sc.data_plane.count_answers(sc.host, 200, headers={"X-Canary": "yes"})
    without = sc.data_plane.count_answers(sc.host, 200)
    other_value = sc.data_plane.count_answers(sc.host, 100, headers={"X-Canary": "no"})
    print(f"[figure] header route: with header {dict(with_header)}, without {dict(without)}, "
          f"other value {dict(other_value)}")
    assert with_header == {V2: 200} and without == {V1: 200} and other_value == {V1: 100}
    sc.gate("digits", "abort", V2)
    status = sc.wait_phase("digits", "RolledBack", timeout=60)
    assert status["stableCheckpoint"] == V1
    _assert_route_given_back(sc, original)


def test_a_regressed_candidate_is_rolled_back_during_shadow_with_no_user_seeing_it(routed: Scenario) -> None:
    sc = routed
    original = copy.deepcopy(_route(sc)["spec"]["rules"])
    sc.create("modelbaselines", "digits", digits_baseline(sc.model))
    steps = [{"setMirror": {"percent": 100}}, {"analyze": {"duration": "60s"}}, {"setWeight": 50}]
    sc.start_traffic(rate=60)
    sc.create("modelrollouts", "digits", _spec(sc, V3, steps))
    # Shadow: the candidate receives copies of live requests while every answer still comes from stable.
    mirrored: float = wait_for(lambda: (n := sc.served().get(V3, 0)) >= 50 and n, timeout=90,
                               message="the candidate receives mirrored requests")
    status = sc.wait_phase("digits", "RolledBack", timeout=120)
    assert status["stableCheckpoint"] == V1 and V3 in status["rejectedCheckpoints"]
    assert any(h["verdict"] == "failed" and h["step"] == 1 for h in status["history"]), "judged in the shadow step"
    assert sc.traffic is not None
    sc.traffic.stop()
    answers = sc.answers()
    print(f"[figure] mirror: client answers {answers}; the candidate had received {mirrored:.0f} mirrored "
          "requests when the test looked, and answered none of the clients")
    assert answers.get(V3, 0) == 0, "no client ever got an answer from the regressed candidate"
    assert answers.get(V1, 0) > 0
    _assert_route_given_back(sc, original)


def test_operator_killed_mid_step_converges_the_route_and_windows_start_when_serving(
    routed: Scenario, operator: OperatorProcess
) -> None:
    sc = routed
    original = copy.deepcopy(_route(sc)["spec"]["rules"])
    # What is under test is the route and the windows, not the judging: a tolerant accuracy bound keeps the better
    # checkpoint from failing a few-second window by chance.
    sc.create("modelbaselines", "digits", digits_baseline(sc.model, accuracy_ratio=0.2))
    steps = [{"setWeight": 25}, {"analyze": {"duration": "6s"}}, {"setWeight": 50}, {"analyze": {"duration": "4s"}}]
    sc.start_traffic(rate=60)
    sc.create("modelrollouts", "digits", _spec(sc, V2, steps))
    sc.wait_phase("digits", "Progressing", timeout=90, also=lambda s: s.get("currentStep") == 1)
    operator.kill()
    operator.start()
    status = sc.wait_phase("digits", "Promoted", timeout=120)
    _assert_route_given_back(sc, original)
    # Analyses never judged time before the candidate served: every window starts after the rollout began,
    # and each step's window at the moment its share was served.
    started = status["rolloutStartedAt"]
    windows = [(h["step"], h["windowStart"]) for h in status["history"]]
    print(f"[figure] rollout started {started}; analysis windows (step, start): {windows}")
    assert windows and all(w > started for _, w in windows)
    assert len({w for s, w in windows if s == 1}) == 1 and len({w for s, w in windows if s == 3}) == 1
    assert min(w for s, w in windows if s == 3) > max(w for s, w in windows if s == 1)
