"""Operator settings, read from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _read(path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else None


@dataclass(frozen=True)
class OperatorSettings:
    prometheus_url: str = "http://prometheus-operated.monitoring:9090"
    prometheus_token: str | None = None
    prometheus_ca_file: str | None = None
    prometheus_insecure: bool = False
    prometheus_timeout: float = 10.0
    # Upper bound between two looks at a rollout; busy rollouts are looked at sooner.
    tick_seconds: float = 5.0
    namespaces: list[str] = field(default_factory=list)  # empty: cluster-wide
    metrics_port: int = 8080
    peering: str | None = None  # Kopf peering object; set when running more than one replica
    priority: int = 0
    field_manager: str = "modelratchet"
    # Leader election (client-go's defaults): a leader that cannot renew within renew_deadline stops acting,
    # and only lease_duration after the last renewal it saw may another replica take over.
    lease_duration_seconds: float = 15.0
    lease_renew_deadline_seconds: float = 10.0
    lease_retry_period_seconds: float = 2.0
    # Bound on every Kubernetes API request (connect + read), so one hung call cannot stall a worker or a renewal.
    kube_request_timeout: float = 10.0

    @classmethod
    def from_env(cls) -> OperatorSettings:
        env = os.environ.get
        token = env("MODELRATCHET_PROMETHEUS_TOKEN") or _read(env("MODELRATCHET_PROMETHEUS_TOKEN_FILE"))
        namespaces = [n for n in (env("MODELRATCHET_NAMESPACES") or "").split(",") if n.strip()]
        return cls(
            prometheus_url=env("MODELRATCHET_PROMETHEUS_URL") or cls.prometheus_url,
            prometheus_token=token,
            prometheus_ca_file=env("MODELRATCHET_PROMETHEUS_CA_FILE") or None,
            prometheus_insecure=(env("MODELRATCHET_PROMETHEUS_INSECURE") or "").lower() in ("1", "true", "yes"),
            prometheus_timeout=_float("MODELRATCHET_PROMETHEUS_TIMEOUT", 10.0),
            tick_seconds=_float("MODELRATCHET_TICK_SECONDS", 5.0),
            namespaces=[n.strip() for n in namespaces],
            metrics_port=int(env("MODELRATCHET_METRICS_PORT") or 8080),
            peering=env("MODELRATCHET_PEERING") or None,
            priority=int(env("MODELRATCHET_PRIORITY") or 0),
            lease_duration_seconds=_float("MODELRATCHET_LEASE_DURATION", 15.0),
            lease_renew_deadline_seconds=_float("MODELRATCHET_LEASE_RENEW_DEADLINE", 10.0),
            lease_retry_period_seconds=_float("MODELRATCHET_LEASE_RETRY_PERIOD", 2.0),
            kube_request_timeout=_float("MODELRATCHET_KUBE_REQUEST_TIMEOUT", 10.0),
        )
