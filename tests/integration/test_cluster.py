"""The local control plane really rolls Deployments out: kwok makes pods Ready on fake nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from e2e.harness.cluster import LocalCluster
from e2e.harness.components import COMPONENTS
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPLICAS = 3
Obj = dict[str, Any]


def _plain(api: client.ApiClient, obj: object) -> Any:
    """API objects as plain JSON-shaped dicts (camelCase keys, as in manifests)."""
    return api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


def _deployment(name: str) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    # kwok never pulls it; on kind the pause image is already on every node.
                    "name": "server", "image": "registry.k8s.io/pause:3.10",
                    "env": [{"name": "CHECKPOINT", "value": "ckpt-1"}],
                }]},
            },
        },
    }


class NotRolledOut(Exception):
    """Raised (and retried by wait_for) while a rollout is in progress; carries the status seen."""


def _rolled_out(api: client.ApiClient, namespace: str, name: str) -> Obj:
    """The Deployment once the controller has observed its spec and every replica is updated and
    available (the same conditions `kubectl rollout status` uses)."""
    dep: Obj = _plain(api, client.AppsV1Api(api).read_namespaced_deployment(name, namespace))
    st = dep.get("status", {})
    available = any(c["type"] == "Available" and c["status"] == "True" for c in st.get("conditions", []))
    done = (
        st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
        and st.get("updatedReplicas") == REPLICAS
        and st.get("readyReplicas") == REPLICAS
        and st.get("availableReplicas") == REPLICAS
        and st.get("replicas") == REPLICAS  # old ReplicaSet scaled to zero
        and available
    )
    if not done:
        raise NotRolledOut(f"generation {dep['metadata']['generation']}, status {st}")
    return dep


def _is_kwok(node: Obj) -> bool:
    return bool(node["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake")


def _nodes(api: client.ApiClient) -> list[Obj]:
    return list(_plain(api, client.CoreV1Api(api).list_node())["items"])


def _pods(api: client.ApiClient, namespace: str, app: str) -> list[Obj]:
    return list(_plain(api, client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}"))["items"])


def test_nodes_are_ready(kube_api: client.ApiClient) -> None:
    nodes = _nodes(kube_api)
    assert nodes, "no nodes registered"
    for node in nodes:
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        assert conditions.get("Ready") == "True", (node["metadata"]["name"], conditions)
        if _is_kwok(node):
            # Simulated nodes must never advertise anything but loopback.
            addresses = {a["type"]: a["address"] for a in node["status"].get("addresses", [])}
            assert addresses.get("InternalIP", "").startswith("127."), addresses


def test_kubectl_and_server_version(local_cluster: LocalCluster) -> None:
    versions = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    assert versions["clientVersion"]["gitVersion"] == COMPONENTS["kubernetes"].version
    assert versions["serverVersion"]["major"] == "1"
    assert local_cluster.kubectl("get", "serviceaccount", "default", "-n", "default").returncode == 0


def test_deployment_becomes_available_and_rolls_out(
    kube_api: client.ApiClient, namespace: str, local_cluster: LocalCluster
) -> None:
    apps = client.AppsV1Api(kube_api)
    name = "model-server"
    apps.create_namespaced_deployment(namespace, _deployment(name))  # type: ignore[arg-type]  # dicts are accepted

    first = wait_for(lambda: _rolled_out(kube_api, namespace, name), timeout=60,
                     message=f"{name} to become Available", ignore=(NotRolledOut,))
    pods = _pods(kube_api, namespace, name)
    assert len(pods) == REPLICAS
    kwok_nodes = {n["metadata"]["name"] for n in _nodes(kube_api) if _is_kwok(n)}
    for pod in pods:
        assert pod["spec"].get("nodeName"), "the scheduler should have bound the pod"
        assert pod["status"]["phase"] == "Running"
        if pod["spec"]["nodeName"] in kwok_nodes and local_cluster.pod_network is not None:
            # kwok hands out pod IPs from the cluster's slot of 10.244.0.0/16 (e2e/harness/netns.py).
            assert local_cluster.pod_network.contains(pod["status"].get("podIP", "")), pod["status"]

    def replica_sets() -> dict[str, Obj]:
        found = _plain(kube_api, apps.list_namespaced_replica_set(namespace, label_selector=f"app={name}"))
        return {rs["metadata"]["name"]: rs for rs in found["items"]}

    (old_rs,) = replica_sets()

    # A pod-template change (new checkpoint) must roll out as a new ReplicaSet.
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "env": [{"name": "CHECKPOINT", "value": "ckpt-2"}]}
    ]}}}}
    apps.patch_namespaced_deployment(name, namespace, patch)

    second = wait_for(lambda: _rolled_out(kube_api, namespace, name), timeout=90,
                      message=f"{name} to roll out the patched template", ignore=(NotRolledOut,))
    assert second["metadata"]["generation"] > first["metadata"]["generation"]
    assert second["status"]["updatedReplicas"] == REPLICAS

    sets = replica_sets()
    assert len(sets) == 2, sorted(sets)
    new_rs = next(rs for n, rs in sets.items() if n != old_rs)
    assert new_rs["status"].get("readyReplicas") == REPLICAS
    assert sets[old_rs]["spec"]["replicas"] == 0
    assert new_rs["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "CHECKPOINT", "value": "ckpt-2"}]

    live = [p for p in _pods(kube_api, namespace, name) if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == REPLICAS
    assert all(p["spec"]["containers"][0]["env"][0]["value"] == "ckpt-2" for p in live)
