"""The cluster side of the CLI: client loading like kubectl, and errors a user can act on.

Exit codes of the cluster verbs:
  0  done (status shown, request written, watched rollout promoted)
  1  the cluster answered no: object not found, request refused, rollout rolled back or failed
  2  usage or environment: bad arguments, no kubeconfig, cluster unreachable, CRD missing, not allowed
  3  timed out waiting (``--wait``, ``watch --timeout``)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelratchet.api.rollout import ModelRollout

EXIT_OK, EXIT_NO, EXIT_ENV, EXIT_TIMEOUT = 0, 1, 2, 3
EXIT_CODES = (
    "exit codes: 0 done; 1 not found, refused, or the rollout was rolled back/failed; "
    "2 usage or environment (kubeconfig, cluster unreachable, CRD missing, forbidden); 3 timed out"
)
GROUP, VERSION, PLURAL, KIND = "modelratchet.io", "v1alpha1", "modelrollouts", "ModelRollout"
# (connect, read) seconds: an unreachable address fails fast instead of hanging the terminal.
REQUEST_TIMEOUT = (10.0, 30.0)
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class CliError(Exception):
    """An error to print as one line (never a traceback) and exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ENV):
        super().__init__(message)
        self.message = message
        self.code = code


class Conflict(CliError):
    """The object changed between read and write (resourceVersion precondition)."""


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context (default: the current context)")
    group.add_argument("-n", "--namespace", help="namespace (default: the context's namespace, else default)")


@dataclass
class Cluster:
    api: Any  # kubernetes.client.ApiClient
    server: str
    namespace: str  # the context's default namespace
    user: str  # who gate requests are recorded as

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)


def _local_user() -> str:
    import getpass

    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return "unknown"


def connect(kubeconfig: str | None, context: str | None) -> Cluster:
    """A client for the kubeconfig context (like kubectl), or the in-cluster service account."""
    from kubernetes import client, config

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # no retry chatter on stderr
    source = kubeconfig or os.environ.get("KUBECONFIG") or ""
    paths = [os.path.expanduser(p) for p in source.split(os.pathsep) if p] or [os.path.expanduser("~/.kube/config")]
    existing = [p for p in paths if os.path.exists(p)]
    cfg = client.Configuration()
    if not existing:
        if kubeconfig:
            raise CliError(f"kubeconfig {kubeconfig} does not exist")
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            try:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except config.ConfigException as e:
                raise CliError(f"cannot use the in-cluster service account: {e}") from None
            try:
                with open(IN_CLUSTER_NAMESPACE) as f:
                    namespace = f.read().strip() or "default"
            except OSError:
                namespace = "default"
            cfg.retries = 1
            return Cluster(client.ApiClient(cfg), str(cfg.host), namespace, _local_user())
        raise CliError(f"no kubeconfig: {', '.join(paths)} not found; pass --kubeconfig or set KUBECONFIG")
    joined = os.pathsep.join(existing)
    try:
        contexts, active = config.list_kube_config_contexts(config_file=joined)  # type: ignore[no-untyped-call]
        chosen = active
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                raise CliError(f'context "{context}" not found in kubeconfig {joined}')
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=joined, context=context, client_configuration=cfg, persist_config=False
        )
    except CliError:
        raise
    except Exception as e:  # ConfigException, YAML errors, missing keys: all mean a kubeconfig we cannot use
        raise CliError(f"cannot load kubeconfig {joined}: {e}") from None
    ctx = (chosen or {}).get("context") or {}
    cfg.retries = 1  # one retry for a dropped keep-alive connection; more only delays the error
    return Cluster(
        api=client.ApiClient(cfg),
        server=str(cfg.host),
        namespace=str(ctx.get("namespace") or "default"),
        user=str(ctx.get("user") or (chosen or {}).get("name") or _local_user()),
    )


# ------------------------------------------------------------------------------------------------ errors


def _status_message(body: Any) -> tuple[str, dict[str, Any]]:
    """The message and details of a metav1.Status body; ("", {}) when the body is not one."""
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return "", {}
    if not isinstance(data, dict) or data.get("kind") != "Status":
        return "", {}
    return str(data.get("message") or ""), dict(data.get("details") or {})


def _unreachable_reason(e: BaseException) -> str:
    text = str(e)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("Name or service not known", "host not found"),
        ("nodename nor servname", "host not found"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
        ("No route to host", "no route to host"),
    ):
        if needle in text:
            return reason
    cause = getattr(e, "reason", None)
    return str(cause or text or type(e).__name__)


@contextmanager
def calls(cluster: Cluster, *, name: str | None = None, namespace: str | None = None) -> Iterator[None]:
    """Translate client exceptions of the requests inside into CliErrors."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as e:
        message, details = _status_message(e.body)
        status = int(e.status or 0)
        if status == 404:
            # A missing object is a Status naming it; a missing resource type is a bare "404 page not found".
            if details.get("name"):
                raise CliError(f'modelrollout "{name}" not found in namespace "{namespace}"', EXIT_NO) from None
            raise CliError("the ModelRollout CRD is not installed: kubectl apply -f crds/") from None
        if status == 401:
            raise CliError(f"the cluster at {cluster.server} rejected the credentials (401 Unauthorized)") from None
        if status == 403:
            raise CliError(f"forbidden: {message or e.reason}") from None
        if status == 409:
            raise Conflict(message or "conflict", EXIT_NO) from None
        text = message or str(e.reason or "").strip()
        raise CliError(f"the cluster at {cluster.server} answered {status}: {text}", EXIT_NO) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise CliError(f"cannot reach the cluster at {cluster.server}: {_unreachable_reason(e)}") from None


def program() -> str:
    """The name the user typed: the same entry point also runs as the kubectl plugin."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "kubectl modelratchet" if name.startswith("kubectl-") else "modelratchet"


def guarded(command: str, body: Callable[[], int]) -> int:
    """Run a command body; a CliError becomes one line on stderr and its exit code."""
    try:
        return body()
    except CliError as e:
        print(f"{program()} {command}: {e.message}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------------------------ requests


def _json(response: Any) -> Any:
    return json.loads(response.data)


def get_rollout(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    with calls(cluster, name=name, namespace=namespace):
        resp = cluster.custom().get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
    return dict(_json(resp))


def list_rollouts(cluster: Cluster, namespace: str | None) -> list[dict[str, Any]]:
    """The rollouts of a namespace, or of all namespaces (None), sorted by namespace and name."""
    with calls(cluster):
        if namespace is None:
            resp = cluster.custom().list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            resp = cluster.custom().list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
    items = list(_json(resp).get("items") or [])
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def whoami(cluster: Cluster) -> str:
    """The user name the API server knows this client as (a SelfSubjectReview): gate requests are recorded under
    it, and admission refuses any other. Falls back to the kubeconfig's user name where the API is not served."""
    from kubernetes import client

    try:
        with calls(cluster):
            review: Any = client.AuthenticationV1Api(cluster.api).create_self_subject_review(
                client.V1SelfSubjectReview(), _request_timeout=REQUEST_TIMEOUT
            )
    except CliError:
        return cluster.user
    name = review.status.user_info.username if review.status and review.status.user_info else None
    return str(name or cluster.user)


def patch_rollout_status(cluster: Cluster, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch on the status subresource (the spec stays as git has it)."""
    with calls(cluster, name=name, namespace=namespace):
        resp = cluster.custom().patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _content_type="application/merge-patch+json",
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
    return dict(_json(resp))


def list_events(cluster: Cluster, namespace: str, name: str, uid: str | None) -> list[dict[str, Any]]:
    """core/v1 Events about the rollout (the operator records every transition as one)."""
    from kubernetes import client

    selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
    with calls(cluster):
        resp = client.CoreV1Api(cluster.api).list_namespaced_event(
            namespace, field_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
    items = [
        e
        for e in _json(resp).get("items") or []
        if uid is None or (e.get("involvedObject") or {}).get("uid") in (None, uid)
    ]
    return sorted(items, key=_event_order)


def event_time(event: dict[str, Any]) -> str | None:
    found = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    return found or (event.get("metadata") or {}).get("creationTimestamp")


def _event_order(event: dict[str, Any]) -> tuple[str, int]:
    """In the order they happened: Event timestamps have whole seconds, so several share one; within a second
    the resourceVersion (in practice etcd's increasing revision) tells which was written first."""
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return (event_time(event) or "", int(version) if version.isdigit() else 0)


def read_deployment(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with calls(cluster):
        try:
            resp = client.AppsV1Api(cluster.api).read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
    return dict(_json(resp))


def parse_rollout(obj: dict[str, Any]) -> ModelRollout:
    from pydantic import ValidationError

    from modelratchet.api.errors import validation_problems
    from modelratchet.api.rollout import ModelRollout

    try:
        return ModelRollout.model_validate(obj)
    except ValidationError as e:
        name = (obj.get("metadata") or {}).get("name")
        message = f'modelrollout "{name}" cannot be read by this CLI version: {validation_problems(e)[0]}'
        raise CliError(message, EXIT_NO) from None
