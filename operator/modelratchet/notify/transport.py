"""One HTTP POST of a JSON body, and the retry policy around it.

Each POST is bounded as a whole (modelratchet.wire): a receiver that answers one byte at a time holds a
worker for at most the timeout, and at most a few hundred bytes of its answer are read. Redirects are
never followed: one would turn the POST into a GET without a body, or send it somewhere unchecked.
Connections go straight to the checked addresses, so HTTP(S)_PROXY is not used for webhooks.
"""

from __future__ import annotations

import http.client
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message as Headers
from urllib.parse import urlsplit

from modelratchet import __version__
from modelratchet.wire import ConnectError, Deadline, SockAddr, clean, fetch

USER_AGENT = f"modelratchet/{__version__}"
_ERROR_BODY_LIMIT = 200  # enough of a receiver's error text to say what it disliked


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST."""

    status: int | None  # HTTP status; None when no response came back
    error: str | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header
    permanent: bool = False  # refused before sending (a bad URL, a forbidden address): retrying cannot help

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        # Connection problems, server errors and rate limits pass; other 4xx (and 3xx) will not change.
        return not self.permanent and (self.status is None or self.status >= 500 or self.status == 429)

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no response"
        return f"HTTP {self.status}" + (f": {self.error}" if self.error else "")


def check_url(url: str) -> str | None:
    """Why a URL cannot be posted to, or None. A webhook is never a file:, ftp: or data: URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"not an http(s) URL (scheme {parts.scheme or 'missing'!r})"
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "not an http(s) URL (invalid port)"
    if not parts.hostname:
        return "not an http(s) URL (no host)"
    return None


def _retry_after(headers: Headers | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the computed backoff will do


def _connect_reason(e: ConnectError) -> str:
    cause = e.__cause__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ssl.SSLError):
        return f"TLS error: {cause}"
    if isinstance(cause, TimeoutError):
        return "no connection within the timeout"
    return str(cause or e)


_TLS = ssl.create_default_context()  # built once: loading the system's trust roots is not free


def post_json(url: str, body: bytes, timeout: float, addresses: Sequence[SockAddr] | None = None) -> Attempt:
    """POST ``body``, over within ``timeout`` seconds; never raises for network or HTTP problems.

    ``addresses`` are the receiver's checked addresses; the host name is still what TLS verifies.
    """
    try:
        reply = fetch(
            url,
            method="POST",
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            deadline=Deadline(timeout),
            max_bytes=_ERROR_BODY_LIMIT,
            overflow="truncate",
            tls=_TLS,
            addresses=addresses,
        )
    except ConnectError as e:
        return Attempt(status=None, error=clean(f"connection failed: {_connect_reason(e)}"))
    except TimeoutError:
        return Attempt(status=None, error=f"no response within {timeout:g}s")
    except (OSError, http.client.HTTPException, ValueError) as e:  # resets, malformed responses, invalid URLs
        return Attempt(status=None, error=clean(f"{type(e).__name__}: {e}"))
    if 200 <= reply.status < 300:
        return Attempt(status=reply.status)
    text = clean(reply.body.decode("utf-8", "replace"), _ERROR_BODY_LIMIT)
    return Attempt(status=reply.status, error=text or clean(reply.reason), retry_after=_retry_after(reply.headers))


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (from 1): base, 2 x base, 4 x base ... capped, with jitter.

    The jitter keeps half the delay fixed and randomises the other half, so receivers that come back after an
    outage are not hit by every operator replica at the same instant.
    """
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay / 2 + rng.uniform(0, delay / 2)
