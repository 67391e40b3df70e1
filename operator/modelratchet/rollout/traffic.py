"""Traffic routing decisions: what share the candidate gets, on how many pods, and whether it serves it yet.

Pure. With ``replicas`` (the default) the share is the candidate's share of ready pods behind the target's
Service; with a router (a Gateway API HTTPRoute) weights are exact, header routes and mirrors are possible, and
the candidate's pod count is independent of its share.
"""

from __future__ import annotations

import math

from modelratchet.api.rollout import HeaderMatch, ModelRolloutSpec, ModelRolloutStatus

from .replicas import canary_replicas
from .types import RouteState, World

STABLE_ONLY = RouteState(weight=0, header_route=(), mirror_percent=0)


def desired_route(status: ModelRolloutStatus) -> RouteState:
    """What the router should do for the stored status: the candidate's share while it runs, else stable only."""
    if status.phase not in ("Progressing", "Paused") or status.canary_checkpoint is None:
        return STABLE_ONLY
    return RouteState(
        weight=status.canary_weight or 0,
        header_route=tuple((m.name, m.value, m.type) for m in status.header_route or []),
        mirror_percent=status.mirror_percent or 0,
    )


def receives_traffic(route: RouteState) -> bool:
    return route.weight > 0 or bool(route.header_route) or route.mirror_percent > 0


def wanted_canary_replicas(spec: ModelRolloutSpec, status: ModelRolloutStatus, target_replicas: int) -> int:
    """Pods for the candidate at the stored share."""
    route = desired_route(status)
    if not spec.routed:
        return canary_replicas(route.weight, target_replicas)
    assert spec.traffic_routing is not None
    if not receives_traffic(route):
        return 0
    if spec.traffic_routing.canary_replicas:
        return spec.traffic_routing.canary_replicas
    # Proportional by default, but a header route or a mirror needs one pod even at weight 0.
    return max(1, math.ceil(route.weight * max(target_replicas, 1) / 100))


def serving(spec: ModelRolloutSpec, status: ModelRolloutStatus, world: World) -> str | None:
    """None once the candidate serves its stored share (its pods ready; with a router, the route applied and
    accepted), else what it is still waiting for."""
    assert world.target is not None and status.canary_checkpoint is not None
    replicas = wanted_canary_replicas(spec, status, world.target.replicas)
    canary = world.canary
    if (
        canary is None
        or canary.checkpoint != status.canary_checkpoint
        or canary.replicas != replicas
        or canary.ready_replicas < replicas
    ):
        return f"waiting for {replicas} canary pod(s) of {status.canary_checkpoint} to be ready"
    if not spec.routed:
        return None
    want = desired_route(status)
    route = world.route
    if route is None or route.state != want:
        return f"waiting for the route to give the candidate {describe(want)}"
    if not route.accepted:
        return f"waiting for the route to be Accepted with resolved references ({route.problem or 'not yet'})"
    return None


def describe(route: RouteState) -> str:
    parts = [f"{route.weight}% of traffic"]
    if route.header_route:
        parts.append("requests with " + " and ".join(f"{n}: {v}" for n, v, _ in route.header_route))
    if route.mirror_percent:
        parts.append(f"a {route.mirror_percent}% mirror")
    return ", ".join(parts)


def header_matches(route: RouteState) -> list[HeaderMatch]:
    return [HeaderMatch(name=n, value=v, type=t) for n, v, t in route.header_route]
