"""The dashboard's cluster reads, with the user's own credentials (the CLI's client): blocking calls, run in a
thread by the server. A watch of ModelRollouts feeds the overview's live updates."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import yaml

from modelratchet.cli.kubeapi import GROUP, PLURAL, REQUEST_TIMEOUT, VERSION, CliError, Cluster, calls

MAX_EVENTS = 50  # the most recent Events shown on a rollout page
WATCH_SECONDS = 20  # a watch request's server-side timeout: a stopped stream ends within this
RETRY_SECONDS = 2.0


def can_patch_status(cluster: Cluster, namespace: str | None) -> bool:
    """Whether the user may patch modelrollouts/status there (a SelfSubjectAccessReview; all namespaces: None)."""
    from kubernetes import client

    attrs = client.V1ResourceAttributes(
        group=GROUP, resource=PLURAL, subresource="status", verb="patch", namespace=namespace or ""
    )
    body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))
    try:
        with calls(cluster):
            review: Any = client.AuthorizationV1Api(cluster.api).create_self_subject_access_review(
                body, _request_timeout=REQUEST_TIMEOUT
            )
    except CliError:
        return False  # cannot even ask: show no buttons
    return bool(review.status and review.status.allowed)


def get_baseline(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    with calls(cluster):
        try:
            obj: dict[str, Any] = cluster.custom().get_namespaced_custom_object(
                GROUP, VERSION, namespace, "modelbaselines", name, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
    return obj


def baseline_definition(obj: dict[str, Any]) -> str:
    """The baseline's spec as YAML, as it was applied (the status is the operator's, shown elsewhere)."""
    return yaml.safe_dump({"spec": obj.get("spec") or {}}, sort_keys=False, allow_unicode=True, width=100)


def recent_events(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest Events first, bounded, as the page shows them."""
    from modelratchet.cli.kubeapi import event_time

    rows = [
        {
            "time": event_time(ev) or "-",
            "type": ev.get("type") or "Normal",
            "reason": ev.get("reason") or "-",
            "message": ev.get("message") or "",
        }
        for ev in raw
    ]
    return list(reversed(rows))[:MAX_EVENTS]


class RolloutWatch:
    """Streams ModelRollout watch events to ``emit(type, object)`` from a daemon thread until ``stop()``.

    Starts with a list (every current object as ADDED), then watches from its resourceVersion; a watch that ends
    or expires (410) starts over with a fresh list. Errors go to ``emit("ERROR", {"message": ...})``.
    """

    def __init__(
        self,
        cluster: Cluster,
        namespace: str | None,
        emit: Callable[[str, dict[str, Any]], None],
        *,
        name: str | None = None,
    ):
        self.cluster, self.namespace, self.emit = cluster, namespace, emit
        # One rollout's page watches that object only.
        self.selector = {"field_selector": f"metadata.name={name}"} if name else {}
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name="dashboard-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        custom = self.cluster.custom()
        if self.namespace:
            return custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL)
        return custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL)

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        version: str | None = None
        while not self._stop.is_set():
            fn, args = self._list_call()
            try:
                if version is None:
                    listed = fn(*args, _request_timeout=REQUEST_TIMEOUT, **self.selector)
                    for obj in listed.get("items") or []:
                        self.emit("ADDED", obj)
                    version = (listed.get("metadata") or {}).get("resourceVersion")
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                for event in self._watch.stream(
                    fn,
                    *args,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                    **self.selector,
                ):
                    if self._stop.is_set():
                        break
                    obj = event.get("object") or {}
                    kind = str(event.get("type"))
                    if kind == "ERROR":
                        version = None  # expired: list again
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        self.emit(kind, obj)
            except ApiException as e:
                version = None
                if not self._stop.is_set():
                    self.emit("ERROR", {"message": f"watch refused ({e.status}): {e.reason}"})
                    self._stop.wait(RETRY_SECONDS)
            except Exception as e:  # connection dropped: retry; the browser sees the state
                if not self._stop.is_set():
                    self.emit("ERROR", {"message": f"watch interrupted: {type(e).__name__}"})
                    self._stop.wait(RETRY_SECONDS)
        self._watch = None
