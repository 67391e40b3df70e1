"""Secrets the operator reads (Prometheus credentials and webhook URLs), and the Prometheus connection a
ModelBaseline may ask for."""

from __future__ import annotations

import base64
import binascii
import ssl
from typing import ClassVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.common import SecretKeySelector
from modelratchet.metrics.addresses import AddressAllowlist, parse_address
from modelratchet.metrics.prometheus import PrometheusOverride, PrometheusSettings, merge
from modelratchet.settings import OperatorSettings


class SecretError(ValueError):
    """A referenced Secret or key is missing or unusable, or the connection it is for is not allowed.

    ``reason`` is the condition reason to report (the message says the rest).
    """

    reason: ClassVar[str] = "SecretNotFound"


class SecretInvalid(SecretError):
    """The Secret exists but its value cannot be used (not UTF-8 text, not a PEM bundle)."""

    reason: ClassVar[str] = "SecretInvalid"


class AddressNotAllowed(SecretError):
    """A ModelBaseline names a Prometheus address outside the operator's allowlist (or a malformed one)."""

    reason: ClassVar[str] = "AddressNotAllowed"


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
    try:
        return base64.b64decode(data, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError) as e:
        # Never the value itself in the message: it is a credential.
        raise SecretInvalid(f"Secret {ref.name!r} key {ref.key!r} is not UTF-8 text") from e


def _ca_bundle(pem: str, ref: SecretKeySelector) -> str:
    """The PEM text, checked now so a bad bundle is a clear error rather than a failed query per analysis."""
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as e:
        raise SecretInvalid(f"Secret {ref.name!r} key {ref.key!r} is not a PEM CA bundle: {e}") from e
    return pem


def allowed_addresses(settings: OperatorSettings) -> AddressAllowlist:
    """The operator's allowlist; its own default address is always on it."""
    allowlist = AddressAllowlist.parse(settings.prometheus_allowed_addresses)
    try:
        default = parse_address(settings.prometheus_url.rstrip("/"))
    except ValueError:
        return allowlist  # an operator-configured URL the parser refuses is still used, just not as a prefix
    return AddressAllowlist((default, *allowlist.entries), (settings.prometheus_url, *allowlist.shown))


def prometheus_settings_for(
    core: client.CoreV1Api, settings: OperatorSettings, baseline: ModelBaselineSpec, namespace: str
) -> PrometheusSettings:
    """The operator's Prometheus connection, overridden field by field by the ModelBaseline's.

    Raises SecretError (AddressNotAllowed, SecretInvalid) for anything the baseline asks that cannot be
    used; the address is checked before any Secret is read.
    """
    out = PrometheusSettings(
        address=settings.prometheus_url,
        bearer_token=settings.prometheus_token,
        ca_file=settings.prometheus_ca_file,
        insecure_skip_verify=settings.prometheus_insecure,
        timeout_seconds=settings.prometheus_timeout,
        max_response_bytes=settings.prometheus_max_response_bytes,
    )
    conn = baseline.prometheus
    if conn is None:
        return out
    if conn.address is not None and conn.address.rstrip("/") != settings.prometheus_url.rstrip("/"):
        problem = allowed_addresses(settings).problem(conn.address.rstrip("/"))
        if problem is not None:
            raise AddressNotAllowed(f"spec.prometheus.address: {problem}")
    token = read_secret_key(core, namespace, conn.bearer_token_secret_ref) if conn.bearer_token_secret_ref else None
    ca = (
        _ca_bundle(read_secret_key(core, namespace, conn.ca_secret_ref), conn.ca_secret_ref)
        if conn.ca_secret_ref
        else None
    )
    # merge() never sends the operator's own token over a connection the ModelBaseline changed.
    return merge(out, PrometheusOverride.from_connection(conn, bearer_token=token, ca_pem=ca))
