"""Webhook and Slack notifications, delivered to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from modelratchet import __version__
from modelratchet.api.common import SecretKeySelector
from modelratchet.api.rollout import Notification
from modelratchet.kube.secrets import SecretError
from modelratchet.notify import DEFAULT_KINDS, WebhookNotifier
from modelratchet.notify.destinations import DestinationPolicy
from modelratchet.notify.lanes import LaneQueue
from modelratchet.notify.payloads import message_from, slack_payload, webhook_payload
from modelratchet.rollout.types import Notify

pytestmark = pytest.mark.timeout(60)

# The receivers here listen on loopback, which webhooks may reach only when the operator allows it.
LOOPBACK_ALLOWED = DestinationPolicy.parse(["127.0.0.0/8"])

ROLLOUT: dict[str, Any] = {
    "apiVersion": "modelratchet.io/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "fraud-detector", "namespace": "ml-prod", "uid": "0b8f-uid", "generation": 3},
    "spec": {"checkpoint": "s3://models/fraud/v43", "steps": [{"setWeight": 10}, {"analyze": {"duration": "5m"}}]},
}
CONTEXT: dict[str, Any] = {
    "phase": "RolledBack",
    "stable": "s3://models/fraud/v42",
    "step": 1,
    "weight": 10,
    "verdict": "failed",
}
ROLLED_BACK = Notify(
    "rolledBack", "rolled back s3://models/fraud/v43: analysis failed: accuracy < 0.9", "s3://models/fraud/v43"
)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver:
    """An HTTP server that records POSTs and answers each path from a plan of statuses (then 200).

    Paths in ``hang`` hold the request until ``release`` is set, like a receiver that stopped answering.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plan: dict[str, list[int]] = {}
        self.hang: set[str] = set()
        self.release = threading.Event()
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), json.loads(raw)))
                    planned = receiver.plan.get(self.path) or []
                    status = planned.pop(0) if planned else 200
                    receiver.cond.notify_all()
                if self.path in receiver.hang:
                    receiver.release.wait(30)
                reply = b"ok" if status < 300 else f"error {status}: invalid_payload".encode()
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[Received]:
        with self.cond:
            return [r for r in self.received if r.path == path]

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise TimeoutError(f"receiver got {[(r.path, r.body.get('kind')) for r in self.received]}")

    def wait_count(self, path: str, n: int, timeout: float = 5.0) -> list[Received]:
        self.wait(lambda: sum(r.path == path for r in self.received) >= n, timeout)
        return self.on(path)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Secrets:
    """The injected Secret lookup: URLs by (namespace, name, key); counts reads."""

    def __init__(self) -> None:
        self.urls: dict[tuple[str, str, str], list[str]] = {}
        self.reads = 0

    def set(self, name: str, *urls: str, namespace: str = "ml-prod", key: str = "url") -> None:
        self.urls[(namespace, name, key)] = list(urls)

    def __call__(self, namespace: str, ref: SecretKeySelector) -> str:
        self.reads += 1
        urls = self.urls.get((namespace, ref.name, ref.key))
        if not urls:
            raise SecretError(f"Secret {ref.name!r} not found in namespace {namespace!r}")
        # Successive reads walk through the list (a rotated URL), staying on the last one.
        return urls.pop(0) if len(urls) > 1 else urls[0]


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture
def make_notifier(secrets: Secrets) -> Iterator[Callable[..., WebhookNotifier]]:
    made: list[WebhookNotifier] = []

    def make(**kwargs: Any) -> WebhookNotifier:
        options: dict[str, Any] = {
            "secret_lookup": secrets,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "timeout": 5.0,
            "destinations": LOOPBACK_ALLOWED,
        }
        options.update(kwargs)
        n = WebhookNotifier(**options)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close(timeout=0)


def webhook(name: str, events: list[str] | None = None) -> Notification:
    return Notification.model_validate({"webhook": {"secretRef": {"name": name, "key": "url"}}, "events": events})


def slack(name: str, events: list[str] | None = None) -> Notification:
    return Notification.model_validate({"slack": {"secretRef": {"name": name, "key": "url"}}, "events": events})


# ---------------------------------------------------------------------------------------------- payloads


def test_webhook_payload_shape_and_headers(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/hook"))
    before = datetime.now(UTC).replace(microsecond=0)  # the payload's time is whole seconds
    results = make_notifier().send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    after = datetime.now(UTC)

    assert [(r.delivered, r.attempts, r.status) for r in results] == [(True, 1, 200)]
    assert results[0].target == "webhook ml-prod/hook[url]"
    [got] = receiver.on("/hook")
    body = got.body
    assert {k: v for k, v in body.items() if k not in ("time", "id")} == {
        "kind": "rolledBack",
        "rollout": "fraud-detector",
        "namespace": "ml-prod",
        "checkpoint": "s3://models/fraud/v43",
        "stableCheckpoint": "s3://models/fraud/v42",
        "phase": "RolledBack",
        "step": 1,
        "weight": 10,
        "verdict": "failed",
        "message": ROLLED_BACK.message,
        "uid": "0b8f-uid",
    }
    assert body["time"].endswith("Z")
    assert before <= datetime.fromisoformat(body["time"]) <= after  # stamped while it was being sent
    assert len(body["id"]) == 32
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == f"modelratchet/{__version__}"


def test_webhook_payload_keeps_every_key_when_values_are_missing() -> None:
    m = message_from({"metadata": {"name": "r", "namespace": "ns"}}, Notify("started", "rolling out v2"), {})
    body = webhook_payload(m)
    assert body["checkpoint"] is None and body["stableCheckpoint"] is None and body["uid"] is None
    assert body["step"] is None and body["weight"] is None and body["verdict"] is None
    assert body["kind"] == "started" and body["message"] == "rolling out v2"


def test_slack_payload_shape(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("chat", receiver.url("/slack"))
    [result] = make_notifier().send_now(ROLLOUT, [slack("chat")], ROLLED_BACK, CONTEXT)

    assert result.delivered
    [got] = receiver.on("/slack")
    body = got.body
    assert got.headers["Content-Type"] == "application/json"
    assert body["text"] == f"[rolled back] ml-prod/fraud-detector: {ROLLED_BACK.message}".replace("<", "&lt;")
    assert "\n" not in body["text"]
    [attachment] = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["fallback"] == body["text"]
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields == {
        "Checkpoint": "s3://models/fraud/v43",
        "Stable": "s3://models/fraud/v42",
        "Phase": "RolledBack",
        "Step": "2/2",
        "Canary weight": "10%",
        "Verdict": "failed",
    }
    assert all(f["short"] is True for f in attachment["fields"])
    assert isinstance(attachment["ts"], int)


@pytest.mark.parametrize(
    ("kind", "marker", "color"),
    [
        ("started", "[started]", "#439FE0"),
        ("stepReached", "[step reached]", "#439FE0"),
        ("paused", "[paused]", "warning"),
        ("promoted", "[promoted]", "good"),
        ("rolledBack", "[rolled back]", "danger"),
        ("reverted", "[reverted]", "danger"),
        ("analysis", "[analysis]", "danger"),  # analysis colours follow the verdict: failed
    ],
)
def test_slack_marker_and_color_per_kind(kind: str, marker: str, color: str) -> None:
    body = slack_payload(message_from(ROLLOUT, Notify(kind, "m", "c"), CONTEXT))  # type: ignore[arg-type]
    assert body["text"].startswith(f"{marker} ml-prod/fraud-detector: ")
    assert body["attachments"][0]["color"] == color


def test_slack_text_is_one_escaped_line() -> None:
    event = Notify("paused", "blocked by a warning:\n  latency <p99> & accuracy\t ok", "v2")
    body = slack_payload(message_from(ROLLOUT, event, {"phase": "Paused", "step": 5}))
    assert (
        body["text"] == "[paused] ml-prod/fraud-detector: blocked by a warning: latency &lt;p99&gt; &amp; accuracy ok"
    )
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert fields["Step"] == "2/2 done"  # past the last step: promoting
    assert "Verdict" not in fields and "Canary weight" not in fields  # absent values are left out

    long = slack_payload(message_from(ROLLOUT, Notify("paused", "x" * 5000), {}))
    assert len(long["text"]) <= 1000 and long["text"].endswith("…")


# ---------------------------------------------------------------------------------------------- filtering


def test_events_filter_per_target(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    for name in ("default", "analysis", "outcomes", "nothing"):
        secrets.set(name, receiver.url(f"/{name}"))
    targets = [
        webhook("default"),
        webhook("analysis", ["analysis"]),
        slack("outcomes", ["promoted", "rolledBack", "reverted"]),
        webhook("nothing", []),
    ]
    notifier = make_notifier()
    kinds = ["started", "stepReached", "analysis", "paused", "analysis", "promoted", "reverted", "rolledBack"]
    for kind in kinds:
        notifier.submit(ROLLOUT, targets, Notify(kind, f"{kind} happened", "v43"), CONTEXT)  # type: ignore[arg-type]
    assert notifier.flush(10)

    assert [r.body["kind"] for r in receiver.on("/default")] == [k for k in kinds if k != "analysis"]
    assert [r.body["kind"] for r in receiver.on("/analysis")] == ["analysis", "analysis"]
    assert [r.body["text"].split("]")[0] + "]" for r in receiver.on("/outcomes")] == [
        "[promoted]",
        "[reverted]",
        "[rolled back]",
    ]
    assert receiver.on("/nothing") == []
    assert "analysis" not in DEFAULT_KINDS and len(DEFAULT_KINDS) == 6


def test_one_receiver_gets_its_messages_in_order(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/hook"))
    notifier = make_notifier(workers=4)
    for i in range(30):
        notifier.submit(ROLLOUT, [webhook("hook")], Notify("stepReached", f"step {i}"), CONTEXT)
    assert notifier.flush(10)
    assert [r.body["message"] for r in receiver.on("/hook")] == [f"step {i}" for i in range(30)]


# ---------------------------------------------------------------------------------------------- retries


def test_retries_5xx_then_succeeds_with_the_same_id(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/flaky"))
    receiver.plan["/flaky"] = [500, 502, 503]
    [result] = make_notifier().send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)

    assert (result.delivered, result.attempts, result.status) == (True, 4, 200)
    bodies = [r.body for r in receiver.on("/flaky")]
    assert len(bodies) == 4
    assert len({b["id"] for b in bodies}) == 1  # one notification, delivered at least once


def test_retries_429(receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]) -> None:
    secrets.set("hook", receiver.url("/limited"))
    receiver.plan["/limited"] = [429]
    [result] = make_notifier().send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert (result.delivered, result.attempts) == (True, 2)


def test_retries_in_the_background_too(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/flaky"))
    receiver.plan["/flaky"] = [500, 500]
    notifier = make_notifier()
    notifier.submit(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert len(receiver.wait_count("/flaky", 3)) == 3
    assert notifier.flush(5)
    assert len(receiver.on("/flaky")) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 302])
def test_no_retry_on_other_4xx_or_redirects(
    status: int, receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/bad"))
    receiver.plan["/bad"] = [status]
    [result] = make_notifier().send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)

    assert (result.delivered, result.attempts, result.status) == (False, 1, status)
    assert len(receiver.on("/bad")) == 1
    if status != 302:
        assert result.error == f"error {status}: invalid_payload"  # the receiver's own words, for the log


def test_gives_up_after_the_last_attempt(
    receiver: Receiver,
    secrets: Secrets,
    make_notifier: Callable[..., WebhookNotifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets.set("hook", receiver.url("/down"))
    receiver.plan["/down"] = [503] * 10
    with caplog.at_level(logging.WARNING, logger="modelratchet.notify"):
        [result] = make_notifier(attempts=5).send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)

    assert (result.delivered, result.attempts, result.status) == (False, 5, 503)
    assert len(receiver.on("/down")) == 5
    [line] = [r.getMessage() for r in caplog.records if "giving up" in r.getMessage()]
    assert "rolledBack" in line and "webhook ml-prod/hook[url]" in line and "HTTP 503" in line
    assert receiver.url("/down") not in line  # URLs are credentials


def test_connection_error_is_retried_and_the_secret_re_read(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/gone"
    closed.close()  # nothing listens there: connection refused
    secrets.set("hook", dead_url, receiver.url("/rotated"))  # the Secret was updated meanwhile

    [result] = make_notifier().send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)

    assert (result.delivered, result.attempts) == (True, 2)
    assert secrets.reads == 2
    assert len(receiver.on("/rotated")) == 1


def test_secret_url_is_cached_between_deliveries(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/hook"))
    notifier = make_notifier()
    for _ in range(3):
        notifier.send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert secrets.reads == 1
    expired = make_notifier(secret_ttl=0)
    for _ in range(2):
        expired.send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert secrets.reads == 3


def test_missing_secret_is_not_retried(secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]) -> None:
    [result] = make_notifier().send_now(ROLLOUT, [webhook("absent")], ROLLED_BACK, CONTEXT)
    assert (result.delivered, result.attempts) == (False, 1)
    assert result.error == "Secret 'absent' not found in namespace 'ml-prod'"


def test_api_errors_reading_the_secret_are_retried(
    receiver: Receiver, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    calls: list[str] = []

    def flaky_lookup(namespace: str, ref: SecretKeySelector) -> str:
        calls.append(ref.name)
        if len(calls) < 3:
            raise ConnectionError("API server unreachable")
        return receiver.url("/hook")

    [result] = make_notifier(secret_lookup=flaky_lookup).send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert (result.delivered, result.attempts) == (True, 3)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:8080/hook", ""])
def test_only_http_urls_are_posted_to(
    url: str, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", url)
    [result] = make_notifier().send_now(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert (result.delivered, result.attempts) == (False, 1)
    assert result.error is not None and "not an http(s) URL" in result.error


# ---------------------------------------------------------------------------------------------- never blocking


def test_submit_returns_before_the_receiver_answers(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    # The receiver holds every request until the test sets `receiver.release`, and the test sets it only after
    # the submits below have returned: a submit that waited for an answer would never get one (the notifier's
    # 20 s timeout and retries outlast the test's timeout), and one that delivered in the calling thread would
    # leave nothing pending. How fast submit is lives in bench/notify_submit.py, not here.
    secrets.set("hook", receiver.url("/hang"))
    receiver.hang.add("/hang")
    notifier = make_notifier(timeout=20.0)

    notifier.submit(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    receiver.wait_count("/hang", 1)  # a worker is now stuck waiting for the answer
    for i in range(200):
        notifier.submit(ROLLOUT, [webhook("hook"), slack("hook")], Notify("stepReached", f"step {i}"), CONTEXT)

    assert not receiver.release.is_set()
    assert len(receiver.on("/hang")) == 1  # still only the first request, still unanswered
    assert notifier.pending() == 400
    receiver.release.set()
    assert notifier.flush(20)
    assert len(receiver.on("/hang")) == 401


def test_a_dead_receiver_does_not_delay_a_healthy_one(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    # Accepts connections (the kernel's backlog) but never answers: every POST waits for its timeout.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)
    try:
        secrets.set("dead", f"http://127.0.0.1:{dead.getsockname()[1]}/")
        secrets.set("healthy", receiver.url("/healthy"))
        notifier = make_notifier(workers=2, timeout=10.0)
        for i in range(10):
            notifier.submit(ROLLOUT, [webhook("dead")], Notify("stepReached", f"step {i}"), CONTEXT)

        notifier.submit(ROLLOUT, [webhook("healthy"), webhook("dead")], ROLLED_BACK, CONTEXT)
        receiver.wait_count("/healthy", 1, timeout=30.0)

        # Delivered while not one dead delivery has ended (each waits 10 s per attempt, 5 attempts): the healthy
        # message did not queue behind them. Counting, not timing, so a slow machine cannot fail it.
        assert notifier.pending() == 10  # the dead receiver's messages are still queued behind the first
    finally:
        dead.close()


def test_a_full_queue_drops_the_oldest(
    receiver: Receiver,
    secrets: Secrets,
    make_notifier: Callable[..., WebhookNotifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets.set("hook", receiver.url("/hang"))
    receiver.hang.add("/hang")
    notifier = make_notifier(workers=1, max_queue=2)
    notifier.submit(ROLLOUT, [webhook("hook")], Notify("started", "m0"), CONTEXT)
    receiver.wait_count("/hang", 1)  # m0 is in flight, the queue is empty

    with caplog.at_level(logging.WARNING, logger="modelratchet.notify"):
        for i in range(1, 5):
            notifier.submit(ROLLOUT, [webhook("hook")], Notify("stepReached", f"m{i}"), CONTEXT)

    assert notifier.dropped == 2
    # One warning per interval while the queue overflows, not one per message.
    assert [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()] == [
        "notification queue full (2): dropped 1 oldest notification(s), the latest stepReached of "
        "ml-prod/fraud-detector to webhook ml-prod/hook[url]"
    ]
    receiver.release.set()
    assert notifier.flush(10)
    assert [r.body["message"] for r in receiver.on("/hang")] == ["m0", "m3", "m4"]
    with caplog.at_level(logging.WARNING, logger="modelratchet.notify"):
        notifier.close()
    assert "1 more notification(s) were dropped from a full queue" in caplog.messages


def test_submit_never_raises(
    receiver: Receiver,
    secrets: Secrets,
    make_notifier: Callable[..., WebhookNotifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = make_notifier()
    with caplog.at_level(logging.ERROR, logger="modelratchet.notify"):
        notifier.submit(ROLLOUT, [{"webhook": {}}], ROLLED_BACK, CONTEXT)  # type: ignore[list-item]
        notifier.submit(None, [webhook("hook")], ROLLED_BACK, CONTEXT)  # type: ignore[arg-type]
    assert sum("could not queue" in r.getMessage() for r in caplog.records) == 2

    secrets.set("hook", receiver.url("/hook"))
    notifier.submit(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert notifier.flush(5)
    assert len(receiver.on("/hook")) == 1


def test_close_delivers_what_is_queued_then_refuses_more(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/hook"))
    notifier = make_notifier()
    for i in range(5):
        notifier.submit(ROLLOUT, [webhook("hook")], Notify("stepReached", f"step {i}"), CONTEXT)
    assert notifier.close(timeout=10)
    assert len(receiver.on("/hook")) == 5
    notifier.submit(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    assert notifier.pending() == 0


def test_close_cuts_retries_short(
    receiver: Receiver, secrets: Secrets, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    secrets.set("hook", receiver.url("/down"))
    receiver.plan["/down"] = [503] * 10
    notifier = make_notifier(backoff_base=30.0, backoff_cap=30.0)
    notifier.submit(ROLLOUT, [webhook("hook")], ROLLED_BACK, CONTEXT)
    receiver.wait_count("/down", 1)
    assert not notifier.close(timeout=0.2)  # still waiting to retry
    # The 30 s backoff ends at once and the delivery gives up: flush returns (well before the first retry was
    # due) with no second attempt made.
    assert notifier.flush(20)
    assert len(receiver.on("/down")) == 1


def test_needs_a_way_to_read_secrets() -> None:
    with pytest.raises(ValueError, match="CoreV1Api or a secret_lookup"):
        WebhookNotifier()


# ---------------------------------------------------------------------------------------------- lanes


def test_lane_queue_drops_the_globally_oldest_and_rotates_lanes() -> None:
    q: LaneQueue[str, str] = LaneQueue(3)
    assert q.put("a", "a1") is None
    assert q.put("b", "b1") is None
    assert q.put("a", "a2") is None
    assert q.put("b", "b2") == "a1"  # the oldest, whatever its lane
    assert len(q) == 3

    assert q.take() == ("a", "a2")  # lane a lost its head but kept its place
    assert q.take() == ("b", "b1")
    q.done("b")  # b still has b2: back in line
    assert q.take() == ("b", "b2")
    q.done("a")
    q.done("b")
    assert q.join(0)


def test_lane_queue_gives_a_busy_lane_to_no_second_worker() -> None:
    q: LaneQueue[str, int] = LaneQueue(10)
    for i in range(3):
        q.put("slow", i)
    q.put("fast", 99)
    assert q.take() == ("slow", 0)
    assert q.take() == ("fast", 99)  # not slow/1: that lane has a worker already
    q.done("fast")
    got: list[tuple[str, int] | None] = []
    waiter = threading.Thread(target=lambda: got.append(q.take()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got  # nothing takeable until slow is done
    q.done("slow")
    waiter.join(5)
    assert got == [("slow", 1)]
    assert not q.join(0)
    q.close()
    assert q.take() is None
