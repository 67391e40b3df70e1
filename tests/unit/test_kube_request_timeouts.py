"""Every Kubernetes API call the operator makes carries a request timeout (a structural check, no server)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client import rest
from modelratchet.api.rollout import CheckpointFrom
from modelratchet.baselines import reconcile_baseline
from modelratchet.kube import deployments as deps
from modelratchet.kube import resources as res
from modelratchet.kube.leader import LeaseElector

TIMEOUT = 7.5

OBJECT = {
    "apiVersion": "modelratchet.io/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "5", "generation": 1, "uid": "u"},
    "spec": {},
    "status": {},
}
DEPLOYMENT = {
    "metadata": {"name": "t", "namespace": "ns"},
    "spec": {"selector": {"matchLabels": {"app": "m"}}, "template": {"spec": {"containers": [{"name": "server"}]}}},
}
LEASE = {"metadata": {"name": "leader", "namespace": "ns", "resourceVersion": "3"}, "spec": {"holderIdentity": "me"}}


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.status = 200
        self.reason = "OK"
        self.data = json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}


class RecordingApiClient(client.ApiClient):
    """A plain ApiClient (no default timeout of its own) that records each request instead of sending it."""

    request_timeout = TIMEOUT

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, Any]] = []

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        path = url.split("?")[0]
        self.calls.append((method, path, _request_timeout))
        if "/leases/" in path:
            body_out: dict[str, Any] = LEASE
        elif path.endswith("/modelrollouts") or path.endswith("/modelbaselines"):
            body_out = {"items": []}
        elif "/modelratchet.io/" in path and method == "GET":
            body_out = OBJECT
        elif "/deployments/" in path and method == "PATCH":
            body_out = DEPLOYMENT
        elif isinstance(body, dict):
            body_out = body  # as the server echoes a created or updated object
        else:
            body_out = {}
        return rest.RESTResponse(_Response(body_out))


def test_every_call_of_the_kube_modules_passes_the_request_timeout() -> None:
    api = RecordingApiClient()
    custom, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    source = CheckpointFrom(container="server", env="MODEL_CHECKPOINT")

    # kube/resources.py
    obj = res.get(custom, res.ROLLOUTS, "ns", "r")
    assert obj is not None
    res.list_in(custom, res.ROLLOUTS, "ns")
    res.replace_status(custom, res.ROLLOUTS, obj, {"phase": "Idle"})
    res.patch_status(custom, res.ROLLOUTS, "ns", "r", {"phase": "Idle"})
    res.emit_event(core, obj, "Normal", "Test", "message")
    res.set_degraded(custom, res.ROLLOUTS, "ns", "r", "RuntimeError: boom", now="2026-01-01T00:00:00Z")
    # kube/deployments.py
    deps.read_deployment(apps, "ns", "t")
    target = {
        "metadata": {"name": "t", "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": {"app": "m"}},
            "template": {
                "metadata": {"labels": {"app": "m"}},
                "spec": {"containers": [{"name": "server", "env": [{"name": "MODEL_CHECKPOINT", "value": "v1"}]}]},
            },
        },
    }
    deps.ensure_canary(apps, deps.build_canary(target, source, "v2", 1, obj), "modelratchet")
    deps.delete_canary(apps, "ns", "t")
    deps.set_target_checkpoint(apps, "ns", "t", source, "v2", "modelratchet")
    # baselines.py
    reconcile_baseline(custom, "ns", "b")
    # kube/leader.py (its own timeout, bounded by the renew deadline)
    elector = LeaseElector(
        client.CoordinationV1Api(api), namespace="ns", name="leader", identity="me", request_timeout=TIMEOUT
    )
    assert elector.try_acquire_or_renew()
    elector.stop()

    methods = {m for m, _, _ in api.calls}
    assert {"GET", "PUT", "PATCH", "POST", "DELETE"} <= methods
    assert len(api.calls) >= 15
    missing = [(m, p) for m, p, t in api.calls if t != TIMEOUT]
    assert missing == [], f"calls without the request timeout: {missing}"


def test_request_timeout_falls_back_to_the_default() -> None:
    assert res.request_timeout(client.CustomObjectsApi(client.ApiClient())) == res.DEFAULT_REQUEST_TIMEOUT
    api = res.OperatorApiClient(request_timeout=3.0)
    assert res.request_timeout(client.AppsV1Api(api)) == 3.0
