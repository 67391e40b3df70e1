"""Observe: the objects one look at a ModelRollout read, turned into the World the state machine decides on.

Pure: it takes the objects as the API server returned them (or None when absent) and returns data. The
shell does the reading, and the analysis, which only runs when the references resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.errors import validation_problems
from modelratchet.api.rollout import ModelRolloutSpec
from modelratchet.kube.deployments import canary_name, canary_state, target_state
from modelratchet.rollout.types import RouteObservation, World
from modelratchet.traffic import RouteError
from modelratchet.traffic.gateway_api import names_for, read_route

# The target's opt-in: only someone who may edit the Deployment can set it, and it names the one ModelRollout
# allowed to drive it. Without it, a user who may create ModelRollouts could roll any Deployment of the namespace.
OPT_IN_ANNOTATION = "modelratchet.io/rollout"


@dataclass(frozen=True)
class Fetched:
    """The objects read for one look, as the API server returned them."""

    rollout: dict[str, Any]
    target: dict[str, Any] | None
    canary: dict[str, Any] | None
    baseline: dict[str, Any] | None
    # With a router (trafficRouting.gatewayAPI): the HTTPRoute, the stable Service, Traefik's mirror service.
    route: dict[str, Any] | None = None
    stable_service: dict[str, Any] | None = None
    mirror_service: dict[str, Any] | None = None


def baseline_of(
    spec: ModelRolloutSpec, namespace: str, obj: dict[str, Any] | None
) -> tuple[ModelBaselineSpec | None, str | None, str]:
    """The referenced ModelBaseline's spec, or why there is none (message, CamelCase reason)."""
    name = spec.baseline_ref.name
    if obj is None:
        return None, f"ModelBaseline {name!r} not found in namespace {namespace!r}", "BaselineNotFound"
    try:
        return ModelBaselineSpec.model_validate(obj.get("spec") or {}), None, ""
    except ValidationError as e:
        return None, f"ModelBaseline {name!r} is invalid: {validation_problems(e, 'spec')[0]}", "BaselineInvalid"


def observe_world(spec: ModelRolloutSpec, fetched: Fetched) -> World:
    """Target, canary and baseline as the state machine sees them (the analysis is added by the shell)."""
    meta = fetched.rollout["metadata"]
    target = None
    if fetched.target is not None:
        target = target_state(fetched.target, spec.checkpoint_from)
        allowed = ((fetched.target.get("metadata") or {}).get("annotations") or {}).get(OPT_IN_ANNOTATION)
        if allowed != meta["name"]:
            target = target.broken(
                f"Deployment {spec.target_ref.name!r} has not opted in to this rollout: an owner of the Deployment "
                f"annotates it with {OPT_IN_ANNOTATION}={meta['name']}"
                + (f" (it names {allowed!r})" if allowed else ""),
                "TargetNotOptedIn",
            )
    canary = None
    if fetched.canary is not None:
        owners = fetched.canary["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == meta["uid"] for o in owners):
            if target is not None:
                target = target.broken(
                    f"Deployment {canary_name(spec.target_ref.name)!r} exists and is not owned by this ModelRollout",
                    "CanaryNameTaken",
                )
        else:
            canary = canary_state(fetched.canary)
    route = None
    if spec.routed and target is not None and not target.error:
        route, problem = _route(spec, fetched)
        if problem is not None:
            target = target.broken(*problem)
    _, baseline_error, baseline_reason = baseline_of(spec, meta["namespace"], fetched.baseline)
    return World(
        target=target,
        canary=canary,
        baseline_error=baseline_error,
        baseline_reason=baseline_reason or "BaselineNotFound",
        route=route,
    )


def _route(spec: ModelRolloutSpec, fetched: Fetched) -> tuple[RouteObservation | None, tuple[str, str] | None]:
    """The route read back, or (message, reason) of why it cannot be managed."""
    names = names_for(spec, fetched.rollout["metadata"]["name"])
    if fetched.route is None:
        return None, (f"HTTPRoute {names.route!r} not found", "RouteNotFound")
    if fetched.stable_service is None:
        return None, (
            f"Service {names.stable!r} (trafficRouting.gatewayAPI.stableService) not found",
            "ServiceNotFound",
        )
    try:
        return read_route(fetched.route, names, fetched.mirror_service), None
    except RouteError as e:
        return None, (str(e), e.reason)
