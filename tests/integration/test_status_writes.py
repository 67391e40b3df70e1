"""Status writes against the real API server: guarded by resourceVersion, and an object deleted meanwhile is
'gone', not an error."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.rollout import HistoryEntry, MetricResult, ModelRolloutStatus
from modelratchet.kube import resources as res
from modelratchet.rollout.bounds import bound_status

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


def _huge_status() -> ModelRolloutStatus:
    """50 analyses whose messages (a PromQL error echoing a huge query, say) are 64 KiB each: over 6 MB."""
    big = "q" * 64 * 1024
    history = [
        HistoryEntry(
            id=i,
            time="2026-01-01T00:00:00Z",
            checkpoint=f"v{i}",
            step=0,
            verdict="inconclusive",
            message=big,
            metrics=[MetricResult(metric="accuracy", outcome="inconclusive", severity="critical", message=big)],
        )
        for i in range(50, 0, -1)
    ]
    return ModelRolloutStatus(phase="Progressing", message=big, last_history_id=50, history=history)


def test_a_bounded_status_is_accepted_where_the_unbounded_one_is_not(
    crds: list[str], kube_api: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    obj = _create(custom, namespace)
    status = _huge_status()
    with pytest.raises(ApiException) as raised:  # etcd's and the API server's request limits
        res.replace_status(custom, res.ROLLOUTS, obj, status.model_dump(by_alias=True, exclude_none=True, mode="json"))
    assert raised.value.status in (413, 422, 500), raised.value

    bounded = bound_status(status)
    res.replace_status(custom, res.ROLLOUTS, obj, bounded.model_dump(by_alias=True, exclude_none=True, mode="json"))

    stored = res.get(custom, res.ROLLOUTS, namespace, "r")
    assert stored is not None
    back = ModelRolloutStatus.model_validate(stored["status"])
    assert back == bounded, "stored as written: nothing pruned or rejected"
    assert back.last_history_id == 50 and back.history and back.history[0].id == 50
