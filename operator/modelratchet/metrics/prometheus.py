"""A Prometheus client that turns every failure into a typed problem instead of an exception.

Calls are synchronous and bounded: each request ends by its deadline (connect, TLS, headers and body
together) and reads at most ``max_response_bytes`` (see modelratchet.wire). The operator runs them in
worker threads.
"""

from __future__ import annotations

import http.client
import json
import math
import reprlib
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from modelratchet import __version__
from modelratchet.api.common import PrometheusConnection, parse_duration
from modelratchet.settings import DEFAULT_PROMETHEUS_MAX_RESPONSE_BYTES
from modelratchet.wire import ConnectError, Deadline, Reply, ResponseTooLarge, clean, fetch

from .addresses import check_plain, parse_address, redact

ProblemKind = Literal[
    "unreachable", "timeout", "invalid_query", "empty", "nan", "multiple_series", "http_error", "too_large"
]
USER_AGENT = f"modelratchet/{__version__}"
# Several instant queries go as one request: each is tagged with its index by label_replace, and the tagged
# vectors are joined with `or`, which keeps every series of each since their label sets differ by the tag.
# Prometheus evaluates each part at the same time exactly as it would alone, so each value is the one it would
# answer alone; an answer that is not such a vector (a part returned a scalar, or failed) is asked one by one.
BATCH_LABEL = "modelratchet_query"
MAX_BATCH_QUERIES = 16
MAX_BATCH_BYTES = 32_768
_MESSAGE_LIMIT = 1024  # a whole problem message, wire text included


@dataclass
class PrometheusSettings:
    """Where and how to query Prometheus."""

    address: str
    bearer_token: str | None = None
    ca_file: str | None = None  # PEM bundle file (the operator's own, mounted) that verifies the server
    insecure_skip_verify: bool = False
    timeout_seconds: float = 10.0  # per request, everything included
    ca_pem: str | None = None  # PEM bundle kept in memory (a ModelBaseline's CA Secret); replaces ca_file
    max_response_bytes: int = DEFAULT_PROMETHEUS_MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class PrometheusOverride:
    """A ModelBaseline's connection fields, with its Secret references already resolved."""

    address: str | None = None
    bearer_token: str | None = None
    ca_pem: str | None = None
    insecure_skip_verify: bool | None = None
    timeout_seconds: float | None = None

    @classmethod
    def from_connection(
        cls, conn: PrometheusConnection, *, bearer_token: str | None = None, ca_pem: str | None = None
    ) -> PrometheusOverride:
        return cls(
            address=conn.address,
            bearer_token=bearer_token,
            ca_pem=ca_pem,
            insecure_skip_verify=conn.insecure_skip_verify,
            timeout_seconds=parse_duration(conn.timeout) if conn.timeout else None,
        )


def _same_address(a: str, b: str) -> bool:
    try:
        return parse_address(a.rstrip("/")) == parse_address(b.rstrip("/"))
    except ValueError:
        return a.rstrip("/") == b.rstrip("/")


def merge(default: PrometheusSettings, override: PrometheusOverride | None) -> PrometheusSettings:
    """The operator's settings overridden field by field.

    The operator's bearer token goes only where the operator's own connection would: once a baseline
    changes the address, turns off verification or brings its own CA, a server (or a man in the middle)
    chosen by whoever can write a ModelBaseline could read it. Such a connection carries only a token the
    baseline names itself.
    """
    if override is None:
        return replace(default)
    insecure = default.insecure_skip_verify if override.insecure_skip_verify is None else override.insecure_skip_verify
    changed = (
        (override.address is not None and not _same_address(override.address, default.address))
        or insecure != default.insecure_skip_verify
        or override.ca_pem is not None
    )
    token = override.bearer_token if override.bearer_token is not None else (None if changed else default.bearer_token)
    return replace(
        default,
        address=override.address or default.address,
        bearer_token=token,
        # The baseline's CA replaces the operator's trust roots rather than adding to them.
        ca_file=None if override.ca_pem is not None else default.ca_file,
        ca_pem=override.ca_pem if override.ca_pem is not None else default.ca_pem,
        insecure_skip_verify=insecure,
        timeout_seconds=override.timeout_seconds if override.timeout_seconds is not None else default.timeout_seconds,
    )


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class Series:
    """One series of a range query kept whole: its labels and its (time, value) points."""

    labels: tuple[tuple[str, str], ...]
    points: tuple[tuple[float, float], ...]

    def label(self, name: str) -> str | None:
        return next((v for k, v in self.labels if k == name), None)


@dataclass(frozen=True)
class QueryOutcome:
    """Either the values (one for an instant query, the series' samples for a range query), the series of a
    range query kept whole (``matrix``), or a problem."""

    values: tuple[float, ...] = ()
    problem: Problem | None = None
    matrix: tuple[Series, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def value(self) -> float | None:
        return self.values[0] if self.problem is None and self.values else None

    @classmethod
    def failed(cls, kind: ProblemKind, message: str) -> QueryOutcome:
        # Messages end up in status and Events: whatever part of them came from the server is cleaned here too.
        return cls(problem=Problem(kind, clean(message, _MESSAGE_LIMIT)))


_fail = QueryOutcome.failed


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps."""
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

    if found(ConnectionRefusedError):
        return "connection refused"
    if found(socket.gaierror):
        return "cannot resolve the host name"
    tls = found(ssl.SSLError)
    if tls is not None:
        return f"TLS error: {tls}"
    if found(TimeoutError):
        return f"no connection within {timeout:g}s"
    os_error = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    return str(chain[-1])


def _error_problem(status: int, doc: dict[str, Any]) -> QueryOutcome:
    """Prometheus's own error answer: {"status": "error", "errorType": ..., "error": ...}."""
    error_type, error = clean(str(doc.get("errorType", "")), 64), clean(str(doc["error"]))
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


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: a body of deeply nested brackets
        return None


def _answer(reply: Reply, parse: Callable[[Any], QueryOutcome], where: str) -> QueryOutcome:
    """Classify Prometheus's answer; only data.result of a successful answer reaches ``parse``."""
    doc = _json(reply.body)
    if isinstance(doc, dict) and doc.get("status") == "error" and "error" in doc:
        return _error_problem(reply.status, doc)
    if reply.status != 200:
        text = clean(reply.body.decode("utf-8", "replace"))
        return _fail("http_error", f"HTTP {reply.status}: {text or 'empty body'}")
    data = doc.get("data") if isinstance(doc, dict) and doc.get("status") == "success" else None
    if not isinstance(data, dict) or "result" not in data:
        text = clean(reply.body.decode("utf-8", "replace"), 200)
        return _fail("http_error", f"unexpected answer from {where}, not the Prometheus API: {text or 'empty body'}")
    return parse(data["result"])


def _float(raw: Any) -> float:
    return float(raw)  # Prometheus sends numbers as strings: "1.5", "NaN", "+Inf"


def _describe(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _labels(item: dict[str, Any]) -> str:
    metric = item.get("metric") or {}
    pairs = sorted(metric.items())[:20] if isinstance(metric, dict) else []
    return "{" + ", ".join(f'{clean(str(k), 64)}="{clean(str(v), 64)}"' for k, v in pairs) + "}"


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
        return _fail("http_error", f"unexpected answer from Prometheus: {reprlib.repr(result)}")
    if not result:
        return _fail("empty", "query returned no data (empty vector)")
    if any("values" in r for r in result):
        return _fail("invalid_query", "query returned a range vector; wrap it in a function such as rate()")
    if len(result) > 1:
        return _too_many(result)
    return _number(_float(result[0]["value"][1]))


def _range_result(result: Any) -> QueryOutcome:
    if not isinstance(result, list) or not all(isinstance(r, dict) and "values" in r for r in result):
        return _fail("http_error", f"unexpected answer from Prometheus: {reprlib.repr(result)}")
    if not result:
        return _fail("empty", "query returned no data over the window (empty range)")
    if len(result) > 1:
        return _too_many(result)
    raw = [_float(v) for _, v in result[0]["values"]]
    values = tuple(v for v in raw if not math.isnan(v))
    if not values:
        return _fail("nan", f"all {len(raw)} samples over the window are NaN")
    return QueryOutcome(values)


MAX_MATRIX_SERIES = 64  # a histogram's buckets; more is an unaggregated query


def _matrix_result(result: Any) -> QueryOutcome:
    if not isinstance(result, list) or not all(isinstance(r, dict) and "values" in r for r in result):
        return _fail("http_error", f"unexpected answer from Prometheus: {reprlib.repr(result)}")
    if not result:
        return _fail("empty", "query returned no data over the window (empty range)")
    if len(result) > MAX_MATRIX_SERIES:
        return _fail(
            "multiple_series",
            f"query returned {len(result)} series, at most {MAX_MATRIX_SERIES} expected (one per bucket: "
            f"aggregate it, e.g. with sum by (le)): {'; '.join(_labels(r) for r in result[:3])}",
        )
    series = []
    for r in result:
        metric = r.get("metric") or {}
        labels = tuple(sorted((str(k), str(v)) for k, v in metric.items())) if isinstance(metric, dict) else ()
        series.append(Series(labels, tuple((float(t), _float(v)) for t, v in r["values"])))
    return QueryOutcome(matrix=tuple(series))


def _tls_context(settings: PrometheusSettings) -> ssl.SSLContext:
    """Trust roots in memory (the baseline's CA Secret) or from the operator's mounted file; never temp files."""
    if settings.insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if settings.ca_pem is not None:
        return ssl.create_default_context(cadata=settings.ca_pem)
    return ssl.create_default_context(cafile=settings.ca_file)


def batch_expression(queries: Sequence[str]) -> str:
    """One PromQL expression answering every query in ``queries``, each series tagged with its query's index."""
    return " or ".join(f'label_replace(({q}), "{BATCH_LABEL}", "{i}", "", "")' for i, q in enumerate(queries))


def split_batch(result: Any, count: int) -> list[QueryOutcome] | None:
    """Each query's outcome from the answer to ``batch_expression``, classified as an instant query's answer
    alone would be; None when the answer is not a vector of tagged series."""
    if not isinstance(result, list) or not all(isinstance(r, dict) and "value" in r for r in result):
        return None
    parts: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for item in result:
        metric = item.get("metric")
        tag = metric.get(BATCH_LABEL) if isinstance(metric, dict) else None
        if not (isinstance(tag, str) and tag.isdigit() and int(tag) < count):
            return None
        parts[int(tag)].append({**item, "metric": {k: v for k, v in metric.items() if k != BATCH_LABEL}})
    return [_instant_result(part) for part in parts]


def batchable(query: str) -> bool:
    """Whether ``query`` means the same inside a batch's wrapper as alone: its brackets balance outside string
    literals and it has no comment (a `#` would hide the wrapper's end). Any other query is asked alone."""
    depth, quote, escaped = 0, "", False
    for c in query:
        if quote:
            if escaped:
                escaped = False
            elif c == "\\" and quote != "`":
                escaped = True
            elif c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif c == "#":
            return False
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quote


def batches(queries: Sequence[str]) -> list[list[int]]:
    """The indexes of the batchable ``queries`` grouped into batches of at most MAX_BATCH_QUERIES and about
    MAX_BATCH_BYTES."""
    groups: list[list[int]] = []
    size = 0
    for i, query in enumerate(queries):
        if not batchable(query):
            continue
        if not groups or len(groups[-1]) >= MAX_BATCH_QUERIES or size + len(query) > MAX_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += len(query)
    return groups


class PrometheusQuerier:
    """Instant and range queries against one Prometheus; never raises on a query problem."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.address = settings.address.rstrip("/")
        self._where = redact(self.address)
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if settings.bearer_token:
            self._headers["Authorization"] = f"Bearer {settings.bearer_token}"
        # Checked here too, not only where a baseline's address is allowed: no credentials or parameters in the URL.
        self._refused: str | None = None
        try:
            check_plain(self.address)
        except ValueError as e:
            self._refused = f"Prometheus address refused: {e}"
        self._tls: ssl.SSLContext | None = None
        if self._refused is None and self.address.startswith("https://"):
            try:
                self._tls = _tls_context(settings)
            except (ssl.SSLError, OSError, ValueError) as e:
                self._refused = f"cannot set up TLS for {self._where}: {e}"

    def close(self) -> None:
        """Nothing to release: every request has its own connection, closed when it ends."""

    def instant(self, query: str, at: datetime | None = None, *, deadline: Deadline | None = None) -> QueryOutcome:
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        return self._call("/api/v1/query", params, _instant_result, deadline)

    def instant_batch(
        self, queries: Sequence[str], at: datetime | None = None, *, deadline: Deadline | None = None
    ) -> list[QueryOutcome] | None:
        """Every query's outcome from one request (see ``batch_expression``), or None when they must be asked
        one by one: the batch failed for a reason that may be one query's (a part that is invalid or returns a
        scalar, an answer over the byte cap). Prometheus unreachable or out of time is every query's outcome."""
        split: list[list[QueryOutcome]] = []

        def parse(result: Any) -> QueryOutcome:
            outcomes = split_batch(result, len(queries))
            if outcomes is None:
                return _fail("invalid_query", "not an answer to a batch")
            split.append(outcomes)
            return QueryOutcome()

        params = {"query": batch_expression(queries)}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        # POST: the joined queries can be longer than a proxy lets a URL be.
        answer = self._call("/api/v1/query", params, parse, deadline, post=True)
        if split:
            return split[0]
        assert answer.problem is not None
        if answer.problem.kind in ("unreachable", "timeout"):
            return [answer] * len(queries)
        return None

    def range(
        self, query: str, start: datetime, end: datetime, step: str, *, deadline: Deadline | None = None
    ) -> QueryOutcome:
        params = {"query": query, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}", "step": step}
        return self._call("/api/v1/query_range", params, _range_result, deadline)

    def range_matrix(
        self, query: str, start: datetime, end: datetime, step: str, *, deadline: Deadline | None = None
    ) -> QueryOutcome:
        """A range query whose series are kept whole, labels and points (e.g. one series per histogram bucket)."""
        params = {"query": query, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}", "step": step}
        return self._call("/api/v1/query_range", params, _matrix_result, deadline)

    def _call(
        self,
        path: str,
        params: dict[str, str],
        parse: Callable[[Any], QueryOutcome],
        deadline: Deadline | None,
        *,
        post: bool = False,
    ) -> QueryOutcome:
        timeout = self.settings.timeout_seconds
        where = self._where
        if self._refused is not None:
            return _fail("unreachable", self._refused)
        # Prometheus stops evaluating at this deadline too, so an expensive query frees the server.
        params = {**params, "timeout": f"{timeout:g}"}
        try:
            form = urlencode(params)
            headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"} if post else self._headers
            reply = fetch(
                f"{self.address}{path}" if post else f"{self.address}{path}?{form}",
                deadline=deadline or Deadline(timeout),
                max_bytes=self.settings.max_response_bytes,
                method="POST" if post else "GET",
                body=form.encode() if post else None,
                headers=headers,
                tls=self._tls,
            )
            return _answer(reply, parse, where)
        except ResponseTooLarge as e:
            return _fail(
                "too_large",
                f"answer from Prometheus at {where} refused: {e}; narrow the query (aggregate it) "
                "or raise MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES",
            )
        except ConnectError as e:
            return _fail("unreachable", f"Prometheus unreachable at {where}: {_connection_reason(e, timeout)}")
        except TimeoutError:  # DeadlineExceeded included
            return _fail("timeout", f"no answer from Prometheus at {where} within {timeout:g}s")
        except (OSError, http.client.HTTPException) as e:
            return _fail("unreachable", f"connection to Prometheus at {where} failed: {type(e).__name__}: {e}")
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as e:
            # Not a Prometheus API answer (wrong address, a proxy's page, malformed values).
            return _fail("http_error", f"unexpected answer from {where}: {type(e).__name__}: {e}")
