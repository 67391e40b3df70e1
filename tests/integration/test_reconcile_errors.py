"""An unexpected error in a reconcile is recorded where people look (a Degraded condition and a Warning Event),
retried with backoff, and cleared by the next clean reconcile; against the real API server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from modelratchet import handlers
from modelratchet.kube import resources as res
from modelratchet.scheduler import Scheduler
from modelratchet.settings import OperatorSettings

from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROLLOUT = {
    "apiVersion": "modelratchet.io/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "r"},
    "spec": {
        "targetRef": {"name": "t"},
        "checkpoint": "v2",
        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
        "baselineRef": {"name": "b"},
        "steps": [{"setWeight": 10}],
    },
}


class FlakyReconciler:
    """Stands in for the Reconciler: raises what it is told to, counting its attempts."""

    def __init__(self) -> None:
        self.error: Exception | None = RuntimeError("boom: the reconciler tripped over \x1b[2J" + "x" * 5000)
        self.attempts = 0
        self.lock = threading.Lock()

    def tick(self, namespace: str, name: str) -> float | None:
        with self.lock:
            self.attempts += 1
            if self.error is not None:
                raise self.error
        return 30.0


@pytest.fixture
def flaky(kube_api: client.ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyReconciler]:
    reconciler = FlakyReconciler()
    rt = handlers.Runtime(
        api=kube_api,
        custom=client.CustomObjectsApi(kube_api),
        core=client.CoreV1Api(kube_api),
        settings=OperatorSettings(),
        reconciler=reconciler,
    )
    monkeypatch.setattr(handlers, "_runtime", rt)
    yield reconciler


def _degraded(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    obj = res.get(custom, res.ROLLOUTS, namespace, "r")
    assert obj is not None
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Degraded"), {})


def _warnings(core: client.CoreV1Api, namespace: str) -> list[Any]:
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=r").items
    return [e for e in events if e.type == "Warning" and e.reason == "ReconcileError"]


def test_a_failing_reconcile_is_degraded_backs_off_and_recovers(
    crds: list[str], kube_api: client.ApiClient, namespace: str, flaky: FlakyReconciler
) -> None:
    custom, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    custom.create_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace, "modelrollouts", ROLLOUT)
    key = ("rollout", namespace, "r")

    with pytest.raises(RuntimeError):
        handlers._work(key)  # the error still reaches the scheduler, which backs off
    degraded = _degraded(custom, namespace)
    assert (degraded["status"], degraded["reason"]) == ("True", "ReconcileError")
    assert degraded["message"].startswith("RuntimeError: boom: the reconciler tripped over")
    assert len(degraded["message"]) <= handlers.MAX_ERROR_MESSAGE
    assert "\x1b" not in degraded["message"], "one line of text, no control characters"
    assert len(_warnings(core, namespace)) == 1

    # The same error again: the condition already says so, and the Event is not repeated.
    with pytest.raises(RuntimeError):
        handlers._work(key)
    assert len(_warnings(core, namespace)) == 1

    # Through the scheduler: retried with growing delays (never a tight loop), then a clean reconcile ends it.
    scheduler = Scheduler(handlers._work, backoff_max=0.4)
    scheduler.start()
    try:
        scheduler.poke(key)
        wait_for(lambda: flaky.attempts >= 5, timeout=30, message="retries")
        flaky.error = None
        wait_for(
            lambda: _degraded(custom, namespace).get("status") == "False",
            timeout=30,
            message="Degraded=False after a clean reconcile",
        )
    finally:
        scheduler.stop()
    assert _degraded(custom, namespace)["reason"] == "Healthy"
