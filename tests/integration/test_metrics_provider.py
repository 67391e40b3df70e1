"""The Prometheus provider against a real Prometheus scraping real exporters on loopback."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.metrics.prometheus import PrometheusOverride, PrometheusQuerier, PrometheusSettings, merge
from modelratchet.metrics.provider import NO_STABLE, MetricsProvider, ObservationSet
from modelratchet.metrics.templates import render_query
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SCRAPE_TIMEOUT = 60.0  # discovery of a new file_sd target takes a few seconds
# Hang guards, not measurements: what should take milliseconds fails the test only if it is still waiting after
# HANG_GUARD seconds, and a query deadline of LONG_DEADLINE is never reached by a query that behaves.
HANG_GUARD = 30.0
LONG_DEADLINE = 60.0
NS = "ml-prod"
SEL = 'model="{{ model }}",checkpoint="{{ checkpoint }}"'
HOSTILE = 'v1"} or vector(1) or foo{a="'
TRICKY = 's3://m/v1\\n "quoted" \\ ü ✓\nline2'


@dataclass
class Served:
    """An exporter Prometheus scrapes, and its metrics keyed by name."""

    model: str
    registry: CollectorRegistry
    gauges: dict[str, Gauge]
    counters: dict[str, Counter]


def settings_for(prometheus: Any, timeout: float = 5.0) -> PrometheusSettings:
    return PrometheusSettings(address=prometheus.url, timeout_seconds=timeout)


def spec(model: str, *metrics: dict[str, Any]) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate({"model": model, "metrics": list(metrics)})


def observe(
    prometheus: Any,
    baseline: ModelBaselineSpec,
    checkpoint: str = "v2",
    stable: str | None = "v1",
    *,
    provider: MetricsProvider | None = None,
    timeout: float = 5.0,
    window: float = 600.0,
) -> ObservationSet:
    return (provider or MetricsProvider()).observe(
        baseline,
        namespace=NS,
        checkpoint=checkpoint,
        stable_checkpoint=stable,
        window_seconds=window,
        interval_seconds=5,
        settings=settings_for(prometheus, timeout),
    )


def sample(prometheus: Any, promql: str) -> str | None:
    """The single value of an instant query as Prometheus formats it, or None without data."""
    result = prometheus.query(promql)
    return str(result[0]["value"][1]) if len(result) == 1 else None


@contextmanager
def exporter(prometheus: Any, build: Callable[[CollectorRegistry, str], Served]) -> Iterator[Served]:
    """An in-process exporter on a free loopback port, registered as a scrape target for its lifetime."""
    model = f"it-{uuid.uuid4().hex[:10]}"
    registry = CollectorRegistry()
    served = build(registry, model)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    job = f"metrics-provider-{model}"
    prometheus.add_target(job, f"127.0.0.1:{server.server_port}", {})
    try:
        yield served
    finally:
        prometheus.remove_target(job)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _standard(registry: CollectorRegistry, model: str) -> Served:
    labels = ["model", "checkpoint"]
    gauges = {
        "latency": Gauge("mr_it_latency_seconds", "p95 latency", labels, registry=registry),
        "score": Gauge("mr_it_score", "a sampled score", labels, registry=registry),
    }
    counters = {
        "predictions": Counter("mr_it_predictions", "predictions", labels, registry=registry),
        "correct": Counter("mr_it_correct", "correct predictions", labels, registry=registry),
    }
    for checkpoint, latency, score, predictions, correct in (("v1", 0.25, 3.0, 200, 160), ("v2", 0.5, 1.0, 100, 90)):
        gauges["latency"].labels(model, checkpoint).set(latency)
        gauges["score"].labels(model, checkpoint).set(score)
        counters["predictions"].labels(model, checkpoint).inc(predictions)
        counters["correct"].labels(model, checkpoint).inc(correct)
    return Served(model, registry, gauges, counters)


@pytest.fixture(scope="module")
def served(prometheus: Any) -> Iterator[Served]:
    with exporter(prometheus, _standard) as s:
        wait_for(
            lambda: sample(prometheus, f'count(mr_it_correct_total{{model="{s.model}"}})') == "2",
            SCRAPE_TIMEOUT,
            message="Prometheus to scrape the exporter",
        )
        yield s


def test_threshold_value_and_live_baseline(prometheus: Any, served: Served) -> None:
    baseline = spec(
        served.model,
        {
            "name": "latency",
            "direction": "lowerIsBetter",
            "baseline": "live",
            "threshold": {"type": "delta", "value": 0.1},
            "query": f"max(mr_it_latency_seconds{{{SEL}}})",
        },
        {"name": "static", "baseline": 0.5, "threshold": {"type": "min", "value": 0.4}, "query": "vector(0.75)"},
        {"name": "offline_only", "threshold": {"type": "min", "value": 0.9}},
    )
    obs = observe(prometheus, baseline)
    assert obs.problems == []
    assert obs.candidate["latency"].value == 0.5
    assert obs.baseline["latency"].value == 0.25
    assert obs.candidate["static"].value == 0.75
    assert "static" not in obs.baseline  # static baselines come from the spec, not Prometheus
    assert "offline_only" not in obs.candidate

    without_stable = observe(prometheus, baseline, stable=None)
    assert without_stable.candidate["latency"].value == 0.5
    assert without_stable.baseline["latency"].error == NO_STABLE


def test_sequential_counts_and_samples(prometheus: Any, served: Served) -> None:
    baseline = spec(
        served.model,
        {
            "name": "accuracy",
            "baseline": "live",
            "threshold": {"type": "delta", "value": 0.05},
            "judge": {
                "type": "sequential",
                "successQuery": f"sum(mr_it_correct_total{{{SEL}}})",
                "totalQuery": f"sum(mr_it_predictions_total{{{SEL}}})",
            },
            "minSamples": 150,
            "samplesQuery": f"sum(mr_it_predictions_total{{{SEL}}})",
        },
    )
    obs = observe(prometheus, baseline)
    assert obs.problems == []
    cand, base = obs.candidate["accuracy"], obs.baseline["accuracy"]
    assert (cand.successes, cand.total, cand.samples) == (90, 100, 100)
    assert cand.value == pytest.approx(0.9)
    assert (base.successes, base.total, base.samples) == (160, 200, 200)
    assert base.value == pytest.approx(0.8)
    assert cand.error is None and base.error is None


def test_empty_vector_is_a_problem(prometheus: Any, served: Served) -> None:
    baseline = spec(
        served.model,
        {"name": "latency", "threshold": {"type": "max", "value": 1}, "query": f"max(mr_it_latency_seconds{{{SEL}}})"},
    )
    obs = observe(prometheus, baseline, checkpoint="v9")
    [problem] = obs.problems
    assert (problem.metric, problem.arm, problem.kind) == ("latency", "candidate", "empty")
    assert 'checkpoint="v9"' in problem.query
    assert obs.candidate["latency"].error == "query returned no data (empty vector)"
    assert obs.candidate["latency"].value is None


def test_invalid_promql_reports_prometheus_error(prometheus: Any, served: Served) -> None:
    baseline = spec(
        served.model,
        {"name": "broken", "threshold": {"type": "max", "value": 1}, "query": f"sum(rate(x{{{SEL}}}[5m])"},
    )
    obs = observe(prometheus, baseline)
    [problem] = obs.problems
    assert problem.kind == "invalid_query"
    assert problem.message.startswith("invalid PromQL: ")
    assert "parse error" in problem.message  # Prometheus's own text
    assert obs.candidate["broken"].error == problem.message


def test_unsafe_template_is_a_problem_without_a_query(prometheus: Any, served: Served) -> None:
    template = "max(mr_it_latency_seconds{checkpoint={{ checkpoint }}})"
    baseline = spec(served.model, {"name": "bad", "threshold": {"type": "max", "value": 1}, "query": template})
    [problem] = observe(prometheus, baseline).problems
    assert (problem.kind, problem.query) == ("invalid_query", template)
    assert "must be inside a quoted string" in problem.message


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("0/0", "NaN"),
        (f"sum(mr_it_correct_total{{{SEL}}}) * 0 / 0", "NaN"),
        (f"sum(mr_it_correct_total{{{SEL}}}) / 0", "+Inf"),
    ],
)
def test_nan_and_inf_are_problems(prometheus: Any, served: Served, query: str, shown: str) -> None:
    baseline = spec(served.model, {"name": "ratio", "threshold": {"type": "min", "value": 0}, "query": query})
    obs = observe(prometheus, baseline)
    [problem] = obs.problems
    assert problem.kind == "nan"
    assert obs.candidate["ratio"].error == f"query returned {shown}"


def test_several_series_are_ambiguous(prometheus: Any, served: Served) -> None:
    baseline = spec(
        served.model,
        {
            "name": "latency",
            "threshold": {"type": "max", "value": 1},
            "query": 'mr_it_latency_seconds{model="{{ model }}"}',
        },
    )
    [problem] = observe(prometheus, baseline).problems
    assert problem.kind == "multiple_series"
    assert "returned 2 series" in problem.message
    assert 'checkpoint="v1"' in problem.message and 'checkpoint="v2"' in problem.message


def test_prometheus_down_is_unreachable_at_once_and_recovers(prometheus: Any, served: Served) -> None:
    baseline = spec(
        served.model,
        {
            "name": "latency",
            "baseline": "live",
            "threshold": {"type": "delta", "value": 1},
            "query": f"max(mr_it_latency_seconds{{{SEL}}})",
            "samplesQuery": f"sum(mr_it_predictions_total{{{SEL}}})",
        },
    )
    provider = MetricsProvider()
    assert observe(prometheus, baseline, provider=provider).problems == []
    prometheus.stop()
    pool = ThreadPoolExecutor(1, thread_name_prefix="observe")
    try:
        # A refused connection is reported when it is refused, not when the deadline passes: a query that waited
        # for the deadline would be reported as a timeout, and would not be back within the hang guard.
        down = pool.submit(observe, prometheus, baseline, provider=provider, timeout=LONG_DEADLINE)
        obs = down.result(timeout=HANG_GUARD)
    finally:
        pool.shutdown(wait=False)
        prometheus.start()
    assert len(obs.problems) == 4
    assert {p.kind for p in obs.problems} == {"unreachable"}
    assert obs.candidate["latency"].error == f"Prometheus unreachable at {prometheus.url}: connection refused"
    assert obs.baseline["latency"].error is not None

    def healthy() -> ObservationSet | None:
        again = observe(prometheus, baseline, provider=provider)
        return again if not again.problems else None

    again = wait_for(healthy, SCRAPE_TIMEOUT, message="queries to work after Prometheus restarts")
    assert again is not None
    assert (again.candidate["latency"].value, again.baseline["latency"].value) == (0.5, 0.25)


class HoldingProxy:
    """A loopback HTTP proxy in front of Prometheus that holds every request until ``parties`` are held at once.

    Each request waits on a barrier of ``parties`` before it is forwarded: the barrier releases only when that many
    requests are in flight together, so queries sent one after another never get past it. A request that waited
    ``guard`` seconds breaks the barrier (a hang guard, not a measurement) and is answered 503, as is every request
    after it.
    """

    def __init__(self, upstream: str, parties: int, guard: float = HANG_GUARD) -> None:
        self.barrier = threading.Barrier(parties)
        self.passed: list[str] = []  # the paths forwarded after the barrier released
        self.held: list[str] = []  # every path that reached the proxy
        self.posted: list[str] = []  # the form bodies of POSTs (batches), forwarded without holding
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with proxy._lock:
                    proxy.held.append(self.path)
                try:
                    proxy.barrier.wait(timeout=guard)
                except threading.BrokenBarrierError:
                    self._reply(503, b"the barrier broke: the requests did not arrive together")
                    return
                with proxy._lock:
                    proxy.passed.append(self.path)
                try:
                    with urllib.request.urlopen(upstream + self.path, timeout=guard) as answer:
                        self._reply(answer.status, answer.read())
                except urllib.error.HTTPError as e:  # Prometheus's own error answers, passed on as they are
                    self._reply(e.code, e.read())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.posted.append(body.decode())
                request = urllib.request.Request(upstream + self.path, data=body, headers=dict(self.headers))
                try:
                    with urllib.request.urlopen(request, timeout=guard) as answer:
                        self._reply(answer.status, answer.read())
                except urllib.error.HTTPError as e:
                    self._reply(e.code, e.read())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HoldingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.barrier.abort()  # nothing stays held once the test is over
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=HANG_GUARD)


def _live_metrics(*names: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [
        {"name": name, "baseline": "live", "threshold": {"type": "delta", "value": 1000}, "query": query}
        for name, query, _ in names
    ]


def _observe_through(
    proxy: HoldingProxy, baseline: ModelBaselineSpec, provider: MetricsProvider | None = None, **kwargs: Any
) -> ObservationSet:
    return (provider or MetricsProvider()).observe(
        baseline,
        namespace=NS,
        checkpoint="v2",
        stable_checkpoint="v1",
        window_seconds=600,
        interval_seconds=5,
        **kwargs,
        # Longer than the proxy's guard: if queries that must be in flight together ran one after another, the
        # barrier breaks first.
        settings=PrometheusSettings(address=proxy.url, timeout_seconds=LONG_DEADLINE),
    )


THREE_LIVE = (
    ("latency", f"max(mr_it_latency_seconds{{{SEL}}})", ""),
    ("predictions", f"sum(mr_it_predictions_total{{{SEL}}})", ""),
    ("correct", f"sum(mr_it_correct_total{{{SEL}}})", ""),
)


def test_instant_queries_go_as_one_request(prometheus: Any, served: Served) -> None:
    """Three live metrics are six instant queries, and one request: nothing is held, so six GETs would fail."""
    with HoldingProxy(prometheus.url, parties=7) as proxy:
        obs = _observe_through(proxy, spec(served.model, *_live_metrics(*THREE_LIVE)))
        assert proxy.held == [] and len(proxy.posted) == 1
        assert proxy.posted[0].count("label_replace") == 6
    assert obs.problems == []
    values = {name: (obs.candidate[name].value, obs.baseline[name].value) for name in obs.candidate}
    assert values == {"latency": (0.5, 0.25), "predictions": (100, 200), "correct": (90, 160)}


def test_what_a_batch_cannot_answer_is_asked_one_by_one_concurrently(prometheus: Any, served: Served) -> None:
    """A part that answers a scalar makes the batch invalid PromQL: its six queries are then asked alone, all
    in flight at once (the proxy lets them through only when it holds six together), and each answers as alone."""
    scalar = ("latency", f"scalar(max(mr_it_latency_seconds{{{SEL}}}))", "")
    with HoldingProxy(prometheus.url, parties=6) as proxy:
        obs = _observe_through(proxy, spec(served.model, *_live_metrics(scalar, *THREE_LIVE[1:])))
        assert not proxy.barrier.broken
        assert len(proxy.posted) == 1 and len(proxy.held) == len(proxy.passed) == 6
    assert obs.problems == []
    values = {name: (obs.candidate[name].value, obs.baseline[name].value) for name in obs.candidate}
    assert values == {"latency": (0.5, 0.25), "predictions": (100, 200), "correct": (90, 160)}


class OneByOne(MetricsProvider):
    """The provider with batches turned off: every query is its own request."""

    def querier(self, settings: PrometheusSettings) -> PrometheusQuerier:
        client = super().querier(settings)
        client.instant_batch = lambda *args, **kwargs: None  # type: ignore[method-assign]
        return client


@pytest.mark.parametrize("with_invalid", [False, True], ids=["batched", "batch-refused"])
def test_a_batch_answers_exactly_as_queries_one_by_one(prometheus: Any, served: Served, with_invalid: bool) -> None:
    """Every kind of answer (values, live baselines, samples, successes and totals, no data, NaN, +Inf, several
    series, a scalar) comes out of a batch as it does one by one; with a part that is not PromQL the batch is
    refused and each query is asked alone."""
    metrics: list[dict[str, Any]] = [
        {
            "name": "accuracy",
            "baseline": "live",
            "threshold": {"type": "ratio", "value": 0.05},
            "query": f"sum(mr_it_correct_total{{{SEL}}}) / sum(mr_it_predictions_total{{{SEL}}})",
            "minSamples": 10,
            "samplesQuery": f"sum(mr_it_predictions_total{{{SEL}}})",
        },
        {
            "name": "sequential",
            "baseline": "live",
            "threshold": {"type": "delta", "value": 0.05},
            "judge": {
                "type": "sequential",
                "successQuery": f"sum(mr_it_correct_total{{{SEL}}})",
                "totalQuery": f"sum(mr_it_predictions_total{{{SEL}}})",
            },
        },
        {"name": "empty", "threshold": {"type": "max", "value": 1}, "query": f"max(nothing_here{{{SEL}}})"},
        {"name": "nan", "threshold": {"type": "max", "value": 1}, "query": f"sum(mr_it_score{{{SEL}}}) * 0 / 0"},
        {"name": "inf", "threshold": {"type": "max", "value": 1}, "query": f"sum(mr_it_score{{{SEL}}}) / 0"},
        {"name": "several", "threshold": {"type": "max", "value": 9}, "query": 'mr_it_score{model="{{ model }}"}'},
        {"name": "number", "threshold": {"type": "max", "value": 9}, "query": "vector(3)"},
    ]
    if with_invalid:
        metrics.append({"name": "broken", "threshold": {"type": "max", "value": 1}, "query": "sum(rate(x[5m])) +"})
    baseline = spec(served.model, *metrics)
    now = datetime.now(UTC)
    with HoldingProxy(prometheus.url, parties=1) as proxy:  # holds nothing: it only counts
        batched, alone = (_observe_through(proxy, baseline, p, now=now) for p in (MetricsProvider(), OneByOne()))
        queries = 4 + 4 + 5 + (1 if with_invalid else 0)  # accuracy and sequential: 2 per arm; the rest: 1
        assert len(proxy.posted) == 1, "the batched provider sent one batch"
        assert len(proxy.held) == queries * (2 if with_invalid else 1), "one by one: each query once per provider"
    assert batched.candidate == alone.candidate
    assert batched.baseline == alone.baseline
    assert batched.problems == alone.problems
    kinds = {p.metric: p.kind for p in batched.problems}
    expected = {"empty": "empty", "nan": "nan", "inf": "nan", "several": "multiple_series"}
    assert kinds == ({**expected, "broken": "invalid_query"} if with_invalid else expected)
    assert batched.candidate["accuracy"].value == 0.9 and batched.baseline["accuracy"].value == 0.8
    assert batched.candidate["number"].value == 3


def test_silent_server_times_out(served: Served) -> None:
    """A server that accepts connections but never answers: every query is reported as a timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        metrics = [
            {"name": f"m{i}", "threshold": {"type": "max", "value": 1}, "query": f"max(x{{{SEL}}})"} for i in range(6)
        ]
        obs = MetricsProvider().observe(
            spec(served.model, *metrics),
            namespace=NS,
            checkpoint="v2",
            stable_checkpoint="v1",
            window_seconds=60,
            interval_seconds=5,
            settings=PrometheusSettings(address=f"http://127.0.0.1:{port}", timeout_seconds=1.0),
        )
    assert [p.kind for p in obs.problems] == ["timeout"] * 6
    message = f"no answer from Prometheus at http://127.0.0.1:{port} within 1s"
    assert [obs.candidate[f"m{i}"].error for i in range(6)] == [message] * 6


def _hostile(registry: CollectorRegistry, model: str) -> Served:
    gauge = Gauge("mr_it_hostile", "labels that look like PromQL", ["model", "checkpoint"], registry=registry)
    for checkpoint, value in (("v1", 1.0), (HOSTILE, 7.0), (TRICKY, 8.0), ("v.1", 9.0)):
        gauge.labels(model, checkpoint).set(value)
    return Served(model, registry, {"hostile": gauge}, {})


def test_hostile_checkpoints_select_exactly_their_own_series(prometheus: Any) -> None:
    with exporter(prometheus, _hostile) as s:
        wait_for(
            lambda: sample(prometheus, f'count(mr_it_hostile{{model="{s.model}"}})') == "4",
            SCRAPE_TIMEOUT,
            message="Prometheus to scrape the hostile labels",
        )
        exact = "max(mr_it_hostile{" + SEL + "})"
        regex = 'max(mr_it_hostile{model="{{ model }}",checkpoint=~"{{ checkpoint }}"})'

        def value(template: str, checkpoint: str) -> float | None:
            baseline = spec(s.model, {"name": "h", "threshold": {"type": "max", "value": 100}, "query": template})
            return observe(prometheus, baseline, checkpoint=checkpoint).candidate["h"].value

        # Each hostile label value selects its own series, through = and =~ alike.
        for template in (exact, regex):
            assert value(template, HOSTILE) == 7.0
            assert value(template, TRICKY) == 8.0
            assert value(template, "v.1") == 9.0
        # Values that would widen or rewrite the selection if pasted raw match nothing instead.
        assert value(exact, 'v9"} or vector(1) or foo{a="') is None
        assert value(regex, "v.*") is None
        assert value(regex, "v1|v.1") is None

        # The rendered query selects the same series as a selection made outside PromQL.
        rendered = render_query(
            f"mr_it_hostile{{{SEL}}}", model=s.model, namespace=NS, checkpoint=HOSTILE, window="60s", interval="5s"
        )
        everything = prometheus.query(f'mr_it_hostile{{model="{s.model}"}}')
        expected = [r["metric"] for r in everything if r["metric"]["checkpoint"] == HOSTILE]
        assert [r["metric"] for r in prometheus.query(rendered)] == expected
        assert len(expected) == 1


def test_label_replace_regex_and_replacement_take_values_literally(prometheus: Any) -> None:
    """label_replace's regex is regex-quoted and its replacement keeps $ as text, as Prometheus reads them."""
    template = (
        'label_replace(mr_it_hostile{model="{{ model }}"}, "picked", "{{ checkpoint }}", "checkpoint", '
        '"{{ checkpoint }}")'
    )
    with exporter(prometheus, _hostile) as s:
        wait_for(
            lambda: sample(prometheus, f'count(mr_it_hostile{{model="{s.model}"}})') == "4",
            SCRAPE_TIMEOUT,
            message="Prometheus to scrape the hostile labels",
        )
        for checkpoint in (HOSTILE, TRICKY, "v.1", "v1"):
            rendered = render_query(
                template, model=s.model, namespace=NS, checkpoint=checkpoint, window="60s", interval="5s"
            )
            picked = [r["metric"] for r in prometheus.query(rendered) if "picked" in r["metric"]]
            # Exactly the series whose checkpoint is the value, labelled with the value itself.
            assert [(m["checkpoint"], m["picked"]) for m in picked] == [(checkpoint, checkpoint)]


def test_querier_instant_and_range_directly(prometheus: Any, served: Served) -> None:
    querier = PrometheusQuerier(settings_for(prometheus))
    try:
        ok = querier.instant(f'max(mr_it_latency_seconds{{model="{served.model}",checkpoint="v1"}})')
        assert (ok.ok, ok.value) == (True, 0.25)
        now = datetime.now(UTC)
        ranged = querier.range(
            f'max(mr_it_latency_seconds{{model="{served.model}",checkpoint="v1"}})',
            now - timedelta(seconds=30),
            now,
            "1",
        )
        assert ranged.ok and ranged.values and set(ranged.values) == {0.25}
        matrix = querier.instant(f'mr_it_latency_seconds{{model="{served.model}",checkpoint="v1"}}[1m]')
        assert matrix.problem is not None and matrix.problem.kind == "invalid_query"
    finally:
        querier.close()


def test_merged_settings_reach_the_baselines_prometheus(prometheus: Any, served: Served) -> None:
    operator_default = PrometheusSettings(
        address="http://127.0.0.1:9", bearer_token="operator-secret", ca_file="/etc/ssl/ca.pem", timeout_seconds=7
    )
    merged = merge(operator_default, PrometheusOverride(address=prometheus.url, timeout_seconds=2))
    # The operator's token is never sent to an address a ModelBaseline chose.
    assert merged == PrometheusSettings(prometheus.url, None, "/etc/ssl/ca.pem", False, 2)
    assert merge(operator_default, PrometheusOverride(bearer_token="own")).bearer_token == "own"
    assert merge(operator_default, PrometheusOverride(address="http://127.0.0.1:9/")).bearer_token == "operator-secret"
    assert merge(operator_default, None) == operator_default

    merged.ca_file = None
    querier = PrometheusQuerier(merged)
    try:
        outcome = querier.instant(f'max(mr_it_latency_seconds{{model="{served.model}",checkpoint="v2"}})')
    finally:
        querier.close()
    assert outcome.value == 0.5
    down = PrometheusQuerier(operator_default).instant("vector(1)")
    assert down.problem is not None and down.problem.kind == "unreachable"
