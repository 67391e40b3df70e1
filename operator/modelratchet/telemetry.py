"""The operator's own /metrics: what it decided and how fast."""

from __future__ import annotations

import threading

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

LEADER = Gauge(
    "modelratchet_leader",
    "1 while this replica holds the lease and renewed it within the renew deadline (always 1 without a lease).",
    registry=REGISTRY,
)
LEASE_RENEWALS = Counter(
    "modelratchet_lease_renewals_total", "Successful writes of the leader Lease by this replica.", registry=REGISTRY
)
RECONCILES_IN_FLIGHT = Gauge(
    "modelratchet_reconciles_in_flight", "Reconciles running right now, of either kind.", registry=REGISTRY
)
FENCED_WRITES = Counter(
    "modelratchet_fenced_writes_total",
    "Kubernetes writes refused because this replica was not the leader when they were about to be sent.",
    registry=REGISTRY,
)

# Every series labelled with (namespace, rollout), with its label names in order: they go when the rollout goes.
_PER_ROLLOUT: tuple[tuple[Gauge | Counter, tuple[str, ...]], ...] = (
    (ROLLOUT_PHASE, ("namespace", "rollout", "phase")),
    (CANARY_WEIGHT, ("namespace", "rollout")),
    (ANALYSES, ("namespace", "rollout", "verdict")),
    (METRIC_VALUE, ("namespace", "rollout", "metric", "arm")),
    (PROMOTIONS, ("namespace", "rollout")),
    (ROLLBACKS, ("namespace", "rollout", "reason")),
)
_PHASES = ("Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Failed")

# Every reconcile worker writes here: the read-modify-write of _phases and of the gauges derived from it is one
# step (iterating the dict while another worker inserts would raise, or count a rollout twice).
_lock = threading.Lock()
_phases: dict[tuple[str, str], str] = {}


def _forget_series(namespace: str, rollout: str) -> None:
    for metric, names in _PER_ROLLOUT:
        stale = {
            tuple(sample.labels[n] for n in names)
            for family in metric.collect()
            for sample in family.samples
            if sample.labels.get("namespace") == namespace and sample.labels.get("rollout") == rollout
        }
        for values in stale:
            metric.remove(*values)


def observe_phase(namespace: str, rollout: str, phase: str | None) -> None:
    """Keep the by-phase gauges consistent with the latest phase of each rollout.

    ``phase=None``: the rollout was deleted or is gone, and every series labelled with it leaves /metrics.
    """
    key = (namespace, rollout)
    with _lock:
        old = _phases.get(key)
        if phase is None:
            _phases.pop(key, None)
            _forget_series(namespace, rollout)
        elif old == phase:
            return
        else:
            if old is not None:
                ROLLOUT_PHASE.remove(namespace, rollout, old)
            _phases[key] = phase
            ROLLOUT_PHASE.labels(namespace, rollout, phase).set(1)
        counts = dict.fromkeys(_PHASES, 0)
        for (ns, _), p in _phases.items():
            if ns == namespace:
                counts[p] = counts.get(p, 0) + 1
        for p, count in counts.items():
            if any(counts.values()):
                ROLLOUTS.labels(namespace, p).set(count)
            else:  # the namespace's last rollout went (or the namespace did): no series left behind
                ROLLOUTS.remove(namespace, p)


def forget_rollout(namespace: str, rollout: str) -> None:
    """The rollout was deleted: drop its series and its place in the by-phase counts."""
    observe_phase(namespace, rollout, None)


def serve(port: int) -> None:
    start_http_server(port, registry=REGISTRY)
