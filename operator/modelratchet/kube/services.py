"""The candidate's Service, which a router sends the candidate's share to; it selects only the canary's pods."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .deployments import canary_labels, owner_reference
from .resources import request_timeout


def read_service(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        resp: Any = core.read_namespaced_service(
            name, namespace, _preload_content=False, _request_timeout=request_timeout(core)
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return dict(json.loads(resp.data))


def build_canary_service(name: str, stable: dict[str, Any], rollout: dict[str, Any]) -> dict[str, Any]:
    """Ports as the stable Service has them; the selector is the canary pods' own labels (role and rollout)."""
    meta = rollout["metadata"]
    ports = [
        {k: p[k] for k in ("name", "port", "targetPort", "protocol", "appProtocol") if k in p}
        for p in (stable.get("spec") or {}).get("ports") or []
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": canary_labels(meta["name"]),
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": {
            "selector": canary_labels(meta["name"]),
            "ports": ports,
        },
    }


def ensure_service(core: client.CoreV1Api, desired: dict[str, Any], field_manager: str) -> None:
    meta = desired["metadata"]
    core.patch_namespaced_service(
        meta["name"],
        meta["namespace"],
        desired,
        field_manager=field_manager,
        force=True,
        _content_type="application/apply-patch+yaml",
        _request_timeout=request_timeout(core),
    )


def delete_service(core: client.CoreV1Api, namespace: str, name: str) -> None:
    try:
        core.delete_namespaced_service(name, namespace, _request_timeout=request_timeout(core))
    except ApiException as e:
        if e.status != 404:
            raise
