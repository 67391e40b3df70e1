"""Every Prometheus call is bounded in time and bytes, and what the server says is cleaned before it is shown.

The peers are real HTTP servers on 127.0.0.1 (tests/unit/wire_peers.py) that behave like a hostile or broken
Prometheus: one byte every 100 ms, a 40 MB answer, control characters and bidi overrides in error bodies.
No test measures how long a call took: a deadline is shown to hold by what happened (the kind of problem, the
server seeing its client hang up mid-answer, which connections were made at all); a call that does not end is
caught by joining its thread for at most HANG_GUARD seconds.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.metrics.prometheus import PrometheusQuerier, PrometheusSettings, QueryOutcome
from modelratchet.metrics.provider import MAX_WORKERS, MetricsProvider
from modelratchet.wire import clean
from wire_peers import MiB, Peer, answer, flood, serving, tarpit, vector

pytestmark = pytest.mark.timeout(120)

HANG_GUARD = 30.0  # seconds a call's thread is joined for before the test fails as hung; not a measurement
T = TypeVar("T")


def _spec(n: int = 1) -> ModelBaselineSpec:
    metrics = [{"name": f"m{i}", "threshold": {"type": "max", "value": 1}, "query": "max(x)"} for i in range(n)]
    return ModelBaselineSpec.model_validate({"model": "m", "metrics": metrics})


def _query(address: str, **settings: Any) -> QueryOutcome:
    return PrometheusQuerier(PrometheusSettings(address=address, **settings)).instant("vector(1)")


def _printable(text: str) -> bool:
    return all(unicodedata.category(ch)[0] not in "C" for ch in text) and "\n" not in text


def _promql_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("promql")]


def _bounded(call: Callable[[], T]) -> T:
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
    assert not thread.is_alive(), f"the call was still running after {HANG_GUARD:g} s: its deadline did not hold"
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


# ---------------------------------------------------------------------------------------------- time


def test_a_tarpit_cannot_hold_a_query_past_its_deadline() -> None:
    """Per-read timeouts never fire on a server that sends a byte every 100 ms; the total deadline does."""
    drip = WatchedTarpit()
    with serving(drip) as peer:
        outcome = _bounded(lambda: _query(peer.url(), timeout_seconds=0.5))
        # The client gave up by itself and closed the connection: the tarpit, still dripping, found it closed.
        assert drip.hung_up.acquire(timeout=HANG_GUARD), "the query's connection was left open"
    assert outcome.problem is not None
    assert outcome.problem.kind == "timeout"
    assert outcome.problem.message == f"no answer from Prometheus at {peer.url()} within 0.5s"
    assert len(peer.requests) == 1


def test_a_tarpit_batch_ends_by_one_deadline_and_leaves_no_thread_behind() -> None:
    assert _promql_threads() == []
    drip = WatchedTarpit()
    with serving(drip) as peer:
        # More queries than workers: the queued ones share the batch's deadline instead of starting their own.
        obs = _bounded(
            lambda: MetricsProvider().observe(
                _spec(12),
                namespace="ns",
                checkpoint="v2",
                stable_checkpoint="v1",
                window_seconds=60,
                interval_seconds=5,
                settings=PrometheusSettings(address=peer.url(), timeout_seconds=0.5),
            )
        )
        # Checked while the tarpit still drips: the workers ended by themselves, nobody waited for the peer.
        assert _promql_threads() == []
        # Every connection the tarpit was given was closed by its client mid-answer.
        hung_up = 0
        while hung_up < len(peer.requests):
            assert drip.hung_up.acquire(timeout=HANG_GUARD), "a query's connection was left open"
            hung_up += 1
    assert [p.kind for p in obs.problems] == ["timeout"] * 12
    # The tarpit holds a worker until the deadline passes, so a query still queued then found no time left and
    # never connected: at most one connection per worker, not one per query.
    assert 1 <= len(peer.requests) <= MAX_WORKERS < 12


def test_a_server_that_never_accepts_data_is_unreachable_within_the_deadline() -> None:
    # A listening socket whose backlog is full: connect() hangs, as towards a dropped-packet firewall.
    import socket

    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            # The kernel retries the handshake for minutes: only the deadline ends this call within the guard.
            outcome = _bounded(lambda: _query(f"http://127.0.0.1:{port}", timeout_seconds=0.5))
        finally:
            for s in fillers:
                s.close()
    assert outcome.problem is not None and outcome.problem.kind in ("unreachable", "timeout")


# --------------------------------------------------------------------------------------------- bytes


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "until-close"])
def test_a_40_mb_answer_is_refused_as_too_large(declare: bool) -> None:
    size = 40 * 1024 * 1024
    with serving(flood(size, declare=declare)) as peer:
        outcome = _query(peer.url(), timeout_seconds=30, max_response_bytes=4 * MiB)
    assert outcome.problem is not None
    assert outcome.problem.kind == "too_large"
    assert "response too large: more than 4194304 bytes" in outcome.problem.message
    assert "MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES" in outcome.problem.message
    # The client hung up early: most of the answer was never even sent (kernel buffers hold a few MiB).
    assert peer.sent < size


def test_too_large_reaches_the_observation_as_a_problem_of_that_metric() -> None:
    with serving(flood(8 * MiB, declare=False)) as peer:
        obs = MetricsProvider().observe(
            _spec(1),
            namespace="ns",
            checkpoint="v2",
            stable_checkpoint=None,
            window_seconds=60,
            interval_seconds=5,
            settings=PrometheusSettings(address=peer.url(), timeout_seconds=30, max_response_bytes=1 * MiB),
        )
    [problem] = obs.problems
    assert problem.kind == "too_large"
    assert obs.candidate["m0"].value is None and "response too large" in (obs.candidate["m0"].error or "")


def test_an_answer_under_the_cap_is_read_whole() -> None:
    with serving(answer(200, vector("0.75"))) as peer:
        outcome = _query(peer.url(), max_response_bytes=1024)
    assert (outcome.ok, outcome.value) == (True, 0.75)


# ------------------------------------------------------------------------------------------- text


HOSTILE_TEXT = "\x1b[31mred\x1b[0m \u202eevil\u202c\r\nline\x00two\x07 " + "A" * 100_000


def test_a_non_200_body_is_cleaned_and_truncated() -> None:
    with serving(answer(502, HOSTILE_TEXT, "text/html")) as peer:
        outcome = _query(peer.url())
    assert outcome.problem is not None and outcome.problem.kind == "http_error"
    message = outcome.problem.message
    assert message.startswith("HTTP 502: [31mred [0m evil line two AAAA")
    assert _printable(message)
    assert len(message) <= 1024 and message.endswith("…")


def test_prometheus_error_text_is_cleaned_and_truncated() -> None:
    error = {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": ' + HOSTILE_TEXT}
    with serving(answer(400, error)) as peer:
        outcome = _query(peer.url())
    assert outcome.problem is not None and outcome.problem.kind == "invalid_query"
    assert outcome.problem.message.startswith("invalid PromQL: [31mred [0m evil line two")
    assert _printable(outcome.problem.message) and len(outcome.problem.message) <= 1024


def test_label_values_shown_for_several_series_are_cleaned_and_bounded() -> None:
    series = [{"metric": {"checkpoint": HOSTILE_TEXT, f"l{i}": "v"}, "value": [1, "1"]} for i in range(5)]
    body = {"status": "success", "data": {"resultType": "vector", "result": series}}
    with serving(answer(200, body)) as peer:
        outcome = _query(peer.url())
    assert outcome.problem is not None and outcome.problem.kind == "multiple_series"
    assert outcome.problem.message.startswith("query returned 5 series, expected one")
    assert _printable(outcome.problem.message) and len(outcome.problem.message) <= 1024


def test_a_page_that_is_not_the_prometheus_api_is_an_http_error() -> None:
    with serving(answer(200, "<html>" + HOSTILE_TEXT, "text/html")) as peer:
        outcome = _query(peer.url())
    assert outcome.problem is not None and outcome.problem.kind == "http_error"
    assert "not the Prometheus API" in outcome.problem.message and _printable(outcome.problem.message)


def test_deeply_nested_json_is_a_problem_not_a_crash() -> None:
    with serving(answer(200, "[" * 200_000)) as peer:
        outcome = _query(peer.url())
    assert outcome.problem is not None and outcome.problem.kind == "http_error"


def test_clean() -> None:
    assert clean("a\tb\n\nc\x00d\u200be\u202ef") == "a b c d e f"
    assert clean("x" * 10, 5) == "xxxx…"
    assert clean(" ok ") == "ok"
    assert clean("é 模型 ✓") == "é 模型 ✓"


# ------------------------------------------------------------------------------------- the address


@pytest.mark.parametrize(
    "address",
    ["http://user:pw@127.0.0.1:9", "http://127.0.0.1:9/?x=1", "http://127.0.0.1:9/#f", "http://127.0.0.1:9/a b"],
)
def test_the_querier_refuses_an_unsafe_address_without_connecting(address: str) -> None:
    outcome = _query(address)
    assert outcome.problem is not None and outcome.problem.kind == "unreachable"
    assert outcome.problem.message.startswith("Prometheus address refused: ")
    assert "pw" not in outcome.problem.message  # a password in the URL never reaches a message
