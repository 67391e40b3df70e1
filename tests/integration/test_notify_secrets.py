"""Notifications read their webhook URL from a real Secret on the local API server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from modelratchet.api.rollout import Notification
from modelratchet.notify import WebhookNotifier
from modelratchet.notify.destinations import DestinationPolicy
from modelratchet.rollout.types import Notify

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LOOPBACK = DestinationPolicy.parse(["127.0.0.0/8"])  # the receiver is local; webhooks need it allowed

EVENT = Notify("promoted", "promoted s3://models/digits/v2 (was s3://models/digits/v1)", "s3://models/digits/v2")
CONTEXT: dict[str, Any] = {"phase": "Promoted", "stable": "s3://models/digits/v2", "step": None, "weight": 0}


class Receiver:
    """Records JSON POSTs by path; paths in ``failing`` answer 500."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.failing: set[str] = set()
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with receiver.cond:
                    receiver.bodies.setdefault(self.path, []).append(body)
                    receiver.cond.notify_all()
                self.send_response(500 if self.path in receiver.failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait(self, path: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.bodies.get(path, [])) >= n, timeout):
                raise TimeoutError(f"{path}: wanted {n} POSTs, got {self.bodies}")
            return list(self.bodies[path])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _rollout(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelratchet.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "digits", "namespace": namespace, "uid": "uid-1"},
        "spec": {"steps": [{"setWeight": 50}]},
    }


def _secret(core: client.CoreV1Api, namespace: str, name: str, data: dict[str, str]) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    core.create_namespaced_secret(namespace, body)


def _target(kind: str, name: str, key: str = "url") -> Notification:
    return Notification.model_validate({kind: {"secretRef": {"name": name, "key": key}}})


def test_delivers_to_the_url_in_the_secret(kube_api: Any, namespace: str, receiver: Receiver) -> None:
    core = client.CoreV1Api(kube_api)
    # Trailing whitespace, as `kubectl create secret --from-file` often leaves it, is not part of the URL.
    _secret(core, namespace, "hooks", {"url": receiver.url("/generic") + "\n", "slack": receiver.url("/slack")})
    notifier = WebhookNotifier(core, destinations=LOOPBACK)
    try:
        notifier.submit(
            _rollout(namespace), [_target("webhook", "hooks"), _target("slack", "hooks", "slack")], EVENT, CONTEXT
        )
        [generic] = receiver.wait("/generic", 1)
        [slack] = receiver.wait("/slack", 1)
    finally:
        assert notifier.close(10)

    assert generic["kind"] == "promoted" and generic["namespace"] == namespace and generic["rollout"] == "digits"
    assert generic["checkpoint"] == "s3://models/digits/v2"
    assert slack["text"].startswith(f"[promoted] {namespace}/digits: ")


def test_a_rotated_url_is_picked_up_after_a_failure(kube_api: Any, namespace: str, receiver: Receiver) -> None:
    core = client.CoreV1Api(kube_api)
    _secret(core, namespace, "hook", {"url": receiver.url("/old")})
    notifier = WebhookNotifier(core, destinations=LOOPBACK, backoff_base=0.05, backoff_cap=0.2)
    target = [_target("webhook", "hook")]
    try:
        [first] = notifier.send_now(_rollout(namespace), target, EVENT, CONTEXT)
        assert first.delivered

        # The old endpoint starts failing and the Secret now names a new one: the cached URL is used once, then
        # the failure makes the notifier read the Secret again.
        receiver.failing.add("/old")
        core.patch_namespaced_secret("hook", namespace, {"stringData": {"url": receiver.url("/new")}})
        [second] = notifier.send_now(_rollout(namespace), target, EVENT, CONTEXT)
    finally:
        notifier.close(0)

    assert (second.delivered, second.attempts) == (True, 2)
    assert len(receiver.wait("/old", 2)) == 2
    assert len(receiver.wait("/new", 1)) == 1


def test_a_missing_secret_or_key_fails_without_retries(kube_api: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    _secret(core, namespace, "hook", {"other": "http://127.0.0.1:9/"})
    notifier = WebhookNotifier(core, destinations=LOOPBACK, backoff_base=0.05)
    try:
        results = notifier.send_now(
            _rollout(namespace), [_target("webhook", "absent"), _target("webhook", "hook")], EVENT, CONTEXT
        )
    finally:
        notifier.close(0)

    assert [(r.delivered, r.attempts) for r in results] == [(False, 1), (False, 1)]
    assert results[0].error == f"Secret 'absent' not found in namespace {namespace!r}"
    assert results[1].error == "Secret 'hook' has no key 'url'"


def test_a_secret_that_is_not_text_fails_clearly_without_retries(kube_api: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    binary = client.V1Secret(metadata=client.V1ObjectMeta(name="binary"), data={"url": "//79AGh0dHA6Ly8="})
    core.create_namespaced_secret(namespace, binary)
    notifier = WebhookNotifier(core, destinations=LOOPBACK, backoff_base=0.05)
    try:
        [result] = notifier.send_now(_rollout(namespace), [_target("webhook", "binary")], EVENT, CONTEXT)
    finally:
        notifier.close(0)
    assert (result.delivered, result.attempts) == (False, 1)
    assert result.error == "Secret 'binary' key 'url' is not UTF-8 text"


def test_a_receiver_on_loopback_is_refused_unless_allowed(kube_api: Any, namespace: str, receiver: Receiver) -> None:
    core = client.CoreV1Api(kube_api)
    _secret(core, namespace, "hook", {"url": receiver.url("/internal")})
    notifier = WebhookNotifier(core, destinations=DestinationPolicy(), backoff_base=0.05)
    try:
        [result] = notifier.send_now(_rollout(namespace), [_target("webhook", "hook")], EVENT, CONTEXT)
    finally:
        notifier.close(0)
    assert (result.delivered, result.attempts) == (False, 1)
    assert result.error is not None and "127.0.0.1 is a loopback address" in result.error
    assert receiver.bodies == {}
