"""Act: the changes that take the world to what a stored status says.

Pure. The shell calls ``plan`` only with a status it has stored, so nothing happens in the world that the
status does not record, and a crash between the two is healed by the next look (every action is idempotent).
"""

from __future__ import annotations

from modelratchet.api.rollout import ModelRolloutSpec, ModelRolloutStatus

from .traffic import STABLE_ONLY, desired_route, receives_traffic, wanted_canary_replicas
from .types import Action, DeleteCanary, EnsureCanary, RouteState, SetRoute, SetTargetCheckpoint, World


def promoting(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> bool:
    """Every step is done and the candidate is being written into the target."""
    return (
        status.phase in ("Progressing", "Paused")
        and status.canary_checkpoint is not None
        and status.current_step is not None
        and status.current_step >= len(spec.steps)
    )


def intended_target(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> str | None:
    """The checkpoint the target Deployment should serve: the candidate once promoting, else the stable one."""
    return status.canary_checkpoint if promoting(spec, status) else status.stable_checkpoint


def unvalidated_target(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> str | None:
    """Why the intended target checkpoint must not be written, or None when it may.

    The operator writes into the target only a checkpoint that it recorded as good (the one the target served
    when it first saw it, or one it promoted) or the candidate whose steps all completed.
    """
    checkpoint = intended_target(spec, status)
    if checkpoint is None or checkpoint in (status.last_good_checkpoints or []) or promoting(spec, status):
        return None
    return (
        f"refusing to write checkpoint {checkpoint!r} into the target: this rollout neither validated it nor saw "
        "the target serve it"
    )


def canary_wanted(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> bool:
    """A canary runs from the first traffic step (even a weight of 0) until the rollout ends."""
    if status.phase not in ("Progressing", "Paused") or status.canary_checkpoint is None:
        return False
    if receives_traffic(desired_route(status)):
        return True
    reached = spec.steps[: (status.current_step or 0) + 1]
    return any(step.shifts_traffic for step in reached)


def routable(spec: ModelRolloutSpec, status: ModelRolloutStatus, world: World) -> RouteState:
    """The route to apply now: the stored share once the candidate's pods are all ready for it; until then what
    the route already gives a candidate that has ready pods, and nothing to a candidate without any."""
    route = desired_route(status)
    if route == STABLE_ONLY or world.target is None:
        return route
    canary = world.canary
    replicas = wanted_canary_replicas(spec, status, world.target.replicas)
    if canary is None or canary.checkpoint != status.canary_checkpoint or canary.ready_replicas == 0:
        return STABLE_ONLY
    if canary.ready_replicas >= replicas and canary.replicas == replicas:
        return route
    return world.route.state if world.route is not None else STABLE_ONLY


def plan(spec: ModelRolloutSpec, status: ModelRolloutStatus, world: World) -> list[Action]:
    """Actions that move the world toward ``status``, which must be the stored one."""
    target = world.target
    if target is None or target.error:
        return []  # references are broken (or the canary's name is taken): touch nothing
    actions: list[Action] = []
    wanted = canary_wanted(spec, status)
    if wanted:
        assert status.canary_checkpoint is not None
        # Level-based: recreated if lost, resized when the target scaled, re-cloned when its template changed.
        replicas = wanted_canary_replicas(spec, status, target.replicas)
        actions.append(EnsureCanary(status.canary_checkpoint, replicas))
    route_settled = True
    if spec.routed:
        route = routable(spec, status, world)
        route_settled = world.route is not None and world.route.state == route and world.route.accepted
        # Applied while the route differs from what it should be now, or until the router accepted it.
        if world.route is None or world.route.state != route or (route != STABLE_ONLY and not world.route.accepted):
            actions.append(SetRoute(route))
    if not wanted and world.canary is not None and route_settled:
        # With a router the canary keeps serving until the route, read back, no longer sends it anything.
        actions.append(DeleteCanary())
    checkpoint = intended_target(spec, status)
    if checkpoint is not None and target.checkpoint != checkpoint and unvalidated_target(spec, status) is None:
        actions.append(SetTargetCheckpoint(checkpoint))
    return actions
