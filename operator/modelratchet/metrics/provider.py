"""Measure a ModelBaseline's live metrics for a candidate (and the stable checkpoint when compared live)."""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from modelratchet.api.baseline import MetricSpec, ModelBaselineSpec
from modelratchet.api.common import parse_duration
from modelratchet.gates import Observation
from modelratchet.wire import Deadline

from .addresses import redact
from .prometheus import ProblemKind, PrometheusQuerier, PrometheusSettings, QueryOutcome
from .templates import TemplateError, render_query

Arm = Literal["candidate", "baseline"]
Target = Literal["value", "samples", "successes", "total", "series"]

MAX_WORKERS = 8
DEFAULT_STEP = "10s"
MAX_POINTS = 11_000  # Prometheus refuses range queries with more points per series
NO_STABLE = "no stable checkpoint to compare with"
# Problems of the connection rather than of one query: reported once per observation, without the query name.
_CONNECTION_PROBLEMS = frozenset({"unreachable", "timeout", "http_error"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryProblem:
    metric: str
    arm: Arm
    query: str  # as sent (or the template, when it could not be rendered)
    kind: ProblemKind
    message: str


@dataclass
class ObservationSet:
    candidate: dict[str, Observation] = field(default_factory=dict)
    baseline: dict[str, Observation] = field(default_factory=dict)  # live baselines only
    problems: list[QueryProblem] = field(default_factory=list)


@dataclass(frozen=True)
class _Query:
    metric: str
    arm: Arm
    target: Target
    source: str  # the spec field the template came from, for messages
    promql: str
    ranged: bool


def duration(seconds: float) -> str:
    """Whole seconds as a PromQL duration, at least 1s."""
    return f"{max(1, round(seconds))}s"


def _is_live(metric: MetricSpec) -> bool:
    """Whether the metric is measured from Prometheus (the others are offline-only checks)."""
    judge = metric.judge.type if metric.judge else "threshold"
    return judge == "sequential" or metric.query is not None


def _templates(metric: MetricSpec) -> list[tuple[Target, str, str, bool]]:
    """(target field, spec field name, template, is a range query) for each query the metric needs."""
    judge = metric.judge
    out: list[tuple[Target, str, str, bool]] = []
    if judge is not None and judge.type == "sequential":
        assert judge.success_query is not None and judge.total_query is not None
        out += [
            ("successes", "successQuery", judge.success_query, False),
            ("total", "totalQuery", judge.total_query, False),
        ]
    elif metric.query is not None:
        ranged = judge is not None and judge.type == "mannWhitney"
        out.append(("series" if ranged else "value", "query", metric.query, ranged))
    if metric.samples_query is not None:
        out.append(("samples", "samplesQuery", metric.samples_query, False))
    return out


def _step(metric: MetricSpec, window_seconds: float) -> str:
    """The range query's resolution in seconds (Prometheus takes a bare float; its durations have no fractions)."""
    wanted = parse_duration(metric.judge.step) if metric.judge and metric.judge.step else parse_duration(DEFAULT_STEP)
    return f"{max(wanted, math.ceil(window_seconds / MAX_POINTS)):g}"


class MetricsProvider:
    """Runs a baseline's queries concurrently and turns the answers into Observations.

    Clients are kept per connection settings so their TLS contexts are built once, not per analysis.
    """

    def __init__(self, settings: PrometheusSettings | None = None, *, max_clients: int = 16) -> None:
        self.settings = settings
        self._max_clients = max_clients
        self._clients: OrderedDict[tuple[Any, ...], PrometheusQuerier] = OrderedDict()
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def querier(self, settings: PrometheusSettings) -> PrometheusQuerier:
        key = astuple(settings)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = PrometheusQuerier(settings)
                while len(self._clients) > self._max_clients:
                    self._clients.popitem(last=False)
            self._clients.move_to_end(key)
            return client

    def observe(
        self,
        spec: ModelBaselineSpec,
        *,
        namespace: str,
        checkpoint: str,
        stable_checkpoint: str | None,
        window_seconds: float,
        interval_seconds: float,
        now: datetime | None = None,
        settings: PrometheusSettings | None = None,
    ) -> ObservationSet:
        settings = settings or self.settings
        if settings is None:
            raise ValueError("no Prometheus settings: pass settings= or construct the provider with them")
        now = now or datetime.now(UTC)
        window, interval = duration(window_seconds), duration(interval_seconds)
        result = ObservationSet()
        fields: dict[tuple[str, Arm], dict[str, Any]] = {}
        errors: dict[tuple[str, Arm], list[str]] = {}
        queries: list[_Query] = []

        for metric in spec.metrics:
            if not _is_live(metric):
                continue
            arms: list[tuple[Arm, str | None]] = [("candidate", checkpoint)]
            if metric.is_live:
                arms.append(("baseline", stable_checkpoint))
            for arm, arm_checkpoint in arms:
                key = (metric.name, arm)
                fields[key], errors[key] = {}, []
                if arm_checkpoint is None:
                    errors[key].append(NO_STABLE)
                    continue
                for target, source, template, ranged in _templates(metric):
                    try:
                        promql = render_query(
                            template,
                            model=spec.model,
                            namespace=namespace,
                            checkpoint=arm_checkpoint,
                            window=window,
                            interval=interval,
                        )
                    except TemplateError as e:
                        message = f"invalid {source} template: {e}"
                        errors[key].append(message)
                        result.problems.append(QueryProblem(metric.name, arm, template, "invalid_query", message))
                        continue
                    queries.append(_Query(metric.name, arm, target, source, promql, ranged))

        steps = {m.name: _step(m, window_seconds) for m in spec.metrics}
        for query, outcome in self._run(queries, settings, now, window_seconds, steps):
            key = (query.metric, query.arm)
            if outcome.problem is None:
                fields[key][query.target] = outcome.values if query.ranged else outcome.value
                continue
            message = outcome.problem.message
            if query.source != "query" and outcome.problem.kind not in _CONNECTION_PROBLEMS:
                message = f"{query.source}: {message}"
            if message not in errors[key]:
                errors[key].append(message)
            result.problems.append(QueryProblem(query.metric, query.arm, query.promql, outcome.problem.kind, message))

        for (name, arm), values in fields.items():
            successes, total = values.get("successes"), values.get("total")
            if values.get("value") is None and successes is not None and total:
                values["value"] = successes / total
            obs = Observation(**values, error="; ".join(errors[(name, arm)]) or None)
            (result.candidate if arm == "candidate" else result.baseline)[name] = obs
        return result

    def _run(
        self,
        queries: list[_Query],
        settings: PrometheusSettings,
        now: datetime,
        window_seconds: float,
        steps: dict[str, str],
    ) -> list[tuple[_Query, QueryOutcome]]:
        """Every query's outcome; concurrent, and bounded in total by the connection's timeout."""
        if not queries:
            return []
        client = self.querier(settings)
        start = now - timedelta(seconds=max(1.0, window_seconds))
        # One deadline for the whole batch: a query still waiting for a worker when it passes fails at once, so
        # every worker is done by then and the pool can be joined without waiting on a slow server.
        deadline = Deadline(settings.timeout_seconds)

        def one(q: _Query) -> QueryOutcome:
            if q.ranged:
                return client.range(q.promql, start, now, steps[q.metric], deadline=deadline)
            return client.instant(q.promql, at=now, deadline=deadline)

        pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(queries)), thread_name_prefix="promql")
        try:
            futures: list[Future[QueryOutcome]] = [pool.submit(one, q) for q in queries]
        finally:
            # Joins the workers: no thread outlives the analysis (each request ends by the deadline).
            pool.shutdown(wait=True)
        late = QueryOutcome.failed(
            "timeout", f"no answer from Prometheus at {redact(settings.address)} within {settings.timeout_seconds:g}s"
        )
        return [(q, _outcome(f, late)) for q, f in zip(queries, futures, strict=True)]


def _outcome(future: Future[QueryOutcome], late: QueryOutcome) -> QueryOutcome:
    if not future.done() or future.cancelled():
        return late
    error = future.exception()
    if error is not None:
        # The querier classifies every expected failure; anything else is logged and reported, not raised.
        log.error("Prometheus query crashed", exc_info=error)
        return QueryOutcome.failed("http_error", f"query failed: {type(error).__name__}: {error}")
    return future.result()
