"""One HTTP POST of a JSON body, and the retry policy around it."""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message as Headers
from typing import IO
from urllib.parse import urlsplit

from modelratchet import __version__

USER_AGENT = f"modelratchet/{__version__}"
_ERROR_BODY_LIMIT = 200  # enough of a receiver's error text to say what it disliked


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without a body (or send it somewhere unplanned): fail instead."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Headers,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


# The default handlers honour HTTP(S)_PROXY / NO_PROXY, which clusters behind an egress proxy need.
_opener = urllib.request.build_opener(_NoRedirects())


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST."""

    status: int | None  # HTTP status; None when no response came back
    error: str | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        # Connection problems, server errors and rate limits pass; other 4xx (and 3xx) will not change.
        return self.status is None or self.status >= 500 or self.status == 429

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no response"
        return f"HTTP {self.status}" + (f": {self.error}" if self.error else "")


def check_url(url: str) -> str | None:
    """Why a URL cannot be posted to, or None. urllib also opens file: and ftp: URLs; a webhook never is one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"not an http(s) URL (scheme {parts.scheme or 'missing'!r})"
    return None


def _retry_after(headers: Headers | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the computed backoff will do


def post_json(url: str, body: bytes, timeout: float) -> Attempt:
    """POST ``body``; never raises for network or HTTP problems."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(_ERROR_BODY_LIMIT)
            return Attempt(status=response.status)
    except urllib.error.HTTPError as e:
        try:
            text = e.read(_ERROR_BODY_LIMIT).decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        return Attempt(status=e.code, error=" ".join(text.split()) or e.reason, retry_after=_retry_after(e.headers))
    except urllib.error.URLError as e:
        return Attempt(status=None, error=f"connection failed: {e.reason}")
    except TimeoutError:
        return Attempt(status=None, error=f"no response within {timeout:g}s")
    except (OSError, ValueError) as e:  # reset connections, malformed responses, invalid URLs
        return Attempt(status=None, error=f"{type(e).__name__}: {e}")


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (from 1): base, 2 x base, 4 x base ... capped, with jitter.

    The jitter keeps half the delay fixed and randomises the other half, so receivers that come back after an
    outage are not hit by every operator replica at the same instant.
    """
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay / 2 + rng.uniform(0, delay / 2)
