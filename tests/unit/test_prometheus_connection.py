"""The Prometheus connection a ModelBaseline may ask for: allowed addresses only, no operator token over a
connection it changed, CA bundles in memory, unusable Secrets as clear errors."""

from __future__ import annotations

import base64
import re
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.api.baseline import BaselinePrometheusConnection, ModelBaselineSpec
from modelratchet.kube.secrets import (
    AddressNotAllowed,
    SecretError,
    SecretInvalid,
    prometheus_settings_for,
    read_secret_key,
)
from modelratchet.metrics.addresses import AddressAllowlist, parse_address
from modelratchet.metrics.prometheus import PrometheusOverride, PrometheusQuerier, PrometheusSettings, merge
from modelratchet.settings import OperatorSettings
from wire_peers import answer, serving, vector

from e2e.harness import pki

pytestmark = pytest.mark.timeout(60)

DEFAULT = "http://prometheus-operated.monitoring:9090"
OPERATOR = OperatorSettings(prometheus_url=DEFAULT, prometheus_token="operator-token")


class FakeCore:
    """CoreV1Api.read_namespaced_secret over a dict of Secrets: {(namespace, name): {key: raw bytes}}; counts reads."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, bytes]] | None = None) -> None:
        self.secrets = secrets or {}
        self.reads: list[str] = []

    def read_namespaced_secret(self, name: str, namespace: str) -> client.V1Secret:
        self.reads.append(name)
        data = self.secrets.get((namespace, name))
        if data is None:
            raise ApiException(status=404, reason="Not Found")
        return client.V1Secret(data={k: base64.b64encode(v).decode() for k, v in data.items()})


def baseline(**prometheus: Any) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate(
        {
            "model": "m",
            "prometheus": prometheus,
            "metrics": [{"name": "a", "threshold": {"type": "max", "value": 1}, "query": "max(x)"}],
        }
    )


def settings_for(core: Any, spec: ModelBaselineSpec, operator: OperatorSettings = OPERATOR) -> PrometheusSettings:
    return prometheus_settings_for(core, operator, spec, "ml-prod")


TOKEN_REF = {"bearerTokenSecretRef": {"name": "tok", "key": "token"}}
CA_REF = {"caSecretRef": {"name": "ca", "key": "ca.crt"}}


# ---------------------------------------------------------------------------------------------- allowlist


def test_an_address_outside_the_allowlist_is_refused_before_any_secret_is_read() -> None:
    core = FakeCore({("ml-prod", "tok"): {"token": b"team-token"}})
    with pytest.raises(AddressNotAllowed) as caught:
        settings_for(core, baseline(address="http://evil.example:9090", **TOKEN_REF))
    assert core.reads == []  # the Secret never left the cluster, and was not even read
    message = str(caught.value)
    assert message.startswith("spec.prometheus.address: 'http://evil.example:9090' is not an allowed Prometheus")
    assert f"allowed: {DEFAULT}" in message and "MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES" in message
    # The reconciler reports SecretError as a condition; this one says what it is about.
    assert isinstance(caught.value, SecretError) and caught.value.reason == "AddressNotAllowed"


@pytest.mark.parametrize(
    "address",
    [
        "http://prom.team-a:9090",
        "http://prom.team-a:9090/",
        "https://thanos.monitoring/select/team-a",
        "https://thanos.monitoring:443/select/team-a/api-prefix",
        DEFAULT + "/sub/path",  # the operator's own default is always allowed, at any path
    ],
)
def test_allowed_addresses(address: str) -> None:
    operator = OperatorSettings(
        prometheus_url=DEFAULT,
        prometheus_allowed_addresses=("http://prom.team-a:9090", "https://thanos.monitoring/select/team-a"),
    )
    assert settings_for(FakeCore(), baseline(address=address), operator).address == address


@pytest.mark.parametrize(
    "address",
    [
        "http://prom.team-a:9091",  # another port
        "https://prom.team-a:9090",  # another scheme
        "http://prom.team-a.evil.example:9090",  # a string prefix, not the same host
        "http://prom.team-a:9090.evil.example",
        "https://thanos.monitoring/select/team-ab",  # a path prefix only at segment boundaries
        "https://thanos.monitoring/select",
        "https://thanos.monitoring/select/team-a/../team-b",
        "https://thanos.monitoring/select/team-a/%2e%2e/team-b",
        "http://prom.team-a:9090@evil.example",
        "http://x@prom.team-a:9090",
        "http://prom.team-a:9090/?evil=1",
        "http://prom.team-a:9090/#frag",
    ],
)
def test_refused_addresses(address: str) -> None:
    operator = OperatorSettings(
        prometheus_url=DEFAULT,
        prometheus_allowed_addresses=("http://prom.team-a:9090", "https://thanos.monitoring/select/team-a"),
    )
    # As stored before the CRD checked the address: built without validation.
    conn = BaselinePrometheusConnection.model_construct(address=address)
    spec = ModelBaselineSpec.model_construct(model="m", prometheus=conn, metrics=[])
    with pytest.raises(AddressNotAllowed):
        settings_for(FakeCore(), spec, operator)


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("http://prom:9090", True),
        ("https://[::1]:9090/prefix", True),
        ("http://user:pw@prom:9090", False),
        ("http://prom:9090?x=1", False),
        ("http://prom:9090/#x", False),
        ("http://prom:9090/a b", False),
        ("ftp://prom:9090", False),
        ("http://", False),
    ],
)
def test_the_crd_pattern_refuses_userinfo_query_and_fragment(address: str, ok: bool) -> None:
    import pydantic

    if ok:
        assert baseline(address=address).prometheus is not None
    else:
        with pytest.raises(pydantic.ValidationError):
            baseline(address=address)


def test_allowlist_entries_are_checked_when_the_operator_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES", "http://ok:9090, http://u:p@bad:9090")
    with pytest.raises(ValueError, match="MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES: 'http://bad:9090'") as caught:
        OperatorSettings.from_env()
    assert "u:p" not in str(caught.value)
    monkeypatch.setenv("MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES", "http://a:9090,https://b/prefix/")
    monkeypatch.setenv("MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES", "1048576")
    settings = OperatorSettings.from_env()
    assert settings.prometheus_allowed_addresses == ("http://a:9090", "https://b/prefix/")
    assert settings.prometheus_max_response_bytes == 1048576
    monkeypatch.setenv("MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES", "0")
    with pytest.raises(ValueError, match="MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES='0'"):
        OperatorSettings.from_env()


def test_origin_matching() -> None:
    allow = AddressAllowlist.parse(["http://Prom.Example:80/api/"])
    assert allow.problem("http://prom.example/api/v1") is None  # default port, case of the host
    assert allow.problem("http://prom.example/apiv1") is not None
    assert parse_address("https://[::1]/x").port == 443


# ------------------------------------------------------------------------------------------ the token


@pytest.mark.parametrize(
    ("override", "token"),
    [
        (PrometheusOverride(), "operator"),
        (PrometheusOverride(timeout_seconds=3), "operator"),  # not a connection setting
        (PrometheusOverride(address="http://127.0.0.1:9/"), "operator"),  # the same address
        (PrometheusOverride(insecure_skip_verify=False), "operator"),  # the same as the operator's
        (PrometheusOverride(address="http://elsewhere:9090"), None),
        (PrometheusOverride(insecure_skip_verify=True), None),  # a man in the middle could read it
        (PrometheusOverride(ca_pem="PEM"), None),  # so could whoever holds that CA's key
        (PrometheusOverride(ca_pem="PEM", bearer_token="own"), "own"),
        (PrometheusOverride(insecure_skip_verify=True, bearer_token="own"), "own"),
        (PrometheusOverride(bearer_token="own"), "own"),
    ],
)
def test_the_operator_token_goes_only_over_the_operators_own_connection(
    override: PrometheusOverride, token: str | None
) -> None:
    default = PrometheusSettings(address="http://127.0.0.1:9", bearer_token="operator", ca_file="/etc/ca.pem")
    assert merge(default, override).bearer_token == token


def test_a_baseline_ca_replaces_the_operators_trust_roots() -> None:
    default = PrometheusSettings(address="https://p:9", ca_file="/etc/ca.pem")
    merged = merge(default, PrometheusOverride(ca_pem="PEM"))
    assert (merged.ca_file, merged.ca_pem) == (None, "PEM")
    assert merge(default, PrometheusOverride(timeout_seconds=1)).ca_file == "/etc/ca.pem"


def test_overriding_only_verification_drops_the_operator_token_end_to_end() -> None:
    spec = baseline(insecureSkipVerify=True)
    assert settings_for(FakeCore(), spec).bearer_token is None
    spec = baseline(insecureSkipVerify=True, **TOKEN_REF)
    assert settings_for(FakeCore({("ml-prod", "tok"): {"token": b"team\n"}}), spec).bearer_token == "team"


# --------------------------------------------------------------------------------------------- secrets


def test_a_secret_that_is_not_utf8_is_a_clear_error() -> None:
    core = FakeCore({("ml-prod", "tok"): {"token": b"\xff\xfe\x00binary"}})
    with pytest.raises(SecretInvalid, match="Secret 'tok' key 'token' is not UTF-8 text") as caught:
        settings_for(core, baseline(**TOKEN_REF))
    assert caught.value.reason == "SecretInvalid" and isinstance(caught.value, SecretError)
    with pytest.raises(SecretInvalid):
        read_secret_key(core, "ml-prod", baseline(**TOKEN_REF).prometheus.bearer_token_secret_ref)  # type: ignore[arg-type, union-attr]


def test_a_ca_secret_that_is_not_pem_is_a_clear_error() -> None:
    core = FakeCore({("ml-prod", "ca"): {"ca.crt": b"not a certificate"}})
    with pytest.raises(SecretInvalid, match=re.escape("Secret 'ca' key 'ca.crt' is not a PEM CA bundle")):
        settings_for(core, baseline(**CA_REF))


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[pki.KeyPair, pki.KeyPair]:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.ca(directory, "prom-ca")
    return ca, pki.leaf(directory, "prom", ca, common_name="prom", server=True, ips=("127.0.0.1",))


def test_a_ca_bundle_stays_in_memory_and_verifies_the_server(tls_pair: tuple[pki.KeyPair, pki.KeyPair]) -> None:
    ca, leaf = tls_pair
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert, leaf.key)
    ca_dir = Path(tempfile.gettempdir()) / "modelratchet-ca"  # where bundles used to be written, one per CA
    files_before = set(ca_dir.glob("*"))
    with serving(answer(200, vector("3")), tls=context) as peer:
        address = peer.url(scheme="https")
        operator = OperatorSettings(prometheus_url=DEFAULT, prometheus_allowed_addresses=(address,))
        core = FakeCore({("ml-prod", "ca"): {"ca.crt": ca.cert.read_bytes()}})
        settings = settings_for(core, baseline(address=address, **CA_REF), operator)
        assert settings.ca_file is None and settings.ca_pem == ca.cert.read_text().strip()
        assert PrometheusQuerier(settings).instant("vector(1)").value == 3.0
        # Without the baseline's CA the same server is not trusted.
        untrusted = PrometheusQuerier(PrometheusSettings(address=address)).instant("vector(1)")
    assert set(ca_dir.glob("*")) == files_before
    assert untrusted.problem is not None and untrusted.problem.kind == "unreachable"
    assert "TLS error" in untrusted.problem.message
