"""Talking to servers the operator does not control (Prometheus, webhook receivers).

One HTTP request with a total deadline and a byte cap, and the cleaning of any text a server sends back
before it reaches a status message, an Event or a log line.

Plain ``http.client`` rather than requests/urllib: their timeouts apply to each socket operation, so a
server that sends one byte at a time can hold a request open indefinitely. Here every socket operation
(connect, TLS handshake, send, each read of headers and body) gets only the time left of one deadline, so
the request as a whole ends by it. Name resolution (``getaddrinfo``) is the one step no socket timeout
reaches; it is bounded by the resolver's own timeout and attempts (resolv.conf).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any, Literal
from urllib.parse import urlsplit

# A resolved address to connect to: (family, sockaddr) as getaddrinfo returns them.
SockAddr = tuple[int, tuple[Any, ...]]

MESSAGE_LIMIT = 512  # characters of a remote server's text kept in a message


def clean(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` safe to show: control and format characters removed, whitespace collapsed, at most ``limit`` long.

    Format characters include the bidi overrides that make a message read differently from what it says.
    """
    head = text[: limit * 4]  # enough to fill ``limit`` after collapsing; never walk a whole 4 MiB body
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in head)
    flat = " ".join(kept.split())
    return flat if len(flat) <= limit and len(head) == len(text) else flat[: max(0, limit - 1)] + "…"


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed."""


class ConnectError(OSError):
    """No connection (TCP or TLS) could be made; ``__cause__`` says why."""


class ResponseTooLarge(ValueError):
    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        said = f" (Content-Length {declared})" if declared is not None else ""
        super().__init__(f"response too large: more than {limit} bytes{said}")


class Deadline:
    """A point in time (monotonic clock); ``left()`` is what any one wait may still take."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"deadline of {self.seconds:g}s passed")
        return left


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket) -> None:
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock = self._owner.sock
        sock.settimeout(self._owner.deadline.left())
        return sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.reader_closed()
        super().close()


class _DeadlineSocket:
    """The socket as http.client sees it: every send and every read waits at most for the time left.

    Like socket.makefile, a reader keeps the socket open until it is closed too: http.client closes the
    connection as soon as a response says "Connection: close" and hands the socket over to the response.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self._readers = 0
        self._closed = False

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"unsupported mode {mode!r}")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers == 0:
            self.sock.close()

    def sendall(self, data: bytes) -> None:
        # Since Python 3.5 a sendall timeout bounds the whole call, not each chunk.
        self.sock.settimeout(self.deadline.left())
        self.sock.sendall(data)

    def close(self) -> None:
        self._closed = True
        if self._readers == 0:
            self.sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class _Connection(http.client.HTTPConnection):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        deadline: Deadline,
        tls: ssl.SSLContext | None,
        addresses: Sequence[SockAddr] | None,
    ) -> None:
        super().__init__(host, port, timeout=deadline.seconds)
        self._deadline = deadline
        self._tls = tls
        self._addresses = addresses

    def connect(self) -> None:
        try:
            sock = self._open()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    # do_handshake is bounded by the socket's timeout as a whole (CPython's _ssl keeps a deadline).
                    sock.settimeout(self._deadline.left())
                    sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        except DeadlineExceeded:
            raise  # out of time before a connection was even tried: a timeout, not an unreachable server
        except OSError as e:
            raise ConnectError(str(e)) from e
        self.sock = _DeadlineSocket(sock, self._deadline)

    def _open(self) -> socket.socket:
        addresses = self._addresses
        if addresses is None:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            addresses = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        error: OSError | None = None
        for family, sockaddr in addresses:
            try:
                timeout = self._deadline.left()
            except DeadlineExceeded:
                if error is None:
                    raise
                break  # report why the last address failed, not that no time was left for the next
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                error = e
        raise error or OSError(f"no address for {self.host!r}")


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: Message
    body: bytes


def fetch(
    url: str,
    *,
    deadline: Deadline,
    max_bytes: int,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    addresses: Sequence[SockAddr] | None = None,
    overflow: Literal["refuse", "truncate"] = "refuse",
) -> Reply:
    """One request, over by ``deadline``, reading at most ``max_bytes`` of the body.

    ``addresses`` connects to these (already checked) addresses instead of resolving the host again, while
    TLS still verifies the host name. A body over the cap raises ResponseTooLarge (``overflow="refuse"``) or
    is cut (``"truncate"``); the connection is closed either way, so the rest is never read. Raises
    ConnectError, DeadlineExceeded (a TimeoutError), other OSErrors and http.client.HTTPException.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {parts.scheme or 'no'} scheme")
    https = parts.scheme == "https"
    if https and tls is None:
        tls = ssl.create_default_context()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port or (443 if https else 80)
    conn = _Connection(parts.hostname, port, deadline=deadline, tls=tls if https else None, addresses=addresses)
    response: http.client.HTTPResponse | None = None
    try:
        conn.request(method, target, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return Reply(response.status, response.reason, response.headers, _read(response, max_bytes, overflow))
    finally:
        # Both: after "Connection: close" the response holds the socket, not the connection.
        if response is not None:
            response.close()
        conn.close()


def _read(response: http.client.HTTPResponse, limit: int, overflow: str) -> bytes:
    declared = response.getheader("Content-Length")
    if overflow == "refuse" and declared is not None and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(limit, int(declared))
    buffer = bytearray()
    while len(buffer) <= limit:
        chunk = response.read(min(64 * 1024, limit + 1 - len(buffer)))
        if not chunk:
            return bytes(buffer)
        buffer += chunk
    if overflow == "refuse":
        raise ResponseTooLarge(limit)
    return bytes(buffer[:limit])
