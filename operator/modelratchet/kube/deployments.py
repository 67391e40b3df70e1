"""The target Deployment and its `<target>-canary` sibling."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.common import API_VERSION
from modelratchet.api.rollout import CheckpointFrom
from modelratchet.rollout.types import CanaryState, TargetState

from .checkpoint import CheckpointFieldError, apply_patch, read_checkpoint, with_checkpoint
from .resources import request_timeout

ROLE_LABEL = "modelratchet.io/role"
ROLLOUT_LABEL = "modelratchet.io/rollout"  # rollout_label_value(name): a name may be longer than a label value
ROLLOUT_ANNOTATION = "modelratchet.io/rollout"  # the full name of the owning ModelRollout
CHECKPOINT_ANNOTATION = "modelratchet.io/checkpoint"
_OUR_LABELS = (ROLE_LABEL, ROLLOUT_LABEL)
LABEL_VALUE_MAX = 63
_HASH_CHARS = 10


def rollout_label_value(name: str) -> str:
    """The value of the rollout label for a ModelRollout name: the name itself when it fits in a label value,
    otherwise a prefix of it and a hash of all of it (names go up to 253 characters, label values to 63).

    Names are DNS subdomains (lowercase alphanumerics, '-', '.'; alphanumeric at both ends), so the result is a
    valid label value either way; distinct names give distinct values barring a hash collision.
    """
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_CHARS]
    return f"{name[: LABEL_VALUE_MAX - _HASH_CHARS - 1]}-{digest}"


def rollout_of_canary(meta: Mapping[str, Any]) -> str | None:
    """The ModelRollout a canary Deployment belongs to: the annotation, else its controller owner reference."""
    name = (meta.get("annotations") or {}).get(ROLLOUT_ANNOTATION)
    if name:
        return str(name)
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == "ModelRollout"
            and ref.get("apiVersion", "").startswith("modelratchet.io/")
        ):
            return str(ref.get("name"))
    return None


def canary_selector(target_selector: Mapping[str, Any], rollout: str) -> dict[str, Any]:
    """The target's selector narrowed to this rollout's canary pods.

    matchExpressions are kept (dropping them would make the canary select pods the target does not), and the
    rollout label keeps two canaries in one namespace from selecting each other's pods. Expressions on our own
    label keys are left out: those keys are ours to set on the canary.
    """
    labels = {k: v for k, v in (target_selector.get("matchLabels") or {}).items() if k not in _OUR_LABELS}
    labels[ROLE_LABEL] = "canary"
    labels[ROLLOUT_LABEL] = rollout_label_value(rollout)
    selector: dict[str, Any] = {"matchLabels": labels}
    expressions = [e for e in target_selector.get("matchExpressions") or [] if e.get("key") not in _OUR_LABELS]
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def canary_name(target: str) -> str:
    return f"{target}-canary"


def _json(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.data))


def read_deployment(apps: client.AppsV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _json(
            apps.read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=request_timeout(apps)
            )
        )
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

    Its pods keep the target's labels, so the target's Service selects both; its own selector adds the role and
    rollout labels so the target, this canary and any other canary never claim each other's pods.
    """
    tname = target["metadata"]["name"]
    rollout = owner["metadata"]["name"]
    ours = canary_labels(rollout)
    template = with_checkpoint(target["spec"]["template"], source, checkpoint)
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **ours}
    meta["annotations"] = {**(meta.get("annotations") or {}), CHECKPOINT_ANNOTATION: checkpoint}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": canary_selector(target["spec"]["selector"], rollout),
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
            "labels": {**(target["metadata"].get("labels") or {}), **ours},
            "annotations": {CHECKPOINT_ANNOTATION: checkpoint, ROLLOUT_ANNOTATION: rollout},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def canary_labels(rollout: str) -> dict[str, str]:
    """The labels that mark a rollout's canary pods: its Deployment sets them, its Service selects by them."""
    return {ROLE_LABEL: "canary", ROLLOUT_LABEL: rollout_label_value(rollout)}


def owner_reference(rollout: dict[str, Any]) -> dict[str, Any]:
    """What the operator creates for a ModelRollout is owned by it: deleted with it, never adopted by another."""
    meta = rollout["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelRollout",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _apply(apps: client.AppsV1Api, desired: dict[str, Any], field_manager: str) -> None:
    meta = desired["metadata"]
    apps.patch_namespaced_deployment(
        meta["name"],
        meta["namespace"],
        desired,
        field_manager=field_manager,
        force=True,
        _content_type="application/apply-patch+yaml",
        _request_timeout=request_timeout(apps),
    )


def ensure_canary(apps: client.AppsV1Api, desired: dict[str, Any], field_manager: str) -> None:
    """Create or update the canary with server-side apply: the operator owns every field of it.

    A Deployment's selector is immutable: a canary made with another selector (by an older operator version)
    is replaced, which briefly takes its pods out of the Service, as a rollback would.
    """
    try:
        _apply(apps, desired, field_manager)
    except ApiException as e:
        if e.status != 422:
            raise
        meta = desired["metadata"]
        current = read_deployment(apps, meta["namespace"], meta["name"])
        if (
            current is None
            or (current.get("spec") or {}).get("selector") == desired["spec"]["selector"]
            or not _same_owner(current["metadata"], meta)
        ):
            raise
        _delete(apps, meta["namespace"], meta["name"])
        _apply(apps, desired, field_manager)


def _same_owner(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    uids = {r.get("uid") for r in a.get("ownerReferences") or [] if r.get("controller")}
    return any(r.get("uid") in uids for r in b.get("ownerReferences") or [] if r.get("controller"))


def _delete(apps: client.AppsV1Api, namespace: str, name: str) -> None:
    try:
        apps.delete_namespaced_deployment(
            name,
            namespace,
            body=client.V1DeleteOptions(propagation_policy="Background"),
            _request_timeout=request_timeout(apps),
        )
    except ApiException as e:
        if e.status != 404:
            raise


def delete_canary(apps: client.AppsV1Api, namespace: str, target: str) -> None:
    _delete(apps, namespace, canary_name(target))


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
        name,
        namespace,
        body,
        field_manager=field_manager,
        force=True,
        _content_type="application/apply-patch+yaml",
        _request_timeout=request_timeout(apps),
    )
