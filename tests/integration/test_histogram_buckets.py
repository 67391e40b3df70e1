"""The histogram judge's bucket query against a real Prometheus scraping a real histogram exporter.

Requests observed between scrapes must come back as whole counts per bucket and window, the same grid for
both checkpoints; a query that extrapolates (increase) is refused as invalid, not judged.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.gates import evaluate
from modelratchet.metrics.prometheus import PrometheusSettings
from modelratchet.metrics.provider import MetricsProvider
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SEL = '{model="{{ model }}",checkpoint="{{ checkpoint }}"}'
BUCKET = f"mr_it_req_seconds_bucket{SEL}"
EXACT = f"sum by (le) (clamp_min({BUCKET} - {BUCKET} offset {{{{ interval }}}}, 0))"
# 2.5 s over scrapes 1 s apart: increase() scales the seen counts by 1.25 or 2.5, so 7 requests become 8.75 or 17.5.
# (An extrapolation by a whole factor would give whole numbers: the check catches the usual case, not every one.)
EXTRAPOLATED = f"sum by (le) (increase({BUCKET}[2500ms]))"
PER_BATCH = 7
BUCKETS = (0.01, 0.05, 0.1, 0.5)


def spec(model: str, query: str) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate(
        {
            "model": model,
            "metrics": [
                {
                    "name": "latency",
                    "direction": "lowerIsBetter",
                    "baseline": "live",
                    "threshold": {"type": "ratio", "value": 0.2},
                    "judge": {"type": "histogram", "bucketQuery": query},
                }
            ],
        }
    )


@pytest.fixture
def histogram(prometheus: Any) -> Iterator[tuple[str, Histogram]]:
    model = f"it-{uuid.uuid4().hex[:10]}"
    registry = CollectorRegistry()
    h = Histogram("mr_it_req_seconds", "request latency", ["model", "checkpoint"], buckets=BUCKETS, registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    job = f"histogram-{model}"
    prometheus.add_target(job, f"127.0.0.1:{server.server_port}", {})
    try:
        yield model, h
    finally:
        prometheus.remove_target(job)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _count(prometheus: Any, model: str, checkpoint: str) -> float:
    got = prometheus.query(f'sum(mr_it_req_seconds_count{{model="{model}",checkpoint="{checkpoint}"}})')
    return float(got[0]["value"][1]) if got else -1.0


def test_exact_bucket_counts_per_window_from_a_real_prometheus(
    prometheus: Any, histogram: tuple[str, Histogram]
) -> None:
    model, h = histogram
    fast, slow = h.labels(model, "v1"), h.labels(model, "v2")
    fast.observe(0.001)  # the series exist before the windows start
    slow.observe(0.001)
    wait_for(lambda: _count(prometheus, model, "v2") == 1.0, 60, message="first scrape")
    # The windows start on a whole second after that scrape (so both ends of the first window have a sample),
    # and every request comes after it.
    started = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    wait_for(lambda: datetime.now(UTC) >= started, 5, message="the start of the first window")
    # Requests in several batches, each once Prometheus has scraped the one before, so the windows see them.
    for batch in range(6):
        for _ in range(PER_BATCH):
            fast.observe(0.03)
            slow.observe(0.3)
        target = 1 + PER_BATCH * (batch + 1)
        wait_for(lambda n=target: _count(prometheus, model, "v2") >= n, 30, message=f"batch {batch}")
    # Judge at the end of the first 2 s window that holds the last batch's scrape: every window is complete then.
    last = float(
        prometheus.query(f'timestamp(mr_it_req_seconds_count{{model="{model}",checkpoint="v2"}})')[0]["value"][1]
    )
    windows = math.ceil((last - started.timestamp()) / 2.0)
    now = started + timedelta(seconds=2 * windows)
    wait_for(lambda: datetime.now(UTC) >= now, 10, message="the end of the last window")
    window = (now - started).total_seconds()
    settings = PrometheusSettings(address=prometheus.url, timeout_seconds=10)
    observed = MetricsProvider().observe(
        spec(model, EXACT),
        namespace="ns",
        checkpoint="v2",
        stable_checkpoint="v1",
        window_seconds=window,
        interval_seconds=2,
        now=now,
        settings=settings,
    )
    assert observed.problems == []
    cand, base = observed.candidate["latency"].histogram, observed.baseline["latency"].histogram
    assert cand is not None and base is not None
    assert cand.bounds == (*BUCKETS, float("inf")) and cand.times == base.times and cand.step == 2.0
    assert len(cand.windows) == windows
    # Whole requests, each counted in one window only: the windows add up to what was observed since the start.
    assert all(float(v).is_integer() for w in cand.windows for v in w)
    total = 6.0 * PER_BATCH
    assert cand.pooled() == (0.0, 0.0, 0.0, total, total)
    assert base.pooled() == (0.0, total, total, total, total)

    result = evaluate(spec(model, EXACT), dict(observed.candidate), dict(observed.baseline))
    [r] = result.results
    assert r.outcome == "failed" and r.judge is not None and r.judge.judge == "histogram"

    refused = MetricsProvider().observe(
        spec(model, EXTRAPOLATED),
        namespace="ns",
        checkpoint="v2",
        stable_checkpoint="v1",
        window_seconds=window,
        interval_seconds=2,
        now=now,
        settings=settings,
    )
    kinds = {(p.arm, p.kind) for p in refused.problems}
    assert ("candidate", "invalid_query") in kinds
    assert any("counts must be whole numbers" in p.message for p in refused.problems)
