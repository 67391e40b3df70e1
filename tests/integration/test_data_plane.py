"""The local data plane itself: pods that serve on their pod IPs, Services whose EndpointSlices hold those IPs,
Traefik routing HTTPRoutes (weights, header matches, TraefikService mirroring), Prometheus discovering the pods.

One namespace for the module: Deployment `a` (checkpoint V1, 2 pods) and `b` (V2, 1 pod), each with a Service;
every test routes its own hostname.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from e2e.harness.dataplane import DataPlane
from e2e.harness.model_servers import CHECKPOINT_HEADER
from e2e.harness.scenario import V1, V2, Scenario, http_route, service, serving_deployment
from e2e.harness.wait import wait_for

pytestmark = pytest.mark.integration

A, B = "a", "b"


class Setup:
    def __init__(self, sc: Scenario, plane: DataPlane) -> None:
        self.sc = sc
        self.plane = plane
        self.ns = sc.ns

    def pods(self, app: str) -> list[dict[str, Any]]:
        resp = self.sc.core.list_namespaced_pod(self.ns, label_selector=f"app={app}", _preload_content=False)
        return [p for p in json.loads(resp.data)["items"] if not p["metadata"].get("deletionTimestamp")]

    def ready(self, app: str, replicas: int) -> bool:
        dep = self.sc.apps.read_namespaced_deployment(app, self.ns)
        return bool((dep.status.ready_replicas or 0) == replicas and len(self.pods(app)) == replicas)

    def route(self, rules: list[dict[str, Any]]) -> str:
        """An HTTPRoute of its own hostname with `rules`, accepted by Traefik and answering; returns the host."""
        name = f"r-{secrets.token_hex(3)}"
        host = f"{name}.{self.ns}.test"
        route = http_route(name, [host], self.plane.parent_ref(), rules)
        route["metadata"]["namespace"] = self.ns
        self.plane.gateway.apply([route])
        self.plane.gateway.wait_route(self.ns, name)
        self.plane.wait_routed(host)
        return host


@pytest.fixture(scope="module")
def setup(
    data_plane: DataPlane, kube_api: client.ApiClient, prometheus: Any, local_cluster: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Setup]:
    ns = f"data-plane-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", ns)
    sc = Scenario(kube_api, ns, prometheus, model="digits-dp", checkpoints=(V1, V2),
                  log_dir=tmp_path_factory.mktemp("data-plane"), data_plane=data_plane)
    sc.start_servers()  # the model store: V1 and V2
    for app, checkpoint, replicas in ((A, V1, 2), (B, V2, 1)):
        sc.apps.create_namespaced_deployment(
            ns, serving_deployment(app, checkpoint, replicas, model=sc.model, store=sc.store, rollout=None))
        sc.core.create_namespaced_service(ns, service(app, {"app": app}))
    s = Setup(sc, data_plane)
    wait_for(lambda: s.ready(A, 2) and s.ready(B, 1), timeout=90, message="a and b ready")
    try:
        yield s
    finally:
        for app in (A, B):
            sc.apps.delete_namespaced_deployment(app, ns, propagation_policy="Background")
        wait_for(lambda: not [p for p in data_plane.pods() if p["namespace"] == ns], timeout=60,
                 message="the module's pod processes to stop")
        local_cluster.kubectl("delete", "namespace", ns, "--wait=false")


def _get(url: str) -> tuple[dict[str, Any], str | None]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read()), resp.headers.get(CHECKPOINT_HEADER)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def test_a_labelled_pod_serves_on_its_pod_ip_and_is_ready_only_while_it_answers(setup: Setup) -> None:
    (pod,) = setup.pods(B)
    ip = pod["status"]["podIP"]
    assert setup.plane.net.contains(ip), f"{ip} is not in the cluster's pod network {setup.plane.net.subnet}"
    health, header = _get(f"http://{ip}:8080/healthz")  # from the root namespace, through the veth
    assert health["checkpoint"] == header == V2 and health["model"] == "digits-dp"

    # Readiness follows the process: killed, the pod turns unready, then the restarted process makes it ready.
    (run,) = [p for p in setup.plane.pods() if p["uid"] == pod["metadata"]["uid"]]
    os.kill(run["containers"][0]["pid"], signal.SIGKILL)

    def status() -> dict[str, Any]:
        return json.loads(setup.sc.core.read_namespaced_pod_status(pod["metadata"]["name"], setup.ns,
                                                                   _preload_content=False).data)

    wait_for(lambda: not _ready(status()), timeout=30, message="the pod unready after its process died")
    restarted = wait_for(lambda: _ready(p := status()) and p, timeout=30, message="the pod ready again")
    container = restarted["status"]["containerStatuses"][0]
    assert container["restartCount"] == 1 and container["lastState"]["terminated"]["exitCode"] == 137
    assert _get(f"http://{ip}:8080/healthz")[1] == V2


def test_a_service_endpointslice_holds_the_pod_ips(setup: Setup) -> None:
    ips = sorted(p["status"]["podIP"] for p in setup.pods(A))
    discovery = client.DiscoveryV1Api(setup.sc.api)

    def endpoints() -> list[str]:
        slices = discovery.list_namespaced_endpoint_slice(setup.ns, label_selector=f"kubernetes.io/service-name={A}")
        return sorted(a for s in slices.items for e in s.endpoints or [] if e.conditions.ready for a in e.addresses)

    assert wait_for(lambda: endpoints() == ips, timeout=30, message=f"EndpointSlice of {A} = {ips}")


def test_weights_95_5_split_requests_as_configured(setup: Setup) -> None:
    host = setup.route([{"backendRefs": [{"name": A, "port": 80, "weight": 95}, {"name": B, "port": 80, "weight": 5}]}])
    before = setup.sc.served()
    counts = setup.plane.count_answers(host, 2000)
    served = setup.sc.served()
    print(f"\n[figure] HTTPRoute weights 95/5 over 2,000 requests: {counts[V1]} / {counts[V2]} (failed {counts['']})")
    assert counts[""] == 0
    assert abs(counts[V2] / 2000 - 0.05) <= 0.03
    # The servers saw exactly what the client saw.
    assert {k: served[k] - before.get(k, 0) for k in served} == {V1: counts[V1], V2: counts[V2]}


def test_a_header_match_routes_only_matching_requests(setup: Setup) -> None:
    host = setup.route([
        {"matches": [{"headers": [{"name": "x-canary", "value": "always"}]}], "backendRefs": [{"name": B, "port": 80}]},
        {"backendRefs": [{"name": A, "port": 80}]},
    ])
    assert setup.plane.count_answers(host, 100, headers={"X-Canary": "always"}) == {V2: 100}
    assert setup.plane.count_answers(host, 100) == {V1: 100}
    assert setup.plane.count_answers(host, 50, headers={"X-Canary": "never"}) == {V1: 50}


def test_traefik_service_mirroring_copies_requests_the_client_never_sees(setup: Setup) -> None:
    name = f"mirror-{secrets.token_hex(3)}"
    mirror = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": setup.ns},
        "spec": {"mirroring": {"name": A, "port": 80, "mirrors": [{"name": B, "port": 80, "percent": 100}]}},
    }
    setup.plane.gateway.apply([mirror])
    host = setup.route([{"backendRefs": [{"group": "traefik.io", "kind": "TraefikService", "name": name}]}])
    before = setup.sc.served()
    counts = setup.plane.count_answers(host, 200)
    assert counts == {V1: 200}, "clients see only the main backend"
    # Mirrored copies are sent alongside and their answers dropped: the candidate's server counts them.
    wait_for(lambda: setup.sc.served().get(V2, 0) - before.get(V2, 0) >= 200, timeout=30,
             message="200 mirrored requests at b")
    served = setup.sc.served()
    print(f"\n[figure] TraefikService mirroring 100%: client saw {counts[V1]} answers of {V1}; "
          f"servers of {V2} received {served[V2] - before.get(V2, 0):.0f} copies")
    assert served[V2] - before.get(V2, 0) == 200
    assert served[V1] - before.get(V1, 0) == 200


def test_a_mirror_without_endpoints_leaves_the_main_backend_serving(setup: Setup) -> None:
    """A candidate whose pods are not ready yet: with allowEmptyServices the TraefikService still serves."""
    name = f"mirror-{secrets.token_hex(3)}"
    setup.sc.core.create_namespaced_service(setup.ns, service(f"{name}-none", {"app": "nothing-selects-this"}))
    mirror = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": setup.ns},
        "spec": {"mirroring": {"name": A, "port": 80, "mirrors": [{"name": f"{name}-none", "port": 80,
                                                                     "percent": 100}]}},
    }
    setup.plane.gateway.apply([mirror])
    host = setup.route([{"backendRefs": [{"group": "traefik.io", "kind": "TraefikService", "name": name}]}])
    assert setup.plane.count_answers(host, 100) == {V1: 100}


def test_a_request_mirror_filter_breaks_the_rule_on_traefik(setup: Setup) -> None:
    """Traefik's Gateway API provider does not implement RequestMirror. It still reports the route Accepted and
    ResolvedRefs, logs `unsupported filter RequestMirror`, and answers that rule's requests with 500: a router
    must not use the filter on Traefik (TraefikService mirroring does the job, see above)."""
    name = f"r-{secrets.token_hex(3)}"
    host = f"{name}.{setup.ns}.test"
    rule = {"filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": B, "port": 80}}}],
            "backendRefs": [{"name": A, "port": 80}]}
    route = http_route(name, [host], setup.plane.parent_ref(), [rule])
    route["metadata"]["namespace"] = setup.ns
    setup.plane.gateway.apply([route])
    conditions = setup.plane.gateway.wait_route(setup.ns, name)  # Accepted, ResolvedRefs: nothing says no
    log = setup.plane.gateway.log_file
    wait_for(lambda: f"unsupported filter RequestMirror\" http_route={name}" in log.read_text(), timeout=30,
             message="Traefik's error about the filter")
    # Until Traefik applies the new configuration (asynchronously), the host has no router at all: 404.
    answer = wait_for(lambda: (a := setup.plane.request(host, "/healthz")).status != 404 and a, timeout=30,
                      message=f"Traefik serving a router for {host}")
    print(f"\n[figure] RequestMirror on Traefik: route {sorted(conditions)} True, requests answered {answer.status}")
    assert answer.status == 500 and answer.checkpoint is None, "no model server sees the rule's requests"


def test_prometheus_discovers_and_scrapes_the_serving_pods(setup: Setup, prometheus: Any) -> None:
    pods = {p["metadata"]["name"] for p in setup.pods(A) + setup.pods(B)}

    def scraped() -> set[str]:
        found = prometheus.query(f'model_predictions_total{{job="pods",namespace="{setup.ns}"}}')
        return {r["metric"]["pod"] for r in found if r["metric"].get("checkpoint") in (V1, V2)}

    wait_for(lambda: scraped() >= pods, timeout=60, message=f"series of {sorted(pods)} in Prometheus")
    (series,) = prometheus.query(f'model_predictions_total{{namespace="{setup.ns}",checkpoint="{V2}"}}')
    assert series["metric"]["model"] == "digits-dp" and series["metric"]["pod"] in pods
    ip = {p["metadata"]["name"]: p["status"]["podIP"] for p in setup.pods(B)}[series["metric"]["pod"]]
    assert series["metric"]["instance"] == f"{ip}:8080", "scraped at the pod IP"

