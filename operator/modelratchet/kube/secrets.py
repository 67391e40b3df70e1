"""Secrets the operator reads: Prometheus credentials and webhook URLs."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.common import SecretKeySelector, parse_duration
from modelratchet.metrics.prometheus import PrometheusSettings
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
    override = baseline.prometheus
    if override is None:
        return out
    if override.address:
        out.address = override.address
    if override.bearer_token_secret_ref:
        out.bearer_token = read_secret_key(core, namespace, override.bearer_token_secret_ref)
    if override.ca_secret_ref:
        out.ca_file = _ca_file(read_secret_key(core, namespace, override.ca_secret_ref))
    if override.insecure_skip_verify is not None:
        out.insecure_skip_verify = override.insecure_skip_verify
    if override.timeout:
        out.timeout_seconds = parse_duration(override.timeout)
    return out
