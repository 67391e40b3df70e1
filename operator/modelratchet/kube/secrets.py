"""Secrets the operator reads: Prometheus credentials and webhook URLs."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.common import SecretKeySelector
from modelratchet.metrics.prometheus import PrometheusOverride, PrometheusSettings, merge
from modelratchet.settings import OperatorSettings

_CA_DIR = Path(tempfile.gettempdir()) / "modelratchet-ca"


class SecretError(ValueError):
    """A referenced Secret or key is missing."""


def read_secret_key(core: client.CoreV1Api, namespace: str, ref: SecretKeySelector) -> str:
    try:
        secret = core.read_namespaced_secret(ref.name, namespace)
    except ApiException as e:
        if e.status == 404:
            raise SecretError(f"Secret {ref.name!r} not found in namespace {namespace!r}") from e
        if e.status == 403:
            raise SecretError(
                f"the operator may not read Secret {ref.name!r} in namespace {namespace!r} (RBAC: get secrets)"
            ) from e
        raise
    data = (secret.data or {}).get(ref.key)
    if data is None:
        raise SecretError(f"Secret {ref.name!r} has no key {ref.key!r}")
    return base64.b64decode(data).decode().strip()


def _ca_file(pem: str) -> str:
    """requests wants a path; keep one file per distinct bundle."""
    _CA_DIR.mkdir(parents=True, exist_ok=True)
    path = _CA_DIR / (hashlib.sha256(pem.encode()).hexdigest()[:16] + ".pem")
    if not path.exists():
        path.write_text(pem)
    return str(path)


def prometheus_settings_for(
    core: client.CoreV1Api, settings: OperatorSettings, baseline: ModelBaselineSpec, namespace: str
) -> PrometheusSettings:
    """The operator's Prometheus connection, overridden field by field by the ModelBaseline's."""
    out = PrometheusSettings(
        address=settings.prometheus_url,
        bearer_token=settings.prometheus_token,
        ca_file=settings.prometheus_ca_file,
        insecure_skip_verify=settings.prometheus_insecure,
        timeout_seconds=settings.prometheus_timeout,
    )
    conn = baseline.prometheus
    if conn is None:
        return out
    token = read_secret_key(core, namespace, conn.bearer_token_secret_ref) if conn.bearer_token_secret_ref else None
    ca = _ca_file(read_secret_key(core, namespace, conn.ca_secret_ref)) if conn.ca_secret_ref else None
    # merge() never sends the operator's own token to an address a ModelBaseline chose.
    return merge(out, PrometheusOverride.from_connection(conn, bearer_token=token, ca_file=ca))
