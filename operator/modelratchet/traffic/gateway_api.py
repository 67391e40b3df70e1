"""The gatewayAPI router: weights, a header route and a mirror on one rule of an HTTPRoute.

The rule's backendRefs become the stable Service and the candidate's Service, weighted; a header route is a copy
of the rule whose matches also require the headers and whose only backend is the candidate; a mirror is the
standard RequestMirror filter, or (``mirror: traefikService``, for Traefik, whose Gateway API provider has no
RequestMirror) a TraefikService with mirroring that the rule points at. When the candidate gets nothing the rule
is back to the stable Service alone and every object the router made is gone.

``render_rules`` and ``read_route`` are pure (dicts in, dicts out); ``GatewayAPIRouter`` does the reads and writes.
HTTPRoute rules are an atomic list, so the write is one server-side apply of ``spec.rules`` under the operator's
field manager, guarded by the resourceVersion it was computed from.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelratchet.api.rollout import ModelRolloutSpec
from modelratchet.kube import resources as res
from modelratchet.kube.deployments import canary_name, owner_reference
from modelratchet.rollout.traffic import STABLE_ONLY
from modelratchet.rollout.types import RouteObservation, RouteState

from . import RouteError

ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
TRAEFIK_GROUP, TRAEFIK_VERSION, TRAEFIK_PLURAL = "traefik.io", "v1alpha1", "traefikservices"
Rule = dict[str, Any]
ROLLOUT_ANNOTATION = "modelratchet.io/rollout"
NAMES_ANNOTATION = "modelratchet.io/traffic-routing"


@dataclass(frozen=True)
class RouteNames:
    """What the router manages, by name."""

    route: str
    stable: str
    canary: str
    mirror_service: str  # the TraefikService of mirror: traefikService
    rule: str | None
    port: int | None
    mirror: Literal["requestMirror", "traefikService"]


def names_for(spec: ModelRolloutSpec, rollout: str) -> RouteNames:
    assert spec.traffic_routing is not None and spec.traffic_routing.gateway_api is not None
    g = spec.traffic_routing.gateway_api
    return RouteNames(
        route=g.http_route,
        stable=g.stable_service,
        canary=g.canary_service or canary_name(spec.target_ref.name),
        mirror_service=f"{rollout}-mirror",
        rule=g.rule,
        port=g.port,
        mirror=g.mirror,
    )


def _service_ref(ref: dict[str, Any], name: str) -> bool:
    return ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service" and ref.get("name") == name


def _mirror_ref(ref: dict[str, Any], names: RouteNames) -> bool:
    return (
        ref.get("group") == TRAEFIK_GROUP
        and ref.get("kind") == "TraefikService"
        and ref.get("name") == (names.mirror_service)
    )


def _header_rule(rule: Rule, names: RouteNames) -> bool:
    """The rule a header route adds: its only backend is the candidate's Service."""
    refs = rule.get("backendRefs") or []
    return len(refs) == 1 and _service_ref(refs[0], names.canary)


def _mirror_filter(f: dict[str, Any], names: RouteNames) -> bool:
    return (
        f.get("type") == "RequestMirror"
        and ((f.get("requestMirror") or {}).get("backendRef") or {}).get("name") == names.canary
    )


def locate_rule(rules: list[Rule], names: RouteNames) -> int:
    """Index of the managed rule among ``rules`` (which must not contain a header rule)."""
    if names.rule is not None and names.rule.isdigit():
        index = int(names.rule)
        if index >= len(rules):
            raise RouteError(f"HTTPRoute {names.route!r} has {len(rules)} rule(s); rule {index} does not exist")
        return index
    if names.rule is not None:
        for i, rule in enumerate(rules):
            if rule.get("name") == names.rule:
                return i
        raise RouteError(f"HTTPRoute {names.route!r} has no rule named {names.rule!r}")
    for i, rule in enumerate(rules):
        if any(_service_ref(r, names.stable) or _mirror_ref(r, names) for r in rule.get("backendRefs") or []):
            return i
    raise RouteError(f"no rule of HTTPRoute {names.route!r} has Service {names.stable!r} among its backendRefs")


def _split(rules: list[Rule], names: RouteNames) -> tuple[list[Rule], Rule | None]:
    """The rules without the header rule, and the header rule."""
    header = next((r for r in rules if _header_rule(r, names)), None)
    return [r for r in rules if not _header_rule(r, names)], header


def render_rules(
    route: dict[str, Any], names: RouteNames, state: RouteState, mirror_service: dict[str, Any] | None = None
) -> tuple[list[Rule], dict[str, Any] | None]:
    """The route's rules giving the candidate exactly ``state``, and the TraefikService spec it needs (or None).
    ``mirror_service`` is the TraefikService as it is, which holds the stable port while the rule points at it."""
    rules, _ = _split(copy.deepcopy((route.get("spec") or {}).get("rules") or []), names)
    index = locate_rule(rules, names)
    rule = rules[index]
    refs = rule.get("backendRefs") or []
    stable: dict[str, Any] = next((dict(r) for r in refs if _service_ref(r, names.stable)), {"name": names.stable})
    mirrored = ((mirror_service or {}).get("spec") or {}).get("mirroring") or {}
    port = names.port or stable.get("port") or mirrored.get("port")
    if port is None:
        raise RouteError(f"set trafficRouting.gatewayAPI.port: the backendRef of {names.stable!r} has no port")
    stable.setdefault("port", port)
    stable.pop("weight", None)
    canary = {"name": names.canary, "port": port}
    filters = [f for f in rule.get("filters") or [] if not _mirror_filter(f, names)]
    mirror_service = None
    if state.mirror_percent and names.mirror == "traefikService":
        if state.weight:
            raise RouteError("a mirror with a weight needs mirror: requestMirror (the TraefikService mirrors stable)")
        rule["backendRefs"] = [{"group": TRAEFIK_GROUP, "kind": "TraefikService", "name": names.mirror_service}]
        mirror_service = {
            "mirroring": {
                "name": names.stable,
                "port": port,
                "mirrors": [{"name": names.canary, "port": port, "percent": state.mirror_percent}],
            }
        }
    elif state.weight == 0:
        rule["backendRefs"] = [stable]
    else:
        rule["backendRefs"] = [{**stable, "weight": 100 - state.weight}, {**canary, "weight": state.weight}]
    if state.mirror_percent and mirror_service is None:
        filters.append(
            {"type": "RequestMirror", "requestMirror": {"backendRef": canary, "percent": state.mirror_percent}}
        )
    if filters:
        rule["filters"] = filters
    else:
        rule.pop("filters", None)
    if state.header_route:
        headers = [{"type": t, "name": n, "value": v} for n, v, t in state.header_route]
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        header_rule: Rule = {
            "matches": [{**m, "headers": [*(m.get("headers") or []), *headers]} for m in matches],
            "backendRefs": [canary],
        }
        rules.insert(index + 1, header_rule)
    return rules, mirror_service


def read_route(route: dict[str, Any], names: RouteNames, mirror_service: dict[str, Any] | None) -> RouteObservation:
    """What the route gives the candidate, and whether its Gateways accepted this generation of it."""
    rules, header_rule = _split((route.get("spec") or {}).get("rules") or [], names)
    rule = rules[locate_rule(rules, names)]
    refs = rule.get("backendRefs") or []
    weight = mirror = 0
    if any(_mirror_ref(r, names) for r in refs):
        spec = (mirror_service or {}).get("spec") or {}
        mirrors = (spec.get("mirroring") or {}).get("mirrors") or []
        mirror = next((int(m.get("percent", 0)) for m in mirrors if m.get("name") == names.canary), 0)
    else:
        stable_w = sum(int(r.get("weight", 1)) for r in refs if _service_ref(r, names.stable))
        canary_w = sum(int(r.get("weight", 1)) for r in refs if _service_ref(r, names.canary))
        weight = round(100 * canary_w / (stable_w + canary_w)) if canary_w else 0
        for f in rule.get("filters") or []:
            if _mirror_filter(f, names):
                mirror = int((f.get("requestMirror") or {}).get("percent", 100))
    headers: tuple[tuple[str, str, str], ...] = ()
    if header_rule is not None:
        own = {(h.get("name"), h.get("value")) for h in ((rule.get("matches") or [{}])[0].get("headers") or [])}
        first = (header_rule.get("matches") or [{}])[0]
        headers = tuple(
            (h["name"], h["value"], h.get("type", "Exact"))
            for h in first.get("headers") or []
            if (h.get("name"), h.get("value")) not in own
        )
    accepted, problem = _accepted(route)
    return RouteObservation(RouteState(weight, headers, mirror), accepted, problem)


def _accepted(route: dict[str, Any]) -> tuple[bool, str | None]:
    generation = int((route.get("metadata") or {}).get("generation", 0))
    parents = ((route.get("status") or {}).get("parents")) or []
    if not parents:
        return False, "no Gateway has reported on the route yet"
    for parent in parents:
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        for kind in ("Accepted", "ResolvedRefs"):
            c = conditions.get(kind)
            if c is None or c.get("status") != "True" or int(c.get("observedGeneration", 0)) < generation:
                detail = f": {c.get('reason')} {c.get('message', '')}".rstrip() if c else ""
                return False, f"{kind} is not True for generation {generation}{detail}"
    return True, None


class GatewayAPIRouter:
    """Reads and writes one rollout's HTTPRoute rule (and its TraefikService when mirroring through Traefik)."""

    def __init__(
        self, api: client.ApiClient, rollout: dict[str, Any], spec: ModelRolloutSpec, field_manager: str
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.rollout = rollout
        self.namespace = rollout["metadata"]["namespace"]
        self.names = names_for(spec, rollout["metadata"]["name"])
        self.field_manager = field_manager

    @classmethod
    def for_names(
        cls, api: client.ApiClient, rollout: dict[str, Any], names: RouteNames, field_manager: str
    ) -> GatewayAPIRouter:
        router = cls.__new__(cls)
        router.custom = client.CustomObjectsApi(api)
        router.rollout, router.namespace = rollout, rollout["metadata"]["namespace"]
        router.names, router.field_manager = names, field_manager
        return router

    def _get(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            resp: Any = self.custom.get_namespaced_custom_object(
                group,
                version,
                self.namespace,
                plural,
                name,
                _preload_content=False,
                _request_timeout=res.request_timeout(self.custom),
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    def get_route(self) -> dict[str, Any] | None:
        return self._get(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL, self.names.route)

    def route(self) -> dict[str, Any]:
        route = self._get(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL, self.names.route)
        if route is None:
            raise RouteError(f"HTTPRoute {self.names.route!r} not found in namespace {self.namespace!r}")
        return route

    def mirror_service(self) -> dict[str, Any] | None:
        if self.names.mirror != "traefikService":
            return None
        return self._get(TRAEFIK_GROUP, TRAEFIK_VERSION, TRAEFIK_PLURAL, self.names.mirror_service)

    def observe(self) -> RouteObservation:
        return read_route(self.route(), self.names, self.mirror_service())

    def set_route(self, state: RouteState) -> None:
        route = self.route()
        rules, mirror_spec = render_rules(route, self.names, state, self.mirror_service())
        if mirror_spec is not None:
            self._apply_mirror_service(mirror_spec)
        metadata: dict[str, Any] = {
            "name": self.names.route,
            "namespace": self.namespace,
            # The rules were computed from this version: a concurrent edit makes the apply fail (409), not merge.
            "resourceVersion": route["metadata"]["resourceVersion"],
        }
        if state != STABLE_ONLY:
            # Who changed the route and how to undo it, for release_orphan when the rollout is deleted. Left out
            # of the stable-only apply, so server-side apply removes them with the rest of what the router set.
            metadata["annotations"] = {
                ROLLOUT_ANNOTATION: self.rollout["metadata"]["name"],
                NAMES_ANNOTATION: json.dumps(dataclasses.asdict(self.names), sort_keys=True),
            }
        body = {
            "apiVersion": f"{ROUTE_GROUP}/{ROUTE_VERSION}",
            "kind": "HTTPRoute",
            "metadata": metadata,
            "spec": {"rules": rules},
        }
        try:
            self.custom.patch_namespaced_custom_object(
                ROUTE_GROUP,
                ROUTE_VERSION,
                self.namespace,
                ROUTE_PLURAL,
                self.names.route,
                body,
                field_manager=self.field_manager,
                force=True,
                _content_type="application/apply-patch+yaml",
                _request_timeout=res.request_timeout(self.custom),
            )
        except ApiException as e:
            if e.status == 409:
                raise res.Conflict(self.names.route) from e
            raise
        if mirror_spec is None:
            self._delete_mirror_service()

    def remove(self) -> None:
        if self._get(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL, self.names.route) is not None:
            self.set_route(STABLE_ONLY)
        self._delete_mirror_service()

    def _apply_mirror_service(self, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{TRAEFIK_GROUP}/{TRAEFIK_VERSION}",
            "kind": "TraefikService",
            "metadata": {
                "name": self.names.mirror_service,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "modelratchet"},
                "ownerReferences": [owner_reference(self.rollout)],
            },
            "spec": spec,
        }
        self.custom.patch_namespaced_custom_object(
            TRAEFIK_GROUP,
            TRAEFIK_VERSION,
            self.namespace,
            TRAEFIK_PLURAL,
            self.names.mirror_service,
            body,
            field_manager=self.field_manager,
            force=True,
            _content_type="application/apply-patch+yaml",
            _request_timeout=res.request_timeout(self.custom),
        )

    def _delete_mirror_service(self) -> None:
        if self.names.mirror != "traefikService":
            return
        try:
            self.custom.delete_namespaced_custom_object(
                TRAEFIK_GROUP,
                TRAEFIK_VERSION,
                self.namespace,
                TRAEFIK_PLURAL,
                self.names.mirror_service,
                _request_timeout=res.request_timeout(self.custom),
            )
        except ApiException as e:
            if e.status != 404:
                raise


def orphan_names(route: dict[str, Any]) -> tuple[str, RouteNames] | None:
    """(rollout, names) recorded on a route the router changed, or None when it carries nothing of ours."""
    annotations = (route.get("metadata") or {}).get("annotations") or {}
    rollout, recorded = annotations.get(ROLLOUT_ANNOTATION), annotations.get(NAMES_ANNOTATION)
    if not rollout or not recorded:
        return None
    try:
        return rollout, RouteNames(**json.loads(recorded))
    except (TypeError, ValueError):
        return None


def release_orphan(api: client.ApiClient, namespace: str, route_name: str, field_manager: str) -> bool:
    """Put a route back to stable only when the ModelRollout that changed it no longer exists (it was deleted,
    perhaps while the operator was down). Returns whether it released anything."""
    custom = client.CustomObjectsApi(api)
    try:
        resp: Any = custom.get_namespaced_custom_object(
            ROUTE_GROUP,
            ROUTE_VERSION,
            namespace,
            ROUTE_PLURAL,
            route_name,
            _preload_content=False,
            _request_timeout=res.request_timeout(custom),
        )
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    route = dict(json.loads(resp.data))
    found = orphan_names(route)
    if found is None or res.get(custom, res.ROLLOUTS, namespace, found[0]) is not None:
        return False
    rollout = {"metadata": {"name": found[0], "namespace": namespace, "uid": ""}}
    router = GatewayAPIRouter.for_names(api, rollout, found[1], field_manager)
    router.remove()
    return True
