"""Which Prometheus addresses a ModelBaseline may name.

Whoever can write a ModelBaseline chooses where the operator sends queries (and, with
``bearerTokenSecretRef``, a Secret's value). The operator's settings list the addresses it will talk to;
everything else is refused before any Secret is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from modelratchet.api.baseline import PROMETHEUS_ADDRESS_PATTERN as ADDRESS_PATTERN

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:-]*)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def redact(address: str) -> str:
    """The address without any user:password part, for messages."""
    try:
        parts = urlsplit(address)
        if parts.username is None and parts.password is None:
            return address
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    except ValueError:
        return "(an unparseable URL)"


@dataclass(frozen=True)
class Origin:
    """A parsed address: what it connects to (scheme, host, port) and the path prefix of the API."""

    scheme: str
    host: str
    port: int
    path: str  # without a trailing slash; "" for the root

    def within(self, allowed: Origin) -> bool:
        """Same scheme, host and port, and a path at or below the allowed one (whole segments only)."""
        if (self.scheme, self.host, self.port) != (allowed.scheme, allowed.host, allowed.port):
            return False
        return not allowed.path or self.path == allowed.path or self.path.startswith(allowed.path + "/")


def check_plain(address: str) -> None:
    """ValueError unless ``address`` is a plain http(s) base URL (the CRD's pattern): nothing in it but where."""
    if not re.fullmatch(ADDRESS_PATTERN, address):
        raise ValueError(
            f"{redact(address)!r} is not a plain http(s) base URL: no user:password@, no ?query, no #fragment, "
            "no spaces"
        )


def parse_address(address: str) -> Origin:
    """The address as an Origin; ValueError naming what is wrong with it."""
    check_plain(address)
    shown = redact(address)
    parts = urlsplit(address)
    netloc = parts.netloc
    host_part = netloc
    if netloc.startswith("["):
        host_part = netloc[: netloc.find("]") + 1]
    elif ":" in netloc:
        host_part = netloc.rsplit(":", 1)[0]
    if not _HOST.fullmatch(host_part):
        raise ValueError(f"{shown!r} has an invalid host {host_part!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{shown!r} has an invalid port") from e
    path = parts.path.rstrip("/")
    segments = path.split("/")
    if not _PATH.fullmatch(path) or "." in segments or ".." in segments:
        raise ValueError(f"{shown!r} has a path with characters or . / .. segments that are not allowed")
    host = (parts.hostname or "").lower()
    return Origin(parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme], path)


@dataclass(frozen=True)
class AddressAllowlist:
    """Addresses (origins, optionally with a path prefix) a ModelBaseline may point the operator at."""

    entries: tuple[Origin, ...]
    shown: tuple[str, ...]  # as configured, for messages

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressAllowlist:
        """From setting values; ValueError on an entry that is not a plain http(s) URL."""
        shown = tuple(e.strip() for e in entries if e.strip())
        return cls(tuple(parse_address(e) for e in shown), shown)

    def problem(self, address: str) -> str | None:
        """Why ``address`` may not be used, or None when it may."""
        try:
            origin = parse_address(address)
        except ValueError as e:
            return str(e)
        if any(origin.within(allowed) for allowed in self.entries):
            return None
        allowed = ", ".join(self.shown) or "(none)"
        return (
            f"{redact(address)!r} is not an allowed Prometheus address; allowed: {allowed} "
            "(operator setting MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES, chart value prometheus.allowedAddresses)"
        )
