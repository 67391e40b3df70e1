"""Kopf wiring: watch events poke the scheduler; the scheduler runs reconciles off the event loop."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelratchet import telemetry
from modelratchet.api.common import GROUP, VERSION
from modelratchet.baselines import reconcile_baseline
from modelratchet.kube import deployments as deps
from modelratchet.kube import resources as res
from modelratchet.kube.leader import LeaseElector
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.observe import OPT_IN_ANNOTATION
from modelratchet.reconciler import Reconciler
from modelratchet.scheduler import Key, Scheduler
from modelratchet.settings import OperatorSettings
from modelratchet.traffic.gateway_api import ROUTE_GROUP, ROUTE_PLURAL, ROUTE_VERSION, orphan_names, release_orphan

log = logging.getLogger("modelratchet")



class Ticker(Protocol):
    def tick(self, namespace: str, name: str) -> float | None: ...


@dataclass
class Runtime:
    """What the operator process holds while it runs: built once at start-up, read by every handler."""

    api: client.ApiClient
    custom: client.CustomObjectsApi
    core: client.CoreV1Api
    settings: OperatorSettings
    reconciler: Ticker  # the Reconciler
    scheduler: Scheduler | None = None
    notifier: Any = None  # WebhookNotifier
    elector: LeaseElector | None = None
    # What the reconciler checks right before its writes (see leader.ensure_leader).
    is_leader: Callable[[], bool] = field(default=lambda: True)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the operator has not started")
    return _runtime


def install(rt: Runtime | None) -> None:
    """Make ``rt`` the runtime the handlers use (at start-up, and in tests)."""
    global _runtime
    _runtime = rt

MAX_ERROR_MESSAGE = 1024
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
BASELINE_RESYNC = 300.0  # seconds between looks at an unchanged ModelBaseline
STANDBY_RETRY = 1.0  # seconds: a replica that lost the lease mid-reconcile looks again (and defers again)
_KINDS = {"rollout": (res.ROLLOUTS, "ModelRollout"), "baseline": (res.BASELINES, "ModelBaseline")}


def _always() -> bool:
    return True


def _load_config() -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def describe_error(e: BaseException, limit: int = MAX_ERROR_MESSAGE) -> str:
    """``Type: message`` on one bounded line; an API error says its status and the server's message only."""
    if isinstance(e, ApiException):
        text = f"{e.status} {e.reason}"
        try:
            detail = json.loads(e.body or "{}").get("message")
        except (ValueError, AttributeError):
            detail = None
        if detail:
            text += f": {detail}"
    else:
        text = str(e)
    # One line without control characters: it lands in a condition that kubectl prints as it is.
    out = _CONTROLS.sub("", " ".join(f"{type(e).__name__}: {text}".split())) if text else type(e).__name__
    return out if len(out) <= limit else out[: limit - 1] + "\u2026"


class _Health:
    """Which objects may carry Degraded=True, so a clean reconcile ends it without a read every time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clean: set[Key] = set()  # known not to carry Degraded=True: checked, and no failure since

    def unknown(self, key: Key) -> None:
        with self._lock:
            self._clean.discard(key)

    def is_clean(self, key: Key) -> bool:
        with self._lock:
            return key in self._clean

    def clean(self, key: Key) -> None:
        with self._lock:
            self._clean.add(key)


_health = _Health()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record_failure(key: Key, e: Exception) -> None:
    """Degraded=True with the error on the object's status, and a Warning Event when the error is new."""
    kind, namespace, name = key
    plural, _ = _KINDS[kind]
    custom = runtime().custom
    _health.unknown(key)
    message = describe_error(e)
    try:
        obj = res.set_degraded(custom, plural, namespace, name, message, now=_now())
        if obj is not None:
            res.emit_event(runtime().core, obj, "Warning", "ReconcileError", message)
    except (res.Conflict, res.Gone, res.NotLeader):
        pass  # changed, deleted or not ours to write: the next attempt records it if it still fails
    except Exception as e2:  # e.g. the API server is what fails: the original error is what matters
        log.warning("could not record the reconcile error on %s %s/%s: %s", kind, namespace, name, describe_error(e2))


def _record_success(key: Key) -> None:
    kind, namespace, name = key
    if _health.is_clean(key):
        return
    try:
        res.set_degraded(runtime().custom, _KINDS[kind][0], namespace, name, None, now=_now())
    except (res.Conflict, res.NotLeader):
        return  # try again after the next clean reconcile
    except res.Gone:
        pass
    except Exception as e:
        log.warning("could not clear Degraded on %s %s/%s: %s", kind, namespace, name, describe_error(e))
        return
    _health.clean(key)


def _work(key: Key) -> float | None:
    """One reconcile. An error becomes a Degraded condition and an Event, then propagates: the scheduler backs
    off exponentially, so a broken object is retried ever more slowly, never silently and never in a spin."""
    kind, namespace, name = key
    if kind == "route":
        # A route a deleted ModelRollout had changed goes back to stable only; errors back off like any work.
        rt = runtime()
        release_orphan(rt.api, namespace, name, rt.settings.field_manager)
        return None
    try:
        with telemetry.RECONCILES_IN_FLIGHT.track_inprogress():
            if kind == "rollout":
                delay = runtime().reconciler.tick(namespace, name)
            else:
                delay = reconcile_baseline(runtime().custom, namespace, name)
                # Its inputs are all watched (a change pokes it): the periodic look is only a safety net, and it
                # lists every rollout of the namespace.
                delay = None if delay is None else max(delay, BASELINE_RESYNC)
    except res.NotLeader:
        log.info("lost the lease during the reconcile of %s %s/%s; the leader carries on", kind, namespace, name)
        return STANDBY_RETRY
    except Exception as e:
        telemetry.RECONCILE_ERRORS.labels(namespace, _KINDS[kind][1]).inc()
        _record_failure(key, e)
        raise
    if delay is None and not runtime().is_leader():
        return STANDBY_RETRY  # a reconcile that stopped because the lease was lost: the object is not gone
    if delay is None:  # gone
        if kind == "rollout":
            telemetry.forget_rollout(namespace, name)
        _health.unknown(key)  # a new object of that name starts unchecked
        return None
    _record_success(key)
    return delay


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    ours = OperatorSettings.from_env()
    # Kopf's bookkeeping goes to annotations: a structural schema would prune an unknown status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/operator"
    # Without both timeouts a watch can go silent for good after a network blip (kopf#585, #614, #955).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    settings.posting.enabled = False  # the reconciler records its own Events
    if os.environ.get("MODELRATCHET_DISABLE_SCANNING", "").lower() in ("1", "true", "yes"):
        # Without cluster-wide list on CRDs and namespaces, skip Kopf's discovery instead of retrying it.
        settings.scanning.disabled = True

    _load_config()
    is_leader: Callable[[], bool] = _always
    elector: LeaseElector | None = None
    lease_ns = os.environ.get("MODELRATCHET_LEASE_NAMESPACE")
    if lease_ns:
        elector = LeaseElector(
            # Its own client: the lease must be renewed while the workers' writes are fenced.
            client.CoordinationV1Api(res.OperatorApiClient(request_timeout=ours.kube_request_timeout)),
            namespace=lease_ns,
            name=os.environ.get("MODELRATCHET_LEASE_NAME", "modelratchet-leader"),
            identity=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            lease_duration=ours.lease_duration_seconds,
            renew_deadline=ours.lease_renew_deadline_seconds,
            retry_period=ours.lease_retry_period_seconds,
            request_timeout=ours.kube_request_timeout,
        )
        is_leader = elector.is_leader
    # Every write of the workers is fenced by leadership, checked as the request leaves.
    api = res.OperatorApiClient(
        request_timeout=ours.kube_request_timeout, may_write=is_leader if elector is not None else None
    )
    from modelratchet.notify import WebhookNotifier

    notifier = WebhookNotifier(client.CoreV1Api(api))
    reconciler = Reconciler(ours, api, MetricsProvider(), notifier, may_act=is_leader)
    scheduler = Scheduler(
        _work,
        workers=16,
        max_interval=ours.tick_seconds,
        is_leader=is_leader,
        uncapped=frozenset({"baseline"}),
        limits={"baseline": 2},  # a baseline's look lists the namespace's rollouts: never all workers at once
    )
    telemetry.LEADER.set_function(lambda: float(is_leader()))
    rt = Runtime(
        api=api,
        custom=client.CustomObjectsApi(api),
        core=client.CoreV1Api(api),
        settings=ours,
        reconciler=reconciler,
        scheduler=scheduler,
        notifier=notifier,
        elector=elector,
        is_leader=is_leader,
    )
    install(rt)
    res.CACHE.enable()  # the watches below keep it current
    if elector is not None:
        elector.start()
    scheduler.start()
    # Routes changed by rollouts deleted while no operator ran: found by the annotation the router leaves.
    threading.Thread(target=_sweep_routes, args=(api, scheduler, ours), name="route-sweep", daemon=True).start()
    if ours.metrics_port:
        telemetry.serve(ours.metrics_port)
    log.info("ModelRatchet operator started (prometheus %s)", ours.prometheus_url)


def _sweep_routes(api: client.ApiClient, scheduler: Scheduler, settings: OperatorSettings) -> None:
    custom = client.CustomObjectsApi(api)
    scopes: list[str | None] = list(settings.namespaces) or [None]
    for namespace in scopes:
        try:
            if namespace is None:
                listed: Any = custom.list_cluster_custom_object(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL)
            else:
                listed = custom.list_namespaced_custom_object(ROUTE_GROUP, ROUTE_VERSION, namespace, ROUTE_PLURAL)
        except ApiException as e:  # no Gateway API in this cluster, or no right to list routes: nothing to sweep
            log.debug("route sweep skipped in %s: %s", namespace or "all namespaces", e.status)
            continue
        for route in listed.get("items") or []:
            if orphan_names(route) is not None:
                meta = route["metadata"]
                scheduler.poke(("route", meta["namespace"], meta["name"]))


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    rt = _runtime
    if rt is None:
        return
    if rt.elector is not None:
        rt.elector.stop()
    if rt.scheduler is not None:
        rt.scheduler.stop()
    if rt.notifier is not None:
        rt.notifier.close(timeout=5.0)  # let queued notifications go out


# The baseline each rollout referenced when last seen: a baseline's usedBy changes only when this does, so a
# rollout's status writes (one per analysis) do not make its baseline list every rollout of the namespace again.
_references: dict[tuple[str, str], str | None] = {}
_references_lock = threading.Lock()


def _reference_changed(type: str, namespace: str, name: str, ref: str | None) -> bool:
    with _references_lock:
        before = _references.pop((namespace, name), None) if type == "DELETED" else _references.get((namespace, name))
        if type != "DELETED":
            _references[(namespace, name)] = ref
    return type != "MODIFIED" or before != ref


@kopf.on.event(GROUP, VERSION, "modelrollouts")
def rollout_event(type: str, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
    if namespace is None:
        return
    scheduler = runtime().scheduler
    assert scheduler is not None
    if type == "DELETED":
        res.CACHE.drop(res.ROLLOUTS, namespace, name)
        scheduler.forget(("rollout", namespace, name))
        telemetry.forget_rollout(namespace, name)
        route = ((body.get("spec") or {}).get("trafficRouting") or {}).get("gatewayAPI") or {}
        if route.get("httpRoute"):
            scheduler.poke(("route", namespace, route["httpRoute"]))
    else:
        res.CACHE.put(res.ROLLOUTS, body)  # before the poke: the look it causes reads at least this version
        scheduler.poke(("rollout", namespace, name))
    ref = (body.get("spec") or {}).get("baselineRef", {}).get("name")
    if _reference_changed(type, namespace, name, ref) and ref:
        scheduler.poke(("baseline", namespace, ref), 1.0)


@kopf.on.event(GROUP, VERSION, "modelbaselines")
def baseline_event(type: str, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
    if namespace is None:
        return
    scheduler = runtime().scheduler
    assert scheduler is not None
    if type == "DELETED":
        res.CACHE.drop(res.BASELINES, namespace, name)
        scheduler.forget(("baseline", namespace, name))
        return
    res.CACHE.put(res.BASELINES, body)
    generation = (body.get("metadata") or {}).get("generation")
    observed = (body.get("status") or {}).get("observedGeneration")
    if type == "MODIFIED" and generation is not None and observed == generation:
        return  # a status-only change (lastValidation, written after each analysis): nothing to reconcile
    scheduler.poke(("baseline", namespace, name), 0.5)


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(
    type: str, namespace: str | None, name: str, body: kopf.Body, meta: kopf.Meta, **_: Any
) -> None:
    """Targets (opted in) and canaries (annotated with their rollout) go to the cache the looks read from; any
    other Deployment, or one that lost the annotation, is read from the API server when a look needs it. On the
    event loop: it only copies the body, and it runs for every Deployment of the watched namespaces."""
    if namespace is None:
        return
    if type != "DELETED" and (meta.get("annotations") or {}).get(OPT_IN_ANNOTATION):
        res.CACHE.put("deployments", body)
    else:
        res.CACHE.drop("deployments", namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={deps.ROLE_LABEL: "canary"})
def canary_event(namespace: str | None, meta: kopf.Meta, **_: Any) -> None:
    if namespace is None:
        return
    rollout = deps.rollout_of_canary(meta)
    if rollout:
        scheduler = runtime().scheduler
        assert scheduler is not None
        scheduler.poke(("rollout", namespace, rollout))
