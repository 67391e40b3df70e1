"""Operator settings, read from the environment (the Helm chart sets them)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from modelratchet.metrics.addresses import AddressAllowlist

DEFAULT_PROMETHEUS_MAX_RESPONSE_BYTES = 4 * 1024 * 1024


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _read(path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else None


def _flag(name: str) -> bool:
    return (os.environ.get(name) or "").lower() in ("1", "true", "yes")


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in (os.environ.get(name) or "").split(",") if v.strip())


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a positive whole number of bytes")
    return value


def _cidrs(name: str) -> tuple[str, ...]:
    values = _list(name)
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError as e:
            raise ValueError(f"{name}: {v!r} is not a CIDR such as 10.0.0.0/8 or fd00::/8 ({e})") from e
    return values


@dataclass(frozen=True)
class OperatorSettings:
    prometheus_url: str = "http://prometheus-operated.monitoring:9090"
    prometheus_token: str | None = None
    prometheus_ca_file: str | None = None
    prometheus_insecure: bool = False
    prometheus_timeout: float = 10.0
    # Addresses a ModelBaseline may name besides prometheus_url (URL prefixes or scheme://host:port origins).
    prometheus_allowed_addresses: tuple[str, ...] = ()
    prometheus_max_response_bytes: int = DEFAULT_PROMETHEUS_MAX_RESPONSE_BYTES
    # The MLflow tracking server a ModelRollout's spec.source reads (and writes verdicts to), and the others a
    # ModelRollout may name (trackingURI); the token is sent only to the default one.
    mlflow_tracking_uri: str | None = None
    mlflow_token: str | None = None
    mlflow_allowed_addresses: tuple[str, ...] = ()
    mlflow_timeout: float = 5.0
    # Webhook receivers must have public addresses unless these allow more (CIDRs, or every private range).
    webhook_allowed_cidrs: tuple[str, ...] = ()
    webhook_allow_private: bool = False
    # Upper bound between two looks at a rollout, a safety net: a rollout asks for its next look (an analysis
    # falling due, a pod it waits for) and every object it reads is watched, so a change pokes it at once. At
    # 5 s, 1,000 rollouts took 200 looks a second and the analyses fell behind (docs/benchmarks.md).
    tick_seconds: float = 30.0
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
        """The settings from MODELRATCHET_* variables; ValueError naming the variable when one is malformed."""
        env = os.environ.get
        token = env("MODELRATCHET_PROMETHEUS_TOKEN") or _read(env("MODELRATCHET_PROMETHEUS_TOKEN_FILE"))
        namespaces = [n for n in (env("MODELRATCHET_NAMESPACES") or "").split(",") if n.strip()]
        allowed = _list("MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES")
        try:
            AddressAllowlist.parse(allowed)
        except ValueError as e:
            raise ValueError(f"MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES: {e}") from e
        mlflow_allowed = _list("MODELRATCHET_MLFLOW_ALLOWED_ADDRESSES")
        try:
            AddressAllowlist.parse(mlflow_allowed)
        except ValueError as e:
            raise ValueError(f"MODELRATCHET_MLFLOW_ALLOWED_ADDRESSES: {e}") from e
        return cls(
            mlflow_tracking_uri=(env("MODELRATCHET_MLFLOW_TRACKING_URI") or "").rstrip("/") or None,
            mlflow_token=env("MODELRATCHET_MLFLOW_TOKEN") or _read(env("MODELRATCHET_MLFLOW_TOKEN_FILE")),
            mlflow_allowed_addresses=mlflow_allowed,
            mlflow_timeout=_float("MODELRATCHET_MLFLOW_TIMEOUT", 5.0),
            prometheus_url=env("MODELRATCHET_PROMETHEUS_URL") or cls.prometheus_url,
            prometheus_token=token,
            prometheus_ca_file=env("MODELRATCHET_PROMETHEUS_CA_FILE") or None,
            prometheus_insecure=_flag("MODELRATCHET_PROMETHEUS_INSECURE"),
            prometheus_timeout=_float("MODELRATCHET_PROMETHEUS_TIMEOUT", 10.0),
            prometheus_allowed_addresses=allowed,
            prometheus_max_response_bytes=_positive_int(
                "MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES", DEFAULT_PROMETHEUS_MAX_RESPONSE_BYTES
            ),
            webhook_allowed_cidrs=_cidrs("MODELRATCHET_WEBHOOK_ALLOWED_CIDRS"),
            webhook_allow_private=_flag("MODELRATCHET_WEBHOOK_ALLOW_PRIVATE"),
            tick_seconds=_float("MODELRATCHET_TICK_SECONDS", 30.0),
            namespaces=[n.strip() for n in namespaces],
            metrics_port=int(env("MODELRATCHET_METRICS_PORT") or 8080),
            peering=env("MODELRATCHET_PEERING") or None,
            priority=int(env("MODELRATCHET_PRIORITY") or 0),
            lease_duration_seconds=_float("MODELRATCHET_LEASE_DURATION", 15.0),
            lease_renew_deadline_seconds=_float("MODELRATCHET_LEASE_RENEW_DEADLINE", 10.0),
            lease_retry_period_seconds=_float("MODELRATCHET_LEASE_RETRY_PERIOD", 2.0),
            kube_request_timeout=_float("MODELRATCHET_KUBE_REQUEST_TIMEOUT", 10.0),
        )
