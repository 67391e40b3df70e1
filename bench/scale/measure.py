"""What the scale benchmark reads: the operator's /metrics and /proc, Prometheus's own counters, rollout statuses."""

from __future__ import annotations

import math
import os
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from e2e.harness.operator_proc import OperatorProcess

QUERY_HANDLERS = ("/api/v1/query", "/api/v1/query_range")
LAG = "modelratchet_analysis_lag_seconds"


def total(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k == prefix or k.startswith(prefix + "{"))


def prometheus_queries(prometheus_url: str) -> float:
    """Queries Prometheus has answered since it started, from its own HTTP request counters."""
    text = urllib.request.urlopen(f"{prometheus_url}/metrics", timeout=10).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "prometheus_http_requests_total" and sample.labels.get("handler") in QUERY_HANDLERS
    )


def lag_buckets(metrics: dict[str, float]) -> dict[float, float]:
    out: dict[float, float] = {}
    for k, v in metrics.items():
        if k.startswith(f"{LAG}_bucket{{"):
            le = k.split('le="', 1)[1].split('"', 1)[0]
            out[math.inf if le == "+Inf" else float(le)] = v
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative buckets: linear within the bucket, the last finite bound for +Inf."""
    bounds = sorted(buckets)
    count = buckets.get(math.inf, 0.0)
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for b in bounds:
        if buckets[b] >= rank:
            if math.isinf(b):
                return lower
            width = buckets[b] - below
            return lower + (b - lower) * ((rank - below) / width if width else 1.0)
        lower, below = b, buckets[b]
    return lower


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def parse_ts(text: str | None) -> float | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


@dataclass
class Window:
    """The counters at the start of a measurement window; ``close`` turns them into rates over it."""

    operator: OperatorProcess
    prometheus_url: str
    started: float = field(default_factory=time.monotonic)
    before: dict[str, float] = field(default_factory=dict)
    queries: float = 0.0
    cpu: float = 0.0

    @property
    def pid(self) -> int:
        assert self.operator.proc is not None
        return self.operator.proc.pid

    def open(self) -> Window:
        self.before = self.operator.metrics()
        self.queries = prometheus_queries(self.prometheus_url)
        self.cpu = cpu_seconds(self.pid)
        self.started = time.monotonic()
        return self

    def close(self) -> dict[str, Any]:
        op, queries, cpu = self.operator.metrics(), prometheus_queries(self.prometheus_url), cpu_seconds(self.pid)
        seconds = time.monotonic() - self.started

        def delta(prefix: str) -> float:
            return total(op, prefix) - total(self.before, prefix)

        before, after = lag_buckets(self.before), lag_buckets(op)
        lag = {b: after[b] - before.get(b, 0.0) for b in after}
        lag_count = delta(f"{LAG}_count")
        reconciles = delta("modelratchet_reconcile_duration_seconds_count")
        analyses = delta("modelratchet_analyses_total")
        return {
            "seconds": round(seconds, 1),
            "analyses": analyses,
            "analyses_per_second": analyses / seconds,
            "reconciles_per_second": reconciles / seconds,
            "reconcile_mean_seconds": delta("modelratchet_reconcile_duration_seconds_sum") / reconciles
            if reconciles
            else None,
            "lag_p50": quantile(0.5, lag),
            "lag_p99": quantile(0.99, lag),
            "lag_mean": delta(f"{LAG}_sum") / lag_count if lag_count else None,
            # The smallest bucket bound every lag of the window fell under (None: some lag exceeded the largest).
            "lag_max_bound": min(
                (b for b, n in lag.items() if n >= lag.get(math.inf, 0.0) and not math.isinf(b)), default=None
            ),
            "prometheus_queries_per_second": (queries - self.queries) / seconds,
            "cpu_seconds": cpu - self.cpu,
            "cpu_share": (cpu - self.cpu) / seconds,
            "errors": delta("modelratchet_reconcile_errors_total"),
        }


@dataclass
class Result:
    system: str
    objects: int
    interval: int
    setup_seconds: float
    first_analysis_seconds: float
    window: dict[str, Any]
    peak_rss_mib: float
    restart_converge_seconds: float | None
    restart_overdue: int
    late_rollouts: list[str]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
