"""Measure a ModelBaseline's live metrics for a candidate (and the stable checkpoint when compared live)."""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

from modelratchet.api.baseline import MetricSpec, ModelBaselineSpec
from modelratchet.gates import Histogram, Observation
from modelratchet.wire import Deadline

from .addresses import redact
from .prometheus import ProblemKind, PrometheusQuerier, PrometheusSettings, QueryOutcome, batches
from .templates import TemplateError, render_query

Arm = Literal["candidate", "baseline"]
Target = Literal["value", "samples", "successes", "total", "histogram"]
Shape = Literal["instant", "matrix"]

MAX_WORKERS = 8
# Windows of a histogram judge: past this many the windows lengthen, keeping the answer (windows x buckets)
# well under the byte cap.
MAX_WINDOWS = 2_000
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


_Job = Callable[[], "list[QueryOutcome] | None"]  # one request's outcomes, or None: ask its queries one by one


@dataclass(frozen=True)
class _Query:
    metric: str
    arm: Arm
    target: Target
    source: str  # the spec field the template came from, for messages
    promql: str
    shape: Shape


def duration(seconds: float) -> str:
    """Whole seconds as a PromQL duration, at least 1s."""
    return f"{max(1, round(seconds))}s"


def _is_live(metric: MetricSpec) -> bool:
    """Whether the metric is measured from Prometheus (the others are offline-only checks)."""
    judge = metric.judge.type if metric.judge else "threshold"
    return judge in ("sequential", "histogram") or metric.query is not None


def _templates(metric: MetricSpec) -> list[tuple[Target, str, str, Shape]]:
    """(target field, spec field name, template, query shape) for each query the metric needs."""
    judge = metric.judge
    out: list[tuple[Target, str, str, Shape]] = []
    if judge is not None and judge.type == "sequential":
        assert judge.success_query is not None and judge.total_query is not None
        out += [
            ("successes", "successQuery", judge.success_query, "instant"),
            ("total", "totalQuery", judge.total_query, "instant"),
        ]
    elif judge is not None and judge.type == "histogram":
        assert judge.bucket_query is not None
        out.append(("histogram", "bucketQuery", judge.bucket_query, "matrix"))
    elif metric.query is not None:
        out.append(("value", "query", metric.query, "instant"))
    if metric.samples_query is not None:
        out.append(("samples", "samplesQuery", metric.samples_query, "instant"))
    return out


def window_step(window_seconds: float, interval_seconds: float) -> float:
    """Length in whole seconds of a histogram judge's windows: the interval, longer in very long analyses."""
    return float(max(1, round(interval_seconds), math.ceil(window_seconds / MAX_WINDOWS)))


_WHOLE = 1e-6  # bucket counts further than this from an integer were extrapolated


def _histogram(outcome: QueryOutcome, step: float) -> Histogram | QueryOutcome:
    """Bucket counts per window from a range query's series, one per ``le``; or the problem with them."""

    def invalid(message: str) -> QueryOutcome:
        return QueryOutcome.failed("invalid_query", message)

    by_le: dict[float, dict[float, float]] = {}
    for series in outcome.matrix:
        le = series.label("le")
        if le is None:
            return invalid("bucketQuery must return one series per bucket, each with its le label (sum by (le) (...))")
        try:
            bound = float(le)
        except ValueError:
            return invalid(f"bucket bound le={le!r} is not a number")
        points = by_le.setdefault(bound, {})
        for t, v in series.points:
            if math.isfinite(v) and abs(v - round(v)) > _WHOLE * max(1.0, abs(v)):
                # A rank test on counts inflated by extrapolation would overstate the evidence: a configuration error.
                return invalid(
                    f"bucketQuery returned {v:.6g} requests in a bucket: counts must be whole numbers; increase() "
                    "and rate() extrapolate; count exactly, e.g. sum by (le) (clamp_min(x_bucket{...} - "
                    "x_bucket{...} offset {{ interval }}, 0))"
                )
            points[t] = points.get(t, 0.0) + v
    bounds = sorted(by_le)
    if len(bounds) < 2 or any(math.isnan(b) for b in bounds):
        return invalid(f"bucketQuery returned {len(bounds)} usable bucket(s); a histogram needs several le buckets")
    # A window counts when every bucket has a finite value at its end; the others are left out.
    times = sorted(set.intersection(*(set(by_le[b]) for b in bounds)))
    windows = [tuple(by_le[b][t] for b in bounds) for t in times]
    kept = [(t, w) for t, w in zip(times, windows, strict=True) if all(math.isfinite(v) for v in w)]
    if not kept:
        return QueryOutcome.failed("empty", "bucketQuery returned no window with a value in every bucket")
    return Histogram(
        bounds=tuple(bounds),
        times=tuple(t for t, _ in kept),
        windows=tuple(w for _, w in kept),
        step=step,
    )


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
        # A histogram judge's windows: {{ interval }} in its bucketQuery is their length, the range query's step.
        step = window_step(window_seconds, interval_seconds)
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
                for target, source, template, shape in _templates(metric):
                    try:
                        promql = render_query(
                            template,
                            model=spec.model,
                            namespace=namespace,
                            checkpoint=arm_checkpoint,
                            window=window,
                            interval=duration(step) if shape == "matrix" else interval,
                        )
                    except TemplateError as e:
                        message = f"invalid {source} template: {e}"
                        errors[key].append(message)
                        result.problems.append(QueryProblem(metric.name, arm, template, "invalid_query", message))
                        continue
                    queries.append(_Query(metric.name, arm, target, source, promql, shape))

        for query, outcome in self._run(queries, settings, now, window_seconds, step):
            key = (query.metric, query.arm)
            if outcome.problem is None and query.shape == "matrix":
                histogram = _histogram(outcome, step)
                if isinstance(histogram, Histogram):
                    fields[key][query.target] = histogram
                    continue
                outcome = histogram
            if outcome.problem is None:
                fields[key][query.target] = outcome.value
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
        step: float,
    ) -> list[tuple[_Query, QueryOutcome]]:
        """Every query's outcome; concurrent, and bounded in total by the connection's timeout."""
        if not queries:
            return []
        client = self.querier(settings)
        # Windows are anchored at the rollout's start: the first ends one step after it (earlier points would
        # count the stable checkpoint's requests from before the rollout), the same grid at every look.
        first_end = now - timedelta(seconds=max(1.0, window_seconds)) + timedelta(seconds=step)
        # One deadline for the whole batch: a query still waiting for a worker when it passes fails at once, so
        # every worker is done by then and the pool can be joined without waiting on a slow server.
        deadline = Deadline(settings.timeout_seconds)

        def one(q: _Query) -> QueryOutcome:
            if q.shape == "matrix":
                if first_end > now:
                    return QueryOutcome.failed("empty", "no complete window since the analysis began")
                return client.range_matrix(q.promql, first_end, now, f"{step:g}", deadline=deadline)
            return client.instant(q.promql, at=now, deadline=deadline)

        def alone(q: _Query) -> list[QueryOutcome] | None:
            return [one(q)]

        def batch(group: list[_Query]) -> list[QueryOutcome] | None:
            return client.instant_batch([q.promql for q in group], at=now, deadline=deadline)

        late = QueryOutcome.failed(
            "timeout", f"no answer from Prometheus at {redact(settings.address)} within {settings.timeout_seconds:g}s"
        )
        # The instant queries go in batches, one request each; a histogram's range queries go alone. What a batch
        # could not answer is asked one by one after it, within the same deadline.
        instant = [q for q in queries if q.shape == "instant"]
        groups = [[instant[i] for i in g] for g in batches([q.promql for q in instant]) if len(g) > 1]
        in_batch = {id(q) for g in groups for q in g}
        jobs: list[tuple[list[_Query], _Job]] = [(g, partial(batch, g)) for g in groups]
        jobs += [([q], partial(alone, q)) for q in queries if id(q) not in in_batch]
        outcomes: dict[int, QueryOutcome] = {}
        again: list[_Query] = []
        for group, answered in zip([g for g, _ in jobs], _in_pool(jobs, late), strict=True):
            if answered is None:
                again.extend(group)
            else:
                outcomes.update((id(q), o) for q, o in zip(group, answered, strict=True))
        for q, answered in zip(again, _in_pool([([q], partial(alone, q)) for q in again], late), strict=True):
            outcomes[id(q)] = (answered or [late])[0]
        return [(q, outcomes[id(q)]) for q in queries]


def _in_pool(jobs: list[tuple[list[_Query], _Job]], late: QueryOutcome) -> list[list[QueryOutcome] | None]:
    """Each job's outcomes, one per query of the job (None: ask them one by one), run on at most MAX_WORKERS
    threads that are joined before this returns: no thread outlives the analysis (each request ends by the
    analysis's deadline)."""
    if not jobs:
        return []
    pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(jobs)), thread_name_prefix="promql")
    try:
        futures = [pool.submit(call) for _, call in jobs]
    finally:
        pool.shutdown(wait=True)
    return [_answers(f, len(group), late) for (group, _), f in zip(jobs, futures, strict=True)]


def _answers(future: Future[list[QueryOutcome] | None], size: int, late: QueryOutcome) -> list[QueryOutcome] | None:
    """A job's outcomes: ``late`` when it never ran, a crash reported rather than raised."""
    if not future.done() or future.cancelled():
        return [late] * size
    error = future.exception()
    if error is not None:
        # The querier classifies every expected failure; anything else is logged and reported, not raised.
        log.error("Prometheus query crashed", exc_info=error)
        return [QueryOutcome.failed("http_error", f"query failed: {type(error).__name__}: {error}")] * size
    return future.result()
