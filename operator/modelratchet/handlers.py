"""Kopf wiring: watch events poke the scheduler; the scheduler runs reconciles off the event loop."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import kopf
from kubernetes import client, config

from modelratchet import telemetry
from modelratchet.api.common import GROUP, VERSION
from modelratchet.baselines import reconcile_baseline
from modelratchet.kube.leader import LeaseElector
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.reconciler import Reconciler
from modelratchet.scheduler import Key, Scheduler
from modelratchet.settings import OperatorSettings

log = logging.getLogger("modelratchet")

_state: dict[str, Any] = {}


def _api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def _work(key: Key) -> float | None:
    kind, namespace, name = key
    if kind == "rollout":
        reconciler: Reconciler = _state["reconciler"]
        try:
            return reconciler.tick(namespace, name)
        except Exception:
            telemetry.RECONCILE_ERRORS.labels(namespace, "ModelRollout").inc()
            raise
    try:
        return reconcile_baseline(_state["custom"], namespace, name)
    except Exception:
        telemetry.RECONCILE_ERRORS.labels(namespace, "ModelBaseline").inc()
        raise


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

    api = _api_client()
    from modelratchet.notify import WebhookNotifier

    notifier = WebhookNotifier(client.CoreV1Api(api))
    reconciler = Reconciler(ours, api, MetricsProvider(), notifier)
    scheduler = Scheduler(_work, workers=16, max_interval=ours.tick_seconds)
    _state.update(
        reconciler=reconciler,
        scheduler=scheduler,
        notifier=notifier,
        custom=client.CustomObjectsApi(api),
        settings=ours,
    )
    lease_ns = os.environ.get("MODELRATCHET_LEASE_NAMESPACE")
    if lease_ns:
        identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        scheduler.active.clear()
        elector = LeaseElector(
            client.CoordinationV1Api(api),
            namespace=lease_ns,
            name=os.environ.get("MODELRATCHET_LEASE_NAME", "modelratchet-leader"),
            identity=identity,
            on_change=scheduler.active,
        )
        elector.start()
        _state["elector"] = elector
    scheduler.start()
    if ours.metrics_port:
        telemetry.serve(ours.metrics_port)
    log.info("ModelRatchet operator started (prometheus %s)", ours.prometheus_url)


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    if "elector" in _state:
        _state["elector"].stop()
    if "scheduler" in _state:
        _state["scheduler"].stop()
    if "notifier" in _state:
        _state["notifier"].close(timeout=5.0)  # let queued notifications go out


@kopf.on.event(GROUP, VERSION, "modelrollouts")
def rollout_event(type: str, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
    if namespace is None:
        return
    scheduler: Scheduler = _state["scheduler"]
    if type == "DELETED":
        scheduler.forget(("rollout", namespace, name))
        telemetry.observe_phase(namespace, name, None)
    else:
        scheduler.poke(("rollout", namespace, name))
    ref = (body.get("spec") or {}).get("baselineRef", {}).get("name")
    if ref:
        scheduler.poke(("baseline", namespace, ref), 1.0)


@kopf.on.event(GROUP, VERSION, "modelbaselines")
def baseline_event(type: str, namespace: str | None, name: str, **_: Any) -> None:
    if namespace is None:
        return
    scheduler: Scheduler = _state["scheduler"]
    if type == "DELETED":
        scheduler.forget(("baseline", namespace, name))
    else:
        scheduler.poke(("baseline", namespace, name), 0.5)


@kopf.on.event("apps", "v1", "deployments", labels={"modelratchet.io/role": "canary"})
def canary_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    if namespace is None:
        return
    rollout = labels.get("modelratchet.io/rollout")
    if rollout:
        _state["scheduler"].poke(("rollout", namespace, rollout))
