"""Status writes against the real API server: guarded by resourceVersion, and an object deleted meanwhile is
'gone', not an error."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from modelratchet.kube import resources as res

pytestmark = pytest.mark.integration

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


def _create(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    custom.create_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace, "modelrollouts", ROLLOUT)
    obj = res.get(custom, res.ROLLOUTS, namespace, "r")
    assert obj is not None
    return obj


def test_a_stale_write_is_a_conflict(crds: list[str], kube_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(kube_api)
    obj = _create(custom, namespace)
    res.replace_status(custom, res.ROLLOUTS, obj, {"phase": "Idle"})
    with pytest.raises(res.Conflict):
        res.replace_status(custom, res.ROLLOUTS, obj, {"phase": "Progressing"})  # same, now stale, version
    fresh = res.get(custom, res.ROLLOUTS, namespace, "r")
    assert fresh is not None and fresh["status"] == {"phase": "Idle"}


def test_writes_to_a_deleted_object_are_gone(crds: list[str], kube_api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(kube_api)
    obj = _create(custom, namespace)
    custom.delete_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace, "modelrollouts", "r")
    with pytest.raises(res.Gone):
        res.replace_status(custom, res.ROLLOUTS, obj, {"phase": "Idle"})
    with pytest.raises(res.Gone):
        res.patch_status(custom, res.ROLLOUTS, namespace, "r", {"phase": "Idle"})
