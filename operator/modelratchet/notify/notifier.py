"""Announce rollout transitions to webhooks without ever holding up reconciliation."""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from kubernetes import client
from prometheus_client import Counter

from modelratchet import telemetry
from modelratchet.api.common import SecretKeySelector
from modelratchet.api.rollout import Notification
from modelratchet.kube.secrets import SecretError, read_secret_key
from modelratchet.rollout.types import Notify
from modelratchet.settings import OperatorSettings

from .destinations import DestinationPolicy, DestinationRefused
from .lanes import LaneQueue
from .payloads import Message, message_from, slack_payload, wants, webhook_payload
from .transport import Attempt, backoff, check_url, post_json

log = logging.getLogger(__name__)

# (namespace of the rollout, the Secret key holding the URL) -> the URL.
SecretLookup = Callable[[str, SecretKeySelector], str]
Channel = Literal["webhook", "slack"]

NOTIFICATIONS = Counter(
    "modelratchet_notifications_total",
    "Notifications by channel and result (delivered, failed, dropped).",
    ["channel", "result"],
    registry=telemetry.REGISTRY,
)

RETRY_AFTER_CAP = 60.0  # a receiver's Retry-After is honoured up to this many seconds
# One delivery (every attempt and wait) holds its worker at most this long, so a few slow or rate-limiting
# receivers cannot keep every worker from the others for minutes.
DELIVERY_BUDGET = 90.0
DROP_LOG_INTERVAL = 30.0  # while the queue overflows, one warning per this many seconds, not one per message


@dataclass(frozen=True)
class Delivery:
    """One message for one target."""

    namespace: str
    channel: Channel
    secret: SecretKeySelector
    kind: str
    rollout: str
    body: bytes

    @property
    def lane(self) -> tuple[str, str, str]:
        return (self.namespace, self.secret.name, self.secret.key)

    @property
    def target(self) -> str:
        # Names the Secret, never the URL: webhook URLs are credentials.
        return f"{self.channel} {self.namespace}/{self.secret.name}[{self.secret.key}]"


@dataclass(frozen=True)
class DeliveryResult:
    target: str
    kind: str
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class _UrlCache:
    """URLs read from Secrets, kept briefly; a failed delivery forgets its URL so a rotated one is picked up."""

    def __init__(self, lookup: SecretLookup, ttl: float) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._lock = threading.Lock()
        self._urls: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, namespace: str, ref: SecretKeySelector) -> str:
        key = (namespace, ref.name, ref.key)
        now = time.monotonic()
        with self._lock:
            hit = self._urls.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        url = self._lookup(namespace, ref).strip()
        with self._lock:
            self._urls[key] = (url, now + self._ttl)
        return url

    def forget(self, namespace: str, ref: SecretKeySelector) -> None:
        with self._lock:
            self._urls.pop((namespace, ref.name, ref.key), None)


def _short(e: Exception) -> str:
    status = getattr(e, "status", None)
    return f"{status} {getattr(e, 'reason', '')}".strip() if status else f"{type(e).__name__}: {e}"


class WebhookNotifier:
    """Queues notifications and delivers them from background threads.

    ``submit`` only renders the payloads and queues them, so a slow or dead receiver never delays a
    reconcile. Delivery is at least once: a receiver that answered too late may see a message twice, with the
    same ``id``.
    """

    def __init__(
        self,
        core: client.CoreV1Api | None = None,
        *,
        secret_lookup: SecretLookup | None = None,
        workers: int = 4,
        max_queue: int = 1000,
        timeout: float = 5.0,
        attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        secret_ttl: float = 30.0,
        destinations: DestinationPolicy | None = None,
        delivery_budget: float = DELIVERY_BUDGET,
    ) -> None:
        """``destinations`` says which receiver addresses are allowed; default: the operator's settings
        (MODELRATCHET_WEBHOOK_ALLOWED_CIDRS, MODELRATCHET_WEBHOOK_ALLOW_PRIVATE), public addresses only."""
        if secret_lookup is None:
            if core is None:
                raise ValueError("WebhookNotifier needs a CoreV1Api or a secret_lookup")
            secret_lookup = functools.partial(read_secret_key, core)
        if workers < 1 or attempts < 1:
            raise ValueError("workers and attempts must be at least 1")
        self.workers = workers
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.delivery_budget = delivery_budget
        self.destinations = destinations or DestinationPolicy.from_settings(OperatorSettings.from_env())
        self.dropped = 0
        self._drops_unreported = 0
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._drop_lock = threading.Lock()
        self._urls = _UrlCache(secret_lookup, secret_ttl)
        self._queue: LaneQueue[tuple[str, str, str], Delivery] = LaneQueue(max_queue)
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._rng = random.Random()

    # ------------------------------------------------------------------------------------------ public

    def submit(
        self, rollout: dict[str, Any], targets: Sequence[Notification], event: Notify, context: dict[str, Any]
    ) -> None:
        """Queue the event for every target that wants it; returns at once and never raises."""
        try:
            if self._stopping.is_set():
                log.warning("notifier is shut down; %s notification not sent", event.kind)
                return
            deliveries = self._prepare(rollout, targets, event, context)
            if not deliveries:
                return
            self._start_workers()
            for d in deliveries:
                dropped = self._queue.put(d.lane, d)
                if dropped is not None:
                    self._note_drop(dropped)
        except Exception:
            log.exception("could not queue a %s notification", getattr(event, "kind", "?"))

    def send_now(
        self, rollout: dict[str, Any], targets: Sequence[Notification], event: Notify, context: dict[str, Any]
    ) -> list[DeliveryResult]:
        """Deliver in the calling thread, retries included, and report what happened to each target."""
        return [self._deliver(d) for d in self._prepare(rollout, targets, event, context)]

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being delivered (each delivered or given up); False on timeout."""
        return self._queue.join(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what is queued (up to ``timeout``), then stop: pending retries give up at once."""
        flushed = self.flush(timeout)
        self._stopping.set()
        self._queue.close()
        with self._drop_lock:
            unreported, self._drops_unreported = self._drops_unreported, 0
        if unreported:
            log.warning("%d more notification(s) were dropped from a full queue", unreported)
        return flushed

    def pending(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------------------------------ internals

    def _prepare(
        self,
        rollout: dict[str, Any],
        targets: Sequence[Notification | dict[str, Any]],
        event: Notify,
        context: dict[str, Any],
    ) -> list[Delivery]:
        message: Message | None = None
        out: list[Delivery] = []
        for raw in targets:
            target = raw if isinstance(raw, Notification) else Notification.model_validate(raw)
            if not wants(target, event.kind):
                continue
            channel: Channel
            if target.webhook is not None:
                channel, ref = "webhook", target.webhook.secret_ref
            elif target.slack is not None:
                channel, ref = "slack", target.slack.secret_ref
            else:
                continue
            message = message or message_from(rollout, event, context)
            payload = webhook_payload(message) if channel == "webhook" else slack_payload(message)
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            out.append(Delivery(message.namespace, channel, ref, event.kind, message.rollout, body))
        return out

    def _note_drop(self, dropped: Delivery) -> None:
        NOTIFICATIONS.labels(dropped.channel, "dropped").inc()
        with self._drop_lock:  # reconciles submit from several threads
            self.dropped += 1
            self._drops_unreported += 1
            now = time.monotonic()
            if now - self._last_drop_log < DROP_LOG_INTERVAL:
                return
            count, self._drops_unreported, self._last_drop_log = self._drops_unreported, 0, now
        log.warning(
            "notification queue full (%d): dropped %d oldest notification(s), the latest %s of %s/%s to %s",
            self._queue.maxsize,
            count,
            dropped.kind,
            dropped.namespace,
            dropped.rollout,
            dropped.target,
        )

    def _start_workers(self) -> None:
        if self._threads:
            return
        with self._start_lock:
            if self._threads:
                return
            threads = [
                threading.Thread(target=self._work, name=f"modelratchet-notify-{i}", daemon=True)
                for i in range(self.workers)
            ]
            for t in threads:
                t.start()
            self._threads = threads

    def _work(self) -> None:
        while True:
            got = self._queue.take()
            if got is None:
                return
            lane, delivery = got
            try:
                self._deliver(delivery)
            except Exception:
                log.exception("notification to %s failed unexpectedly", delivery.target)
            finally:
                self._queue.done(lane)

    def _deliver(self, d: Delivery) -> DeliveryResult:
        last = Attempt(status=None, error="not attempted")
        attempt = 0
        started = time.monotonic()
        while attempt < self.attempts:
            attempt += 1
            try:
                url = self._urls.get(d.namespace, d.secret)
            except SecretError as e:
                return self._failed(d, attempt, Attempt(status=None, error=str(e)), "a missing or unusable Secret")
            except Exception as e:  # the API server may be briefly unreachable: retry like a network error
                last = Attempt(status=None, error=f"reading Secret {d.secret.name!r}: {_short(e)}")
            else:
                last = self._post(d, url)
                if last.ok:
                    NOTIFICATIONS.labels(d.channel, "delivered").inc()
                    log.debug("%s notification of %s/%s delivered to %s", d.kind, d.namespace, d.rollout, d.target)
                    return DeliveryResult(d.target, d.kind, True, attempt, last.status)
                self._urls.forget(d.namespace, d.secret)  # a rotated URL is picked up on the next attempt
                if not last.retryable:
                    return self._failed(d, attempt, last, "a permanent error")
            if attempt < self.attempts:
                delay = backoff(attempt, self.backoff_base, self.backoff_cap, self._rng)
                if last.retry_after is not None:
                    delay = max(delay, min(last.retry_after, RETRY_AFTER_CAP))
                if time.monotonic() - started + delay + self.timeout > self.delivery_budget:
                    return self._failed(d, attempt, last, f"{attempt} attempt(s), the {self.delivery_budget:g}s budget")
                if self._stopping.wait(delay):
                    break
        return self._failed(d, attempt, last, f"{attempt} attempt(s)")

    def _post(self, d: Delivery, url: str) -> Attempt:
        """One POST to ``url``, if it is an http(s) URL whose host resolves only to allowed addresses."""
        problem = check_url(url)
        if problem is not None:
            return Attempt(status=None, error=problem, permanent=True)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.destinations.resolve(parts.hostname or "", port)
        except DestinationRefused as e:
            return Attempt(status=None, error=str(e), permanent=True)
        except OSError as e:  # the name does not resolve (yet): retried like a network error
            return Attempt(status=None, error=f"cannot resolve the receiver's host: {e}")
        return post_json(url, d.body, self.timeout, addresses)

    def _failed(self, d: Delivery, attempts: int, last: Attempt, why: str) -> DeliveryResult:
        NOTIFICATIONS.labels(d.channel, "failed").inc()
        log.warning(
            "giving up on the %s notification of %s/%s to %s after %s: %s",
            d.kind,
            d.namespace,
            d.rollout,
            d.target,
            why,
            last.describe(),
        )
        return DeliveryResult(d.target, d.kind, False, attempts, last.status, last.error)
