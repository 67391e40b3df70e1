"""Canary Deployments as the real API server and controllers see them: valid labels for any rollout name, the
target's matchExpressions kept, and two canaries in one namespace that never select each other's pods."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client
from modelratchet.api.rollout import CheckpointFrom
from modelratchet.kube import deployments as deps
from modelratchet.kube import resources as res

from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SOURCE = CheckpointFrom(container="server", env="MODEL_CHECKPOINT")
LONG_NAME = ("fraud-detector-canary." * 10)[:199] + "x"  # 200 characters, a valid DNS subdomain


def _rollout(custom: client.CustomObjectsApi, namespace: str, name: str, target: str) -> dict[str, Any]:
    body = {
        "apiVersion": "modelratchet.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"name": target},
            "checkpoint": "v2",
            "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
            "baselineRef": {"name": "b"},
            "steps": [{"setWeight": 50}],
        },
    }
    custom.create_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace, "modelrollouts", body)
    obj = res.get(custom, res.ROLLOUTS, namespace, name)
    assert obj is not None
    return obj


def _target(apps: client.AppsV1Api, namespace: str, name: str) -> dict[str, Any]:
    labels = {"app": "digits", "tier": "serving"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "digits"}},
        "spec": {
            "replicas": 1,
            "selector": {
                "matchLabels": {"app": "digits"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["serving"]},
                    {"key": deps.ROLE_LABEL, "operator": "DoesNotExist"},
                ],
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.k8s.io/pause:3.10",
                            "env": [{"name": "MODEL_CHECKPOINT", "value": "v1"}],
                        }
                    ]
                },
            },
        },
    }
    apps.create_namespaced_deployment(namespace, body)
    dep = deps.read_deployment(apps, namespace, name)
    assert dep is not None
    return dep


def _selector_string(selector: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        op = e["operator"]
        if op == "In":
            parts.append(f"{e['key']} in ({','.join(e['values'])})")
        elif op == "NotIn":
            parts.append(f"{e['key']} notin ({','.join(e['values'])})")
        elif op == "Exists":
            parts.append(e["key"])
        else:
            parts.append(f"!{e['key']}")
    return ",".join(parts)


def _pods(core: client.CoreV1Api, namespace: str, selector: dict[str, Any]) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=_selector_string(selector)).items)


def test_two_canaries_one_with_a_200_character_name(
    crds: list[str], kube_api: client.ApiClient, namespace: str
) -> None:
    custom, apps, core = client.CustomObjectsApi(kube_api), client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    long_owner = _rollout(custom, namespace, LONG_NAME, "digits")
    short_owner = _rollout(custom, namespace, "digits-b", "digits-b")
    canaries = []
    for owner, target in ((long_owner, "digits"), (short_owner, "digits-b")):
        desired = deps.build_canary(_target(apps, namespace, target), SOURCE, "v2", 1, owner)
        deps.ensure_canary(apps, desired, "modelratchet")  # the API server accepts every label and the selector
        canary = deps.read_deployment(apps, namespace, deps.canary_name(target))
        assert canary is not None
        canaries.append(canary)

    long_canary, short_canary = canaries
    meta = long_canary["metadata"]
    value = meta["labels"][deps.ROLLOUT_LABEL]
    assert len(value) <= 63 and value == deps.rollout_label_value(LONG_NAME)
    assert deps.rollout_of_canary(meta) == LONG_NAME, "the full name survives, in an annotation"
    selector = long_canary["spec"]["selector"]
    assert selector["matchLabels"][deps.ROLLOUT_LABEL] == value
    assert {"key": "tier", "operator": "In", "values": ["serving"]} in selector["matchExpressions"]

    # The controllers start one pod per canary and one per target; each canary's selector finds its own only.
    def settled() -> bool:
        return len(core.list_namespaced_pod(namespace).items) == 4

    wait_for(settled, timeout=60, message="four pods")
    for canary, own in ((long_canary, value), (short_canary, "digits-b")):
        pods = _pods(core, namespace, canary["spec"]["selector"])
        assert [p.metadata.labels[deps.ROLLOUT_LABEL] for p in pods] == [own]
    # And the targets, which exclude the role label, select no canary pod.
    target = deps.read_deployment(apps, namespace, "digits")
    assert target is not None
    assert all(deps.ROLE_LABEL not in p.metadata.labels for p in _pods(core, namespace, target["spec"]["selector"]))


def test_a_canary_with_an_older_selector_is_replaced(
    crds: list[str], kube_api: client.ApiClient, namespace: str
) -> None:
    """A Deployment's selector is immutable: the canary an older operator made is recreated, not stuck."""
    custom, apps = client.CustomObjectsApi(kube_api), client.AppsV1Api(kube_api)
    owner = _rollout(custom, namespace, "digits", "digits")
    desired = deps.build_canary(_target(apps, namespace, "digits"), SOURCE, "v2", 1, owner)
    older = copy.deepcopy(desired)
    older["spec"]["selector"] = {"matchLabels": {"app": "digits", deps.ROLE_LABEL: "canary"}}
    deps.ensure_canary(apps, older, "modelratchet")
    first = deps.read_deployment(apps, namespace, "digits-canary")
    assert first is not None

    deps.ensure_canary(apps, desired, "modelratchet")

    now = deps.read_deployment(apps, namespace, "digits-canary")
    assert now is not None and now["spec"]["selector"] == desired["spec"]["selector"]
    assert now["metadata"]["uid"] != first["metadata"]["uid"]
