"""Misbehaving HTTP peers on 127.0.0.1 for the tests of outbound calls: tarpits, floods, hostile text.

Each peer is a real server on a loopback port; a test gives it a handler that writes whatever bytes it wants
on the raw connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MiB = 1024 * 1024

# (the request handler, the peer's stop event); writes the whole answer itself.
Behaviour = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class Peer:
    """A loopback HTTP server answering every GET and POST with ``behaviour``; records what it was sent."""

    def __init__(self, behaviour: Behaviour, tls: ssl.SSLContext | None = None) -> None:
        self.stop = threading.Event()
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path, headers, body
        self.connections = threading.Semaphore(0)  # released once per request received
        self.sent = 0  # bytes the behaviour managed to write before the client went away
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with peer.lock:
                    peer.requests.append((self.command, self.path, dict(self.headers.items()), body))
                peer.connections.release()
                # The client hanging up early is what the bounded reads are meant to do.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    behaviour(self, peer.stop)
                self.close_connection = True

            do_GET = _any
            do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def write(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.wfile.write(data)
        handler.wfile.flush()
        with self.lock:
            self.sent += len(data)

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(behaviour: Callable[[Peer, BaseHTTPRequestHandler, threading.Event], None], **kw: Any) -> Iterator[Peer]:
    holder: list[Peer] = []
    peer = Peer(lambda h, stop: behaviour(holder[0], h, stop), **kw)
    holder.append(peer)
    try:
        yield peer
    finally:
        peer.close()


# ------------------------------------------------------------------------------------------------ behaviours


def tarpit(peer: Peer, h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """One byte every 100 ms, forever: a status line, then a header that never ends."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 100_000:
        peer.write(h, bytes([byte]))
        if stop.wait(0.1):
            return


def flood(size: int, *, declare: bool) -> Callable[[Peer, BaseHTTPRequestHandler, threading.Event], None]:
    """A 200 answer of ``size`` bytes (a vector with one enormous label), with or without Content-Length."""
    head = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"x":"'
    tail = b'"},"value":[1,"1"]}]}}'
    filler = size - len(head) - len(tail)

    def behaviour(peer: Peer, h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        headers = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if declare:
            headers += f"Content-Length: {size}\r\n"
        peer.write(h, headers.encode() + b"\r\n" + head)
        chunk = b"A" * (256 * 1024)
        left = filler
        while left > 0 and not stop.is_set():
            part = chunk[: min(len(chunk), left)]
            peer.write(h, part)
            left -= len(part)
        peer.write(h, tail)

    return behaviour


def answer(
    status: int, body: bytes | str | dict[str, Any], content_type: str = "application/json"
) -> Callable[[Peer, BaseHTTPRequestHandler, threading.Event], None]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body

    def behaviour(peer: Peer, h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(raw)}\r\n\r\n"
        peer.write(h, head.encode() + raw)

    return behaviour


def vector(value: str = "1") -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]}}


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
