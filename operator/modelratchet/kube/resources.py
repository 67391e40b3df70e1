"""The ModelRatchet custom resources: read, write status, and Kubernetes Events."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet import telemetry
from modelratchet.api.common import API_VERSION, GROUP, VERSION, Condition
from modelratchet.rollout.conditions import get_condition, set_condition

log = logging.getLogger(__name__)

ROLLOUTS = "modelrollouts"
BASELINES = "modelbaselines"

# Connections the operator's client keeps alive: its reconcile workers, the webhook notifier and the elector.
POOL_SIZE = 32
# Used when a typed API object wraps a client that does not say (OperatorApiClient does).
DEFAULT_REQUEST_TIMEOUT = 10.0
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEGRADED = "Degraded"  # condition type: the operator cannot do its job for this object
RECONCILE_ERROR = "ReconcileError"  # its reason when a reconcile raised


class Conflict(Exception):
    """The object changed since it was read; the next look starts from the new version."""


class Gone(Exception):
    """The object was deleted since it was read; there is nothing left to reconcile."""


class NotLeader(Exception):
    """This replica does not hold the lease (any more): it must not write; the leader carries on."""


def request_timeout(api: Any) -> float:
    """The per-request timeout of the client behind a typed API object (CustomObjectsApi, AppsV1Api...)."""
    return float(getattr(getattr(api, "api_client", None), "request_timeout", None) or DEFAULT_REQUEST_TIMEOUT)


class OperatorApiClient(client.ApiClient):
    """The operator's ApiClient: no request without a timeout, and no write while another replica leads.

    Every call in kube/ passes its timeout explicitly; the default here also covers calls made elsewhere
    (Secret reads). The write fence is checked as each request leaves, so a replica that lost the lease in the
    middle of a reconcile (or was frozen, e.g. SIGSTOP, and resumed) stops at its next write.
    """

    def __init__(
        self,
        configuration: Any = None,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        may_write: Callable[[], bool] | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        if configuration is None:
            configuration = client.Configuration.get_default_copy()
        # One kept-alive connection per worker that may call at once: with fewer, urllib3 discards the extra ones
        # and every call past the pool pays a new TCP and TLS handshake (its default is 5 per CPU).
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, pool_size)
        super().__init__(configuration)
        self.request_timeout = request_timeout
        self.may_write = may_write

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        if self.may_write is not None and method.upper() in _WRITES and not self.may_write():
            telemetry.FENCED_WRITES.inc()
            raise NotLeader(f"{method} {url.split('?')[0]}: not the leader")
        return super().call_api(
            method,
            url,
            header_params=header_params,
            body=body,
            post_params=post_params,
            _request_timeout=_request_timeout or self.request_timeout,
        )


class WatchCache:
    """The latest version of each object the operator's watches delivered, so a look reads it without a round trip.

    Kept as JSON text: every read gets its own copy, and no reader can change what the next one sees. A miss is
    "not known" (the caller reads from the API server), never "absent": an object the watches have not delivered,
    or that was deleted, is read for real. What a cached read may be is what an informer's is, a version slightly
    behind: every write is resourceVersion-guarded, so a decision on a stale version meets a 409 and is taken again
    on a fresh read. Bounded by the objects the watches deliver (the operator's namespaces).

    Off until ``enable()``: only a process whose watches keep it current (the operator) may read from it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], str] = {}
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def put(self, kind: str, body: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        meta = body.get("metadata") or {}
        # managedFields is often the larger part of a Deployment and nothing here reads it.
        kept = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}} if meta else body
        text = json.dumps(kept, separators=(",", ":"), default=_plain)
        with self._lock:
            self._objects[(kind, meta.get("namespace") or "", meta.get("name") or "")] = text

    def drop(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.pop((kind, namespace, name), None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        with self._lock:
            text = self._objects.get((kind, namespace, name))
        return None if text is None else dict(json.loads(text))

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)


def _plain(value: Any) -> Any:
    """Nested mappings of a watch event's body (kopf wraps them) as plain dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


# Filled by the watches (handlers.py); read by the reconciler for the objects of one look.
CACHE = WatchCache()


# On what the operator applies (the canary Deployment): a digest of the whole applied object. A look whose object
# would be the same, and finds it so on the server, applies nothing: a server-side apply costs the API server a
# write path even when it changes nothing, once per look of every rollout.
APPLIED_ANNOTATION = "modelratchet.io/applied"


def stamp_applied(desired: dict[str, Any]) -> dict[str, Any]:
    """``desired`` with APPLIED_ANNOTATION set to the digest of the rest of it."""
    meta = desired.setdefault("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_ANNOTATION}
    meta["annotations"] = annotations
    digest = hashlib.sha256(json.dumps(desired, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]
    meta["annotations"] = {**annotations, APPLIED_ANNOTATION: digest}
    return desired


def already_applied(observed: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether applying ``desired`` (stamped) would change nothing: the object carries its digest (so no field was
    dropped from what is applied since) and holds every value it sets (so nobody changed one since)."""
    if observed is None:
        return False
    stamp = ((desired.get("metadata") or {}).get("annotations") or {}).get(APPLIED_ANNOTATION)
    seen = ((observed.get("metadata") or {}).get("annotations") or {}).get(APPLIED_ANNOTATION)
    return stamp is not None and stamp == seen and _holds(observed, desired)


def _holds(observed: Any, desired: Any) -> bool:
    """Every value in ``desired`` is in ``observed`` (which may hold more: defaults, status, others' fields)."""
    if isinstance(desired, Mapping):
        return isinstance(observed, Mapping) and all(
            k in observed and _holds(observed[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(_holds(o, d) for o, d in zip(observed, desired, strict=True))
        )
    return bool(observed == desired)


def get(
    custom: client.CustomObjectsApi, plural: str, namespace: str, name: str, *, cached: bool = False
) -> dict[str, Any] | None:
    """The object, or None when it does not exist. ``cached``: the watch cache's version when it has one."""
    if cached:
        hit = CACHE.get(plural, namespace, name)
        if hit is not None:
            return hit
    try:
        resp: Any = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, _preload_content=False, _request_timeout=request_timeout(custom)
        )
        return dict(json.loads(resp.data))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


# Lists in flight at once: a list of every rollout of a namespace is megabytes of JSON at a thousand rollouts, and
# the baselines of a namespace all list it when the operator starts; unbounded, their copies add up in memory.
_LISTS = threading.BoundedSemaphore(2)


def list_in(custom: client.CustomObjectsApi, plural: str, namespace: str) -> list[dict[str, Any]]:
    with _LISTS:
        resp: Any = custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, _preload_content=False, _request_timeout=request_timeout(custom)
        )
        return list(json.loads(resp.data).get("items") or [])


def replace_status(
    custom: client.CustomObjectsApi, plural: str, obj: dict[str, Any], status: dict[str, Any]
) -> dict[str, Any]:
    """Write the whole status, guarded by resourceVersion so two writers can never interleave; returns the object
    as stored (what the operator then acts on)."""
    meta = obj["metadata"]
    body = {
        "apiVersion": API_VERSION,
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
        "spec": obj.get("spec"),
        "status": status,
    }
    try:
        stored: Any = custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], plural, meta["name"], body, _request_timeout=request_timeout(custom)
        )
        CACHE.put(plural, stored)  # newer than any event still on its way; the write's own event follows
        return dict(stored)
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
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}, _request_timeout=request_timeout(custom)
        )
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
        core.create_namespaced_event(meta["namespace"], body, _request_timeout=request_timeout(core))
    except ApiException as e:  # an event lost is not worth failing a reconcile for
        log.warning("could not record event %s on %s: %s", reason, meta["name"], e.reason)


def set_degraded(
    custom: client.CustomObjectsApi, plural: str, namespace: str, name: str, message: str | None, *, now: str
) -> dict[str, Any] | None:
    """Set the Degraded condition (``message``: a reconcile error) or end it (``None``) with one guarded write.

    Returns the object as read when the condition changed (the caller announces it), None when it already said
    so. Raises Conflict or Gone like replace_status. Reads the watch cache's version (the write is guarded: a stale
    one meets a 409), so a restarted operator does not read every object once more to find it healthy.
    """
    obj = get(custom, plural, namespace, name, cached=True)
    if obj is None:
        return None
    status = dict(obj.get("status") or {})
    conditions = [Condition.model_validate(c) for c in status.get("conditions") or []]
    current = get_condition(conditions, DEGRADED)
    generation = int(obj["metadata"].get("generation", 1))
    if message is None:
        # Only a degradation this function recorded ends here; others (e.g. a refused checkpoint) are the
        # reconciler's to end.
        if current is None or current.status != "True" or current.reason != RECONCILE_ERROR:
            return None
        new = set_condition(conditions, DEGRADED, "False", "Healthy", "", now=now, generation=generation)
    else:
        if current is not None and (current.status, current.reason, current.message) == (
            "True",
            RECONCILE_ERROR,
            message,
        ):
            return None
        new = set_condition(conditions, DEGRADED, "True", RECONCILE_ERROR, message, now=now, generation=generation)
    status["conditions"] = [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in new]
    replace_status(custom, plural, obj, status)
    return obj
