"""The operator's own /metrics: what it decided and how fast."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

ROLLOUTS = Gauge("modelratchet_rollouts", "ModelRollouts by phase.", ["namespace", "phase"], registry=REGISTRY)
ROLLOUT_PHASE = Gauge(
    "modelratchet_rollout_phase_info",
    "1 for the current phase of each ModelRollout.",
    ["namespace", "rollout", "phase"],
    registry=REGISTRY,
)
CANARY_WEIGHT = Gauge(
    "modelratchet_canary_weight_percent", "Step weight of the canary.", ["namespace", "rollout"], registry=REGISTRY
)
ANALYSES = Counter(
    "modelratchet_analyses_total", "Analyses by verdict.", ["namespace", "rollout", "verdict"], registry=REGISTRY
)
METRIC_VALUE = Gauge(
    "modelratchet_metric_value",
    "Latest measured value of a metric: arm=candidate|baseline|threshold.",
    ["namespace", "rollout", "metric", "arm"],
    registry=REGISTRY,
)
PROMOTIONS = Counter("modelratchet_promotions_total", "Promotions.", ["namespace", "rollout"], registry=REGISTRY)
ROLLBACKS = Counter(
    "modelratchet_rollbacks_total",
    "Rollbacks and reverts by reason.",
    ["namespace", "rollout", "reason"],
    registry=REGISTRY,
)
TIME_TO_ROLLBACK = Histogram(
    "modelratchet_time_to_rollback_seconds",
    "From the first failing analysis to the canary removed.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "modelratchet_reconcile_errors_total", "Reconciles that raised.", ["namespace", "kind"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "modelratchet_reconcile_duration_seconds",
    "Duration of one reconcile of a ModelRollout, including its analysis.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

_phases: dict[tuple[str, str], str] = {}


def observe_phase(namespace: str, rollout: str, phase: str | None) -> None:
    """Keep the by-phase gauges consistent with the latest phase of each rollout."""
    key = (namespace, rollout)
    old = _phases.get(key)
    if old == phase:
        return
    if old is not None:
        ROLLOUT_PHASE.labels(namespace, rollout, old).set(0)
    if phase is None:
        _phases.pop(key, None)
    else:
        _phases[key] = phase
        ROLLOUT_PHASE.labels(namespace, rollout, phase).set(1)
    for ns in {k[0] for k in _phases} | {namespace}:
        counts: dict[str, int] = {}
        for (n, _), p in _phases.items():
            if n == ns:
                counts[p] = counts.get(p, 0) + 1
        for p in ("Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Failed"):
            ROLLOUTS.labels(ns, p).set(counts.get(p, 0))


def serve(port: int) -> None:
    start_http_server(port, registry=REGISTRY)
