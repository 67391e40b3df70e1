"""Fault injectors for the chaos runs (e2e/test_chaos.py).

- ChaosProxy: an HTTP proxy on 127.0.0.1 in front of the real Prometheus. Transparent by default; switched
  to a fault mode, it answers slowly (byte by byte, or not at all) or with garbage (not JSON, truncated JSON,
  an HTTP 500 with a body larger than the operator reads).
- ConflictWriter: a thread that keeps changing a ModelRollout's metadata, so every resourceVersion-guarded
  status write the operator attempts meanwhile risks a 409 Conflict.
- apiserver_requests: counters from the kube-apiserver's own /metrics (how many of those writes were refused).

Standard library only (plus the kubernetes client the tests already use); nothing leaves loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import socketserver
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal, get_args

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from e2e.harness.cluster import LOOPBACK, LocalCluster

Mode = Literal["transparent", "trickle", "stall", "not_json", "truncated_json", "error_500"]
FAULT_MODES: tuple[Mode, ...] = tuple(m for m in get_args(Mode) if m != "transparent")

_MAX_HEAD = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade", "te"}


class ChaosProxy:
    """127.0.0.1:<port> -> upstream, one request per connection (the operator opens one per query).

    ``faults`` counts the requests answered in each fault mode, i.e. the faults the operator actually met.
    """

    def __init__(
        self,
        upstream: str,
        *,
        trickle_delay: float = 0.25,
        stall_seconds: float = 60.0,
        error_body_bytes: int = 6 * 1024 * 1024,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        assert parts.hostname in (LOOPBACK, "localhost") and parts.port, f"upstream {upstream!r} is not on loopback"
        self.upstream = (parts.hostname, parts.port)
        self.trickle_delay = trickle_delay
        self.stall_seconds = stall_seconds
        # Over the operator's default cap (4 MiB), sent without Content-Length: the cap must stop the read mid-body.
        line = b"Internal Server Error \x1b[31m<pre>goroutine 1 [running]:\n\tpanic(...)\x07</pre>\n"
        self.error_body = (line * (error_body_bytes // len(line) + 1))[:error_body_bytes]
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self._mode: Mode = "transparent"
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server((LOOPBACK, 0), _Handler, self)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="chaos-proxy", daemon=True)

    def __enter__(self) -> ChaosProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()  # ends trickles and stalls in progress
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._mode

    def set_mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = mode

    # --- one request --------------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        request = _read_request(conn)
        if request is None:
            return
        mode = self.mode
        with self._lock:
            self.requests += 1
            if mode != "transparent":
                self.faults[mode] += 1
        if mode == "stall":
            self._stall(conn)
        elif mode == "not_json":
            body = b"<!DOCTYPE html><html><body><h1>Sign in</h1><form action='/login'></form></body></html>"
            conn.sendall(_response(200, "OK", [("Content-Type", "text/html")], body))
        elif mode == "error_500":
            head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
            conn.sendall(head + self.error_body)  # ends when the client stops reading and closes
        else:
            status, reason, headers, body = self._forward(*request)
            if mode == "truncated_json":
                body = body[: len(body) // 2]  # a complete HTTP answer whose JSON stops half-way
            raw = _response(status, reason, headers, body)
            if mode == "trickle":
                self._trickle(conn, raw)
            else:
                conn.sendall(raw)

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> _Answer:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            upstream.request(method, target, body=body or None,
                             headers={k: v for k, v in headers if k.lower() not in _HOP_BY_HOP | {"host"}})
            resp = upstream.getresponse()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            return resp.status, resp.reason, kept, resp.read()
        finally:
            upstream.close()

    def _trickle(self, conn: socket.socket, raw: bytes) -> None:
        """One byte every ``trickle_delay`` seconds, the status line included, until the client hangs up."""
        for i in range(len(raw)):
            if self._closing.wait(self.trickle_delay) or _peer_closed(conn):
                return
            conn.sendall(raw[i : i + 1])

    def _stall(self, conn: socket.socket) -> None:
        """Accept the request and answer nothing, until the client gives up (or ``stall_seconds``)."""
        deadline = time.monotonic() + self.stall_seconds
        while time.monotonic() < deadline and not self._closing.is_set():
            if _peer_closed(conn, wait=0.2):
                return


_Answer = tuple[int, str, list[tuple[str, str]], bytes]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], proxy: ChaosProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        # A client that gave up (the point of the slow modes) shows up as a broken pipe here: not an error.
        with contextlib.suppress(OSError):
            conn.settimeout(30)
            self.server.proxy._serve(conn)


def _read_request(conn: socket.socket) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > _MAX_HEAD:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return method, target, headers, body


def _response(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers),
             f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _peer_closed(conn: socket.socket, wait: float = 0.0) -> bool:
    """Whether the client hung up (its end reads as EOF or reset); never consumes request bytes it did not send."""
    readable, _, _ = select.select([conn], [], [], wait)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


# --------------------------------------------------------------------------------------------- conflicts


class ConflictWriter:
    """Keeps annotating one ModelRollout (``interval`` seconds apart) from its own thread.

    An annotation is metadata: it changes neither spec nor status and is not a gate request, so it is a change
    anyone with patch rights may make at any time. It still bumps resourceVersion, which is what turns the
    operator's guarded status writes into 409s.
    """

    ANNOTATION = "chaos.modelratchet.io/nudge"

    def __init__(self, api: client.ApiClient, namespace: str, name: str, *, interval: float = 0.01) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace, self.name = namespace, name
        self.interval = interval
        self.writes = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conflict-writer", daemon=True)

    def __enter__(self) -> ConflictWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            body = {"metadata": {"annotations": {self.ANNOTATION: str(self.writes)}}}
            try:
                self.custom.patch_namespaced_custom_object(
                    "modelratchet.io", "v1alpha1", self.namespace, "modelrollouts", self.name, body,
                    _request_timeout=5,
                )
                self.writes += 1
            except Exception as e:  # recorded, not raised: the test decides whether it matters
                self.errors.append(f"{type(e).__name__}: {e}"[:200])
            self._stop.wait(self.interval)


# --------------------------------------------------------------------------------------------- apiserver


def apiserver_requests(cluster: LocalCluster, match: Callable[[dict[str, str]], bool]) -> float:
    """Sum of apiserver_request_total over the label sets ``match`` accepts (the admin client may read /metrics)."""
    req = urllib.request.Request(f"{cluster.server}/metrics", headers={"Accept": "text/plain"})
    with urllib.request.urlopen(req, timeout=10, context=cluster.ssl_context()) as resp:
        text = resp.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "apiserver_request_total" and match(sample.labels):
                total += sample.value
    return total


def status_conflicts(labels: dict[str, Any]) -> bool:
    """409s answered to writes of a ModelRollout's status subresource."""
    return bool(
        labels.get("code") == "409" and labels.get("resource") == "modelrollouts"
        and labels.get("subresource") == "status"
    )
