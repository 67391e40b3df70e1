"""The ModelRatchet custom resources: read, write status, and Kubernetes Events."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.common import API_VERSION, GROUP, VERSION

log = logging.getLogger(__name__)

ROLLOUTS = "modelrollouts"
BASELINES = "modelbaselines"


class Conflict(Exception):
    """The object changed since it was read; the next look starts from the new version."""


class Gone(Exception):
    """The object was deleted since it was read; there is nothing left to reconcile."""


def get(custom: client.CustomObjectsApi, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        resp: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, _preload_content=False)
        return dict(json.loads(resp.data))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def list_in(custom: client.CustomObjectsApi, plural: str, namespace: str) -> list[dict[str, Any]]:
    resp: Any = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, _preload_content=False)
    return list(json.loads(resp.data).get("items") or [])


def replace_status(custom: client.CustomObjectsApi, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    """Write the whole status, guarded by resourceVersion so two writers can never interleave."""
    meta = obj["metadata"]
    body = {
        "apiVersion": API_VERSION,
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
        "spec": obj.get("spec"),
        "status": status,
    }
    try:
        custom.replace_namespaced_custom_object_status(GROUP, VERSION, meta["namespace"], plural, meta["name"], body)
    except ApiException as e:
        if e.status == 409:
            raise Conflict(meta["name"]) from e
        if e.status == 404:
            raise Gone(meta["name"]) from e
        raise


def patch_status(
    custom: client.CustomObjectsApi, plural: str, namespace: str, name: str, status: dict[str, Any]
) -> None:
    try:
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, {"status": status})
    except ApiException as e:
        if e.status == 404:
            raise Gone(name) from e
        raise


def emit_event(core: client.CoreV1Api, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event on the object, as `kubectl describe` and `kubectl get events` show them."""
    meta = obj["metadata"]
    now = datetime.now(UTC)
    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
        involved_object=client.V1ObjectReference(
            api_version=API_VERSION,
            kind=obj["kind"],
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:1024],
        type=type_,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component="modelratchet"),
        reporting_component="modelratchet.io/operator",
        reporting_instance="modelratchet",
    )
    try:
        core.create_namespaced_event(meta["namespace"], body)
    except ApiException as e:  # an event lost is not worth failing a reconcile for
        log.warning("could not record event %s on %s: %s", reason, meta["name"], e.reason)
