"""Webhooks reach only the addresses the operator allows, over the address it checked, in bounded time and bytes.

Receivers are real HTTP servers on 127.0.0.1 (tests/unit/wire_peers.py); loopback is exactly the kind of
address a webhook may not reach unless the operator allows it, so these tests allow it explicitly. No test
measures how long a delivery took: a bound is shown by what happened (the error, the receiver seeing the client
hang up, the number of attempts), and a call that does not end fails by joining its thread for HANG_GUARD seconds.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

import pytest
from modelratchet.api.common import SecretKeySelector
from modelratchet.api.rollout import Notification
from modelratchet.notify import WebhookNotifier
from modelratchet.notify.destinations import DestinationPolicy, DestinationRefused
from modelratchet.notify.transport import post_json
from modelratchet.rollout.types import Notify
from modelratchet.settings import OperatorSettings
from wire_peers import MiB, Peer, answer, flood, serving, tarpit

pytestmark = pytest.mark.timeout(60)

LOOPBACK = DestinationPolicy.parse(["127.0.0.0/8", "::1/128"])
HANG_GUARD = 30.0  # seconds a call's thread is joined for before the test fails as hung; not a measurement
T = TypeVar("T")
ROLLOUT: dict[str, Any] = {"metadata": {"name": "r", "namespace": "ns", "uid": "u"}, "spec": {"steps": []}}
EVENT = Notify("promoted", "promoted v2", "v2")


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def bounded(call: Callable[[], T]) -> T:
    """``call()`` in a thread joined for at most HANG_GUARD seconds: still running by then, it hangs."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as e:  # re-raised in the test's thread
            errors.append(e)

    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    assert not thread.is_alive(), f"the call was still running after {HANG_GUARD:g} s: its bound did not hold"
    if errors:
        raise errors[0]
    return results[0]


class WatchedTarpit:
    """The tarpit of wire_peers, counting the connections whose client hung up while it was still dripping."""

    def __init__(self) -> None:
        self.hung_up = threading.Semaphore(0)  # released once per connection the client closed mid-answer

    def __call__(self, peer: Peer, h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        try:
            tarpit(peer, h, stop)  # returns only once the peer stops; a closed connection makes a write fail
        except (BrokenPipeError, ConnectionResetError):
            self.hung_up.release()
            raise


# ------------------------------------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.96.0.1", "private"),  # a typical ClusterIP
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.10", "private"),
        ("fd12:3456::1", "private"),
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 reaches the IPv4 address
        ("::ffff:169.254.169.254", "link-local"),
        ("192.0.2.1", "reserved (non-public)"),
        ("240.0.0.1", "reserved (non-public)"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, kind: str) -> None:
    reason = DestinationPolicy().refusal(ip(address))
    assert reason is not None and reason.endswith(f"is a {kind} address")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert DestinationPolicy().refusal(ip(address)) is None


def test_allow_private_opens_private_ranges_but_not_loopback_or_link_local() -> None:
    policy = DestinationPolicy(allow_private=True)
    assert policy.refusal(ip("10.96.0.1")) is None and policy.refusal(ip("fd00::1")) is None
    assert policy.refusal(ip("127.0.0.1")) is not None
    assert policy.refusal(ip("169.254.169.254")) is not None


def test_allowed_cidrs_open_exactly_their_range() -> None:
    policy = DestinationPolicy.parse(["10.1.0.0/16", "127.0.0.1/32"])
    assert policy.refusal(ip("10.1.2.3")) is None and policy.refusal(ip("127.0.0.1")) is None
    assert policy.refusal(ip("10.2.0.1")) is not None and policy.refusal(ip("127.0.0.2")) is not None
    assert policy.refusal(ip("::ffff:127.0.0.1")) is None


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELRATCHET_WEBHOOK_ALLOWED_CIDRS", "10.0.0.0/8, fd00::/8")
    monkeypatch.setenv("MODELRATCHET_WEBHOOK_ALLOW_PRIVATE", "true")
    settings = OperatorSettings.from_env()
    assert settings.webhook_allowed_cidrs == ("10.0.0.0/8", "fd00::/8") and settings.webhook_allow_private
    # A notifier built without a policy follows the operator's settings.
    notifier = WebhookNotifier(secret_lookup=lambda ns, ref: "http://x")
    assert notifier.destinations == DestinationPolicy.parse(["10.0.0.0/8", "fd00::/8"], allow_private=True)
    monkeypatch.setenv("MODELRATCHET_WEBHOOK_ALLOWED_CIDRS", "10.0.0.0/8,intranet")
    with pytest.raises(ValueError, match="MODELRATCHET_WEBHOOK_ALLOWED_CIDRS: 'intranet' is not a CIDR"):
        OperatorSettings.from_env()


def test_every_resolved_address_must_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with one public and one internal address is refused: the connection could go to either."""

    def two(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two)
    with pytest.raises(DestinationRefused, match=r"receiver host 'hooks.example': 169.254.169.254 is a link-local"):
        DestinationPolicy().resolve("hooks.example", 443)


def test_localhost_by_name_is_refused() -> None:
    with pytest.raises(DestinationRefused, match="loopback"):
        DestinationPolicy().resolve("localhost", 80)


# ------------------------------------------------------------------------------------------ delivering


class Urls:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, namespace: str, ref: SecretKeySelector) -> str:
        return self.url


def hook(name: str = "hook") -> Notification:
    return Notification.model_validate({"webhook": {"secretRef": {"name": name, "key": "url"}}})


@pytest.fixture
def make_notifier() -> Iterator[Callable[..., WebhookNotifier]]:
    made: list[WebhookNotifier] = []

    def make(lookup: Callable[[str, SecretKeySelector], str], **kwargs: Any) -> WebhookNotifier:
        options: dict[str, Any] = {"secret_lookup": lookup, "backoff_base": 0.01, "backoff_cap": 0.05}
        n = WebhookNotifier(**(options | kwargs))
        made.append(n)
        return n

    yield make
    for n in made:
        n.close(timeout=0)


def test_a_loopback_receiver_gets_nothing_by_default(make_notifier: Callable[..., WebhookNotifier]) -> None:
    with serving(answer(200, "ok")) as peer:
        notifier = make_notifier(Urls(peer.url("/hook")), destinations=DestinationPolicy())
        [result] = notifier.send_now(ROLLOUT, [hook()], EVENT, {})
    assert not result.delivered and result.attempts == 1  # refused for good, not retried
    assert result.error is not None and "127.0.0.1 is a loopback address" in result.error
    assert "/hook" not in result.error  # the URL is a credential: only the host is named
    assert peer.requests == []


def test_the_checked_address_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch, make_notifier: Callable[..., WebhookNotifier]
) -> None:
    """One lookup per attempt: a rebinding DNS server gets no second question to answer differently."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        if host == "hooks.example":
            # First answer: an allowed address; any later one would point at the metadata service.
            target = "127.0.0.1" if len(lookups) == 1 else "169.254.169.254"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (target, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with serving(answer(200, "ok")) as peer:
        notifier = make_notifier(Urls(f"http://hooks.example:{peer.port}/hook"), destinations=LOOPBACK)
        [result] = notifier.send_now(ROLLOUT, [hook()], EVENT, {})
    assert result.delivered
    assert lookups == ["hooks.example"]
    [(method, path, headers, _)] = peer.requests
    assert (method, path, headers["Host"]) == ("POST", "/hook", f"hooks.example:{peer.port}")


def test_post_json_connects_to_the_given_addresses_without_resolving() -> None:
    with serving(answer(204, "")) as peer:
        attempt = post_json(
            f"http://unresolvable.invalid:{peer.port}/x", b"{}", 5.0, [(socket.AF_INET, ("127.0.0.1", peer.port))]
        )
    assert attempt.ok and attempt.status == 204


def test_a_tarpit_receiver_is_given_up_on_within_the_timeout() -> None:
    """A byte every 100 ms never trips a per-read timeout; the POST's total timeout ends it."""
    drip = WatchedTarpit()
    with serving(drip) as peer:
        address = [(socket.AF_INET, ("127.0.0.1", peer.port))]
        attempt = bounded(lambda: post_json(peer.url("/slow"), b"{}", 0.5, address))
        # The client gave up by itself and closed the connection: the tarpit, still dripping, found it closed.
        assert drip.hung_up.acquire(timeout=HANG_GUARD), "the connection to the receiver was left open"
    assert attempt.status is None and attempt.error == "no response within 0.5s" and attempt.retryable
    assert len(peer.requests) == 1


def test_a_flooding_receiver_is_read_only_a_little() -> None:
    size = 40 * MiB
    with serving(flood(size, declare=True)) as peer:
        attempt = post_json(peer.url("/big"), b"{}", 30.0, [(socket.AF_INET, ("127.0.0.1", peer.port))])
    assert attempt.ok
    assert peer.sent < size  # the connection was closed after the first bytes


def test_error_bodies_are_cleaned_and_short() -> None:
    hostile = "\x1b[2J\u202ehidden\u202c\r\nSet-Cookie: x\x00" + "E" * 10_000
    with serving(answer(400, hostile, "text/plain")) as peer:
        attempt = post_json(peer.url("/bad"), b"{}", 5.0, [(socket.AF_INET, ("127.0.0.1", peer.port))])
    assert attempt.status == 400 and attempt.error is not None
    assert attempt.error.startswith("[2J hidden Set-Cookie: x EEE")
    assert len(attempt.error) <= 200 and all(ch.isprintable() for ch in attempt.error)


def test_a_slow_receiver_does_not_hold_up_the_others(make_notifier: Callable[..., WebhookNotifier]) -> None:
    with serving(tarpit) as slow, serving(answer(200, "ok")) as fast:
        urls = {"slow": slow.url("/slow"), "fast": fast.url("/fast")}
        notifier = make_notifier(
            lambda ns, ref: urls[ref.name], destinations=LOOPBACK, workers=2, timeout=30.0, attempts=1
        )
        notifier.submit(ROLLOUT, [hook("slow")], EVENT, {})
        assert slow.connections.acquire(timeout=10)  # the slow receiver holds one worker now
        notifier.submit(ROLLOUT, [hook("fast")], EVENT, {})
        assert fast.connections.acquire(timeout=10)  # ... and the other receiver is served meanwhile
        assert notifier.pending() == 0 and not notifier.flush(timeout=0)  # the slow one is still in flight


def test_a_delivery_holds_its_worker_for_a_bounded_time(
    make_notifier: Callable[..., WebhookNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that keeps asking to retry later is given up on once the delivery budget is spent."""

    def rate_limited(peer: Peer, h: Any, stop: threading.Event) -> None:
        peer.write(h, b"HTTP/1.1 429 Too Many\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n")

    caplog.set_level(logging.WARNING, logger="modelratchet.notify")
    with serving(rate_limited) as peer:
        notifier = make_notifier(Urls(peer.url("/h")), destinations=LOOPBACK, timeout=1.0, delivery_budget=2.0)
        # Waiting as asked (Retry-After, capped at a minute) would overrun the 2 s budget: the notifier gives up
        # instead of holding its worker; a notifier that waited would still be in this call after HANG_GUARD.
        [result] = bounded(lambda: notifier.send_now(ROLLOUT, [hook()], EVENT, {}))
    assert not result.delivered and result.status == 429 and result.attempts == 1
    assert len(peer.requests) == 1  # five attempts were allowed; the budget, not the receiver, ended it
    assert any("after 1 attempt(s), the 2s budget" in r.getMessage() for r in caplog.records), caplog.text
