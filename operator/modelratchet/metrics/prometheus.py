"""A Prometheus client that turns every failure into a typed problem instead of an exception.

Calls are synchronous (prometheus-api-client on requests): the operator runs them in worker threads.
"""

from __future__ import annotations

import ast
import json
import math
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, ReadTimeoutError
from urllib3.util.retry import Retry

from modelratchet.api.common import PrometheusConnection, parse_duration

ProblemKind = Literal["unreachable", "timeout", "invalid_query", "empty", "nan", "multiple_series", "http_error"]


@dataclass
class PrometheusSettings:
    """Where and how to query Prometheus."""

    address: str
    bearer_token: str | None = None
    ca_file: str | None = None  # PEM bundle that verifies the server
    insecure_skip_verify: bool = False
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class PrometheusOverride:
    """A ModelBaseline's connection fields, with its Secret references already resolved."""

    address: str | None = None
    bearer_token: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool | None = None
    timeout_seconds: float | None = None

    @classmethod
    def from_connection(
        cls, conn: PrometheusConnection, *, bearer_token: str | None = None, ca_file: str | None = None
    ) -> PrometheusOverride:
        return cls(
            address=conn.address,
            bearer_token=bearer_token,
            ca_file=ca_file,
            insecure_skip_verify=conn.insecure_skip_verify,
            timeout_seconds=parse_duration(conn.timeout) if conn.timeout else None,
        )


def merge(default: PrometheusSettings, override: PrometheusOverride | None) -> PrometheusSettings:
    """The operator's settings overridden field by field.

    A baseline that points at another address never inherits the operator's bearer token: the
    operator's credential must not be sent to a server chosen by whoever can write a ModelBaseline.
    """
    if override is None:
        return replace(default)
    moved = override.address is not None and override.address.rstrip("/") != default.address.rstrip("/")
    token = override.bearer_token if override.bearer_token is not None else (None if moved else default.bearer_token)
    return PrometheusSettings(
        address=override.address or default.address,
        bearer_token=token,
        ca_file=override.ca_file if override.ca_file is not None else default.ca_file,
        insecure_skip_verify=(
            override.insecure_skip_verify if override.insecure_skip_verify is not None else default.insecure_skip_verify
        ),
        timeout_seconds=override.timeout_seconds if override.timeout_seconds is not None else default.timeout_seconds,
    )


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class QueryOutcome:
    """Either the values (one for an instant query, the series' samples for a range query) or a problem."""

    values: tuple[float, ...] = ()
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def value(self) -> float | None:
        return self.values[0] if self.problem is None and self.values else None

    @classmethod
    def failed(cls, kind: ProblemKind, message: str) -> QueryOutcome:
        return cls(problem=Problem(kind, message))


_fail = QueryOutcome.failed


def redact(address: str) -> str:
    """The address without any user:password part, for messages."""
    parts = urlsplit(address)
    if parts.username is None and parts.password is None:
        return address
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests and urllib3 nest errors in args and .reason)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [*e.args, getattr(e, "reason", None), e.__cause__, e.__context__]
        stack.extend(x for x in nested if isinstance(x, BaseException))


def _connection_reason(exc: BaseException, timeout: float) -> str:
    chain = list(_causes(exc))

    def found(*types: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    # Most specific first: urllib3's NewConnectionError is itself a ConnectTimeoutError.
    if found(ConnectionRefusedError):
        return "connection refused"
    if found(NameResolutionError, socket.gaierror):
        return "cannot resolve the host name"
    tls = found(ssl.SSLError)
    if tls is not None:
        return f"TLS error: {tls}"
    if found(ConnectTimeoutError, requests.ConnectTimeout, TimeoutError):
        return f"no connection within {timeout:g}s"
    os_error = found(OSError)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    return str(chain[-1])


_STATUS_BODY = re.compile(r"^HTTP Status Code (\d+) \((b(?:'.*'|\".*\"))\)$", re.DOTALL)


def _http_problem(exc: PrometheusApiClientException) -> QueryOutcome:
    """Classify a non-200 answer; the client only keeps the status and the raw body in the message."""
    m = _STATUS_BODY.match(str(exc))
    if m is None:
        return _fail("http_error", str(exc))
    status = int(m.group(1))
    try:
        body = ast.literal_eval(m.group(2))
    except (ValueError, SyntaxError):
        body = m.group(2).encode()
    text = body.decode("utf-8", "replace").strip() if isinstance(body, bytes) else str(body)
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "error" not in doc:
        return _fail("http_error", f"HTTP {status}: {text[:300] or 'empty body'}")
    error_type, error = str(doc.get("errorType", "")), str(doc["error"])
    if error_type == "bad_data":
        query_prefix = 'invalid parameter "query": '
        if error.startswith(query_prefix):
            return _fail("invalid_query", f"invalid PromQL: {error.removeprefix(query_prefix)}")
        if error.startswith("invalid parameter"):
            return _fail("invalid_query", f"Prometheus rejected the request (bad_data): {error}")
        return _fail("invalid_query", f"invalid PromQL: {error}")
    if error_type == "execution":
        return _fail("invalid_query", f"query failed to execute (execution): {error}")
    if error_type == "timeout":
        return _fail("timeout", f"Prometheus gave up on the query (timeout): {error}")
    return _fail("http_error", f"HTTP {status} ({error_type or 'error'}): {error}")


def _float(raw: Any) -> float:
    return float(raw)  # Prometheus sends numbers as strings: "1.5", "NaN", "+Inf"


def _describe(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _labels(item: dict[str, Any]) -> str:
    metric = item.get("metric") or {}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _too_many(result: list[dict[str, Any]]) -> QueryOutcome:
    shown = "; ".join(_labels(r) for r in result[:3])
    more = f" and {len(result) - 3} more" if len(result) > 3 else ""
    return _fail(
        "multiple_series",
        f"query returned {len(result)} series, expected one (aggregate it, e.g. with sum): {shown}{more}",
    )


def _number(value: float) -> QueryOutcome:
    return QueryOutcome((value,)) if math.isfinite(value) else _fail("nan", f"query returned {_describe(value)}")


def _instant_result(result: Any) -> QueryOutcome:
    # custom_query hands back data.result only: a list of samples for a vector, [time, "value"] for a scalar.
    if isinstance(result, list) and len(result) == 2 and isinstance(result[1], str):
        try:
            return _number(_float(result[1]))
        except ValueError:
            return _fail("invalid_query", "query returned a string, expected a number")
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        return _fail("http_error", f"unexpected answer from Prometheus: {str(result)[:200]}")
    if not result:
        return _fail("empty", "query returned no data (empty vector)")
    if any("values" in r for r in result):
        return _fail("invalid_query", "query returned a range vector; wrap it in a function such as rate()")
    if len(result) > 1:
        return _too_many(result)
    return _number(_float(result[0]["value"][1]))


def _range_result(result: Any) -> QueryOutcome:
    if not isinstance(result, list) or not all(isinstance(r, dict) and "values" in r for r in result):
        return _fail("http_error", f"unexpected answer from Prometheus: {str(result)[:200]}")
    if not result:
        return _fail("empty", "query returned no data over the window (empty range)")
    if len(result) > 1:
        return _too_many(result)
    raw = [_float(v) for _, v in result[0]["values"]]
    values = tuple(v for v in raw if not math.isnan(v))
    if not values:
        return _fail("nan", f"all {len(raw)} samples over the window are NaN")
    return QueryOutcome(values)


class PrometheusQuerier:
    """Instant and range queries against one Prometheus; never raises on a query problem."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.address = settings.address.rstrip("/")
        session = requests.Session()
        session.verify = False if settings.insecure_skip_verify else (settings.ca_file or True)
        headers = {"Authorization": f"Bearer {settings.bearer_token}"} if settings.bearer_token else None
        # No retries: a refused connection must show up at once; the next analysis is the retry.
        # read=False makes a read timeout surface as a timeout rather than a retry-exhaustion error.
        self._client = PrometheusConnect(
            url=self.address,
            headers=headers,
            session=session,
            retry=Retry(total=0, read=False),
            timeout=settings.timeout_seconds,
        )
        # Prometheus stops evaluating at this deadline too, so an expensive query frees the server.
        self._params = {"timeout": f"{settings.timeout_seconds:g}"}

    def close(self) -> None:
        self._client.close()

    def instant(self, query: str, at: datetime | None = None) -> QueryOutcome:
        params = dict(self._params)
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        return self._call(lambda: _instant_result(self._client.custom_query(query, params=params)))

    def range(self, query: str, start: datetime, end: datetime, step: str) -> QueryOutcome:
        return self._call(
            lambda: _range_result(self._client.custom_query_range(query, start, end, step, params=dict(self._params)))
        )

    def _call(self, run: Callable[[], QueryOutcome]) -> QueryOutcome:
        timeout = self.settings.timeout_seconds
        where = redact(self.address)
        try:
            return run()
        except PrometheusApiClientException as e:
            return _http_problem(e)
        except requests.ConnectTimeout as e:
            return _fail("unreachable", f"Prometheus unreachable at {where}: {_connection_reason(e, timeout)}")
        except requests.Timeout:
            return _fail("timeout", f"no answer from Prometheus at {where} within {timeout:g}s")
        except requests.ConnectionError as e:
            if any(isinstance(c, ReadTimeoutError) for c in _causes(e)):
                return _fail("timeout", f"no answer from Prometheus at {where} within {timeout:g}s")
            return _fail("unreachable", f"Prometheus unreachable at {where}: {_connection_reason(e, timeout)}")
        except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as e:
            # Not a Prometheus API answer (wrong address, a proxy's page, malformed JSON).
            return _fail("http_error", f"unexpected answer from {where}: {type(e).__name__}: {e}")
