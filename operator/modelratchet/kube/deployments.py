"""The target Deployment and its `<target>-canary` sibling."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.common import API_VERSION
from modelratchet.api.rollout import CheckpointFrom
from modelratchet.rollout.types import CanaryState, TargetState

from .checkpoint import CheckpointFieldError, apply_patch, read_checkpoint, with_checkpoint

ROLE_LABEL = "modelratchet.io/role"
ROLLOUT_LABEL = "modelratchet.io/rollout"
CHECKPOINT_ANNOTATION = "modelratchet.io/checkpoint"


def canary_name(target: str) -> str:
    return f"{target}-canary"


def _json(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.data))


def read_deployment(apps: client.AppsV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _json(apps.read_namespaced_deployment(name, namespace, _preload_content=False))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def is_available(dep: dict[str, Any]) -> bool:
    """The Deployment finished rolling out its current template and all replicas are available."""
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    gen = int((dep.get("metadata") or {}).get("generation", 0))
    return (
        int(status.get("observedGeneration", 0)) >= gen
        and int(status.get("updatedReplicas", 0)) >= want
        and int(status.get("availableReplicas", 0)) >= want
        and int(status.get("replicas", 0)) <= want
    )


def target_state(dep: dict[str, Any], source: CheckpointFrom) -> TargetState:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    try:
        checkpoint: str | None = read_checkpoint(spec.get("template") or {}, source)
        error = None
    except CheckpointFieldError as e:
        checkpoint, error = None, f"Deployment {dep['metadata']['name']!r}: {e}"
    return TargetState(
        checkpoint=checkpoint,
        replicas=replicas,
        ready_replicas=int(status.get("readyReplicas", 0)),
        available=is_available(dep),
        error=error,
    )


def canary_state(dep: dict[str, Any]) -> CanaryState:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    annotations = (dep.get("metadata") or {}).get("annotations") or {}
    ready = int(status.get("readyReplicas", 0))
    # Pods of an older canary template do not count toward the candidate's share.
    if int(status.get("observedGeneration", 0)) < int(dep["metadata"].get("generation", 0)):
        ready = 0
    ready = min(ready, int(status.get("updatedReplicas", 0)))
    return CanaryState(
        checkpoint=annotations.get(CHECKPOINT_ANNOTATION),
        replicas=int(spec.get("replicas", 0)),
        ready_replicas=ready,
    )


def build_canary(
    target: dict[str, Any], source: CheckpointFrom, checkpoint: str, replicas: int, owner: dict[str, Any]
) -> dict[str, Any]:
    """A Deployment cloned from the target's pod template, running the candidate checkpoint.

    Its pods keep the target's labels, so the target's Service selects both; its own selector adds a role
    label so the two Deployments never claim each other's pods.
    """
    tname = target["metadata"]["name"]
    template = with_checkpoint(target["spec"]["template"], source, checkpoint)
    meta = template.setdefault("metadata", {})
    meta.setdefault("labels", {})
    meta["labels"] = {**meta["labels"], ROLE_LABEL: "canary", ROLLOUT_LABEL: owner["metadata"]["name"]}
    meta["annotations"] = {**(meta.get("annotations") or {}), CHECKPOINT_ANNOTATION: checkpoint}
    selector = dict(target["spec"]["selector"].get("matchLabels") or {})
    selector[ROLE_LABEL] = "canary"
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        "template": template,
    }
    for key in ("minReadySeconds", "strategy", "progressDeadlineSeconds"):
        if key in target["spec"]:
            spec[key] = target["spec"][key]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(tname),
            "namespace": target["metadata"]["namespace"],
            "labels": {
                **(target["metadata"].get("labels") or {}),
                ROLE_LABEL: "canary",
                ROLLOUT_LABEL: owner["metadata"]["name"],
            },
            "annotations": {CHECKPOINT_ANNOTATION: checkpoint},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ModelRollout",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def ensure_canary(apps: client.AppsV1Api, desired: dict[str, Any], field_manager: str) -> None:
    """Create or update the canary with server-side apply: the operator owns every field of it."""
    meta = desired["metadata"]
    apps.patch_namespaced_deployment(
        meta["name"],
        meta["namespace"],
        desired,
        field_manager=field_manager,
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def delete_canary(apps: client.AppsV1Api, namespace: str, target: str) -> None:
    try:
        apps.delete_namespaced_deployment(
            canary_name(target), namespace, body=client.V1DeleteOptions(propagation_policy="Background")
        )
    except ApiException as e:
        if e.status != 404:
            raise


def set_target_checkpoint(
    apps: client.AppsV1Api, namespace: str, name: str, source: CheckpointFrom, checkpoint: str, field_manager: str
) -> None:
    """Write the checkpoint into the target with server-side apply under our field manager.

    Only that one field is in the apply, so GitOps tools keep owning everything else; Argo CD is told to
    ignore fields owned by this manager (`ignoreDifferences.managedFieldsManagers`).
    """
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}}
    body.update(apply_patch(source, checkpoint))
    apps.patch_namespaced_deployment(
        name, namespace, body, field_manager=field_manager, force=True, _content_type="application/apply-patch+yaml"
    )
