"""The gatewayAPI router's pure half: rules rendered for a RouteState, and read back to the same RouteState."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from modelratchet.rollout import RouteState
from modelratchet.rollout.traffic import STABLE_ONLY
from modelratchet.traffic import RouteError
from modelratchet.traffic.gateway_api import RouteNames, read_route, render_rules

NAMES = RouteNames(
    route="digits", stable="digits-stable", canary="digits-serving-canary", mirror_service="digits-mirror",
    rule=None, port=None, mirror="requestMirror",
)


def route(rules: list[dict[str, Any]] | None = None, *, accepted: bool = True, generation: int = 3) -> dict[str, Any]:
    conditions = [
        {"type": "Accepted", "status": "True" if accepted else "False", "observedGeneration": generation,
         "reason": "Accepted" if accepted else "NoMatchingParent"},
        {"type": "ResolvedRefs", "status": "True", "observedGeneration": generation, "reason": "ResolvedRefs"},
    ]
    return {
        "metadata": {"name": "digits", "generation": generation, "resourceVersion": "7"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": rules if rules is not None else [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/health"}}],
                 "backendRefs": [{"name": "other", "port": 80}]},
                {"name": "predict", "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [
                     {"name": "X-Model", "value": "digits"}]}}],
                 "backendRefs": [{"name": "digits-stable", "port": 8000}]},
            ],
        },
        "status": {"parents": [{"parentRef": {"name": "gw"}, "conditions": conditions}]},
    }


def with_rules(original: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(original)
    out["spec"]["rules"] = rules
    return out


@pytest.mark.parametrize(
    "state",
    [
        RouteState(5),
        RouteState(50),
        RouteState(100),
        RouteState(0, (("X-Canary", "yes", "Exact"),)),
        RouteState(25, (("X-Canary", "y.*", "RegularExpression"), ("X-Team", "ml", "Exact"))),
        RouteState(0, (), 100),
        RouteState(10, (), 20),
        STABLE_ONLY,
    ],
)
def test_rendered_rules_read_back_as_the_state(state: RouteState) -> None:
    original = route()
    rules, mirror = render_rules(original, NAMES, state)
    assert mirror is None
    seen = read_route(with_rules(original, rules), NAMES, None)
    assert seen.state == state and seen.accepted
    # Other rules and the rule's own filters are left as they were.
    assert rules[0] == original["spec"]["rules"][0]
    assert {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [
        {"name": "X-Model", "value": "digits"}]}} in rules[1]["filters"]


def test_weights_are_exact_and_the_end_state_is_the_original_rule() -> None:
    original = route()
    rules, _ = render_rules(original, NAMES, RouteState(5))
    assert rules[1]["backendRefs"] == [
        {"name": "digits-stable", "port": 8000, "weight": 95},
        {"name": "digits-serving-canary", "port": 8000, "weight": 5},
    ]
    # Rendering stable-only from a route the router changed gives the route it started from: no leftovers.
    busy = with_rules(original, render_rules(original, NAMES, RouteState(25, (("X-C", "1", "Exact"),), 50))[0])
    assert render_rules(busy, NAMES, STABLE_ONLY)[0] == original["spec"]["rules"]


def test_a_header_route_is_a_rule_of_the_same_matches_plus_headers_to_the_candidate_only() -> None:
    rules, _ = render_rules(route(), NAMES, RouteState(0, (("X-Canary", "yes", "Exact"),)))
    assert len(rules) == 3
    assert rules[2] == {
        "matches": [{"path": {"type": "PathPrefix", "value": "/predict"},
                     "headers": [{"type": "Exact", "name": "X-Canary", "value": "yes"}]}],
        "backendRefs": [{"name": "digits-serving-canary", "port": 8000}],
    }


def test_a_traefik_mirror_points_the_rule_at_a_traefik_service() -> None:
    names = RouteNames(**{**NAMES.__dict__, "mirror": "traefikService"})
    original = route()
    rules, mirror = render_rules(original, names, RouteState(0, (), 30))
    assert rules[1]["backendRefs"] == [{"group": "traefik.io", "kind": "TraefikService", "name": "digits-mirror"}]
    assert mirror == {"mirroring": {"name": "digits-stable", "port": 8000, "mirrors": [
        {"name": "digits-serving-canary", "port": 8000, "percent": 30}]}}
    seen = read_route(with_rules(original, rules), names, {"spec": mirror})
    assert seen.state == RouteState(0, (), 30)
    back, none = render_rules(with_rules(original, rules), names, STABLE_ONLY, {"spec": mirror})
    assert none is None and back == original["spec"]["rules"]
    with pytest.raises(RouteError, match="mirror: requestMirror"):
        render_rules(original, names, RouteState(10, (), 30))


def test_the_rule_is_found_by_index_name_or_stable_backend() -> None:
    for rule in ("1", "predict", None):
        names = RouteNames(**{**NAMES.__dict__, "rule": rule})
        rules, _ = render_rules(route(), names, RouteState(10))
        assert len(rules[1]["backendRefs"]) == 2
    with pytest.raises(RouteError, match="rule 5 does not exist"):
        render_rules(route(), RouteNames(**{**NAMES.__dict__, "rule": "5"}), RouteState(10))
    with pytest.raises(RouteError, match="no rule named 'nope'"):
        render_rules(route(), RouteNames(**{**NAMES.__dict__, "rule": "nope"}), RouteState(10))
    with pytest.raises(RouteError, match="no rule of HTTPRoute 'digits' has Service 'elsewhere'"):
        render_rules(route(), RouteNames(**{**NAMES.__dict__, "stable": "elsewhere"}), RouteState(10))


def test_a_route_is_verified_only_when_every_parent_accepted_this_generation() -> None:
    assert read_route(route(accepted=False), NAMES, None).accepted is False
    stale = route()
    stale["metadata"]["generation"] = 4  # the Gateway has not seen the last write yet
    seen = read_route(stale, NAMES, None)
    assert not seen.accepted and seen.problem is not None and "generation 4" in seen.problem
    no_status = route()
    no_status["status"] = {}
    assert read_route(no_status, NAMES, None).problem == "no Gateway has reported on the route yet"
