"""The chart's outbound-call settings: allowlists become the operator's environment, the optional egress
NetworkPolicy renders as documented and the API server accepts it, and bad values fail the install."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from e2e.harness.cluster import LocalCluster
from e2e.harness.components import COMPONENTS, REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHART = REPO_ROOT / "charts" / "modelratchet"
API_SERVER = ["--set", "networkPolicy.enabled=true", "--set-json", 'networkPolicy.apiServer.cidrs=["10.0.0.1/32"]']


def _template(cluster: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # A fixed Kubernetes version: helm's default is older than the chart's kubeVersion.
    version = ["--kube-version", COMPONENTS["kubernetes"].version]
    cmd = [
        str(cluster.bin("helm")),
        "template",
        "mr",
        str(CHART),
        "--namespace",
        "modelratchet-system",
        *version,
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm template failed:\n{proc.stderr}")
    return proc


def _docs(cluster: LocalCluster, *args: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_template(cluster, *args).stdout) if d]


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    return {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_defaults_render_no_network_policy_and_public_only_webhooks(local_cluster: LocalCluster) -> None:
    docs = _docs(local_cluster)
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]
    env = _env(docs)
    assert env["MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES"] == "4194304"  # not 4.194304e+06
    assert env["MODELRATCHET_WEBHOOK_ALLOW_PRIVATE"] == "false"
    assert "MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES" not in env and "MODELRATCHET_WEBHOOK_ALLOWED_CIDRS" not in env


def test_allowlists_become_the_operators_environment(local_cluster: LocalCluster) -> None:
    env = _env(
        _docs(
            local_cluster,
            "--set-json",
            'prometheus.allowedAddresses=["http://prom.team-a:9090","https://thanos.monitoring/select/team-a"]',
            "--set-json",
            'notifications.allowedCIDRs=["10.0.0.0/8","fd00::/8"]',
            "--set",
            "notifications.allowPrivateAddresses=true",
            "--set",
            "prometheus.maxResponseBytes=1048576",
        )
    )
    assert env["MODELRATCHET_PROMETHEUS_ALLOWED_ADDRESSES"] == (
        "http://prom.team-a:9090,https://thanos.monitoring/select/team-a"
    )
    assert env["MODELRATCHET_WEBHOOK_ALLOWED_CIDRS"] == "10.0.0.0/8,fd00::/8"
    assert env["MODELRATCHET_WEBHOOK_ALLOW_PRIVATE"] == "true"
    assert env["MODELRATCHET_PROMETHEUS_MAX_RESPONSE_BYTES"] == "1048576"


def test_the_egress_policy_allows_dns_the_api_server_and_prometheus_only(
    local_cluster: LocalCluster, namespace: str
) -> None:
    extra = (
        '[{"to":[{"ipBlock":{"cidr":"0.0.0.0/0","except":["10.0.0.0/8"]}}],"ports":[{"protocol":"TCP","port":443}]}]'
    )
    docs = _docs(local_cluster, *API_SERVER, "--set-json", f"networkPolicy.extraEgress={extra}")
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Egress"]  # ingress (scrapes, probes) is left alone
    dns, api, prometheus, webhooks = spec["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert api == {
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
    }
    assert prometheus["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert prometheus["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert webhooks == json.loads(extra)[0]
    # The API server takes it as it is, unknown fields being errors.
    policy["metadata"]["namespace"] = namespace
    local_cluster.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(policy))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "networkPolicy.enabled=true"], "networkPolicy.enabled needs networkPolicy.apiServer.cidrs"),
        (["--set-json", 'prometheus.allowedAddresses=["http://u:p@prom:9090"]'], "at '/prometheus/allowedAddresses/0'"),
        (
            ["--set-json", 'prometheus.allowedAddresses=["http://prom:9090/?x=1"]'],
            "at '/prometheus/allowedAddresses/0'",
        ),
        (["--set-json", 'notifications.allowedCIDRs=["intranet"]'], "at '/notifications/allowedCIDRs/0'"),
        (["--set", "notifications.allowPrivate=true"], "additional properties 'allowPrivate' not allowed"),
        ([*API_SERVER, "--set-json", "networkPolicy.prometheus.to=[]"], "at '/networkPolicy/prometheus/to'"),
        ([*API_SERVER, "--set-json", 'networkPolicy.dns.to=[{"ipBlok":{}}]'], "additional properties 'ipBlok'"),
    ],
    ids=["policy-without-api-server", "userinfo", "query", "not-a-cidr", "typo", "empty-peers", "peer-typo"],
)
def test_wrong_values_fail_with_a_clear_message(local_cluster: LocalCluster, args: list[str], message: str) -> None:
    proc = _template(local_cluster, *args, check=False)
    assert proc.returncode != 0, proc.stdout[:500]
    assert message in proc.stderr, proc.stderr
