"""The chart's optional in-cluster dashboard (ui.enabled): off by default, read-only with a least-privilege
ServiceAccount of its own, pods no operator selector matches, manifests valid against the cluster's schemas, and
its RBAC checked by the API server itself (kubectl auth can-i as that ServiceAccount)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart import KubeSchemas, _docs, _kubeconform, _one, _template, kube_schemas, kube_version  # noqa: F401

from e2e.harness.cluster import LocalCluster
from e2e.harness.dashboard import DashboardProcess

pytestmark = pytest.mark.integration

UI = ["--set", "ui.enabled=true"]


def _ui_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "ui"]


def test_the_dashboard_is_off_by_default(local_cluster: LocalCluster, kube_version: str) -> None:  # noqa: F811
    assert _ui_docs(_docs(_template(local_cluster, kube_version).stdout)) == []


def test_the_dashboard_renders_read_only_with_its_own_least_privilege_role(
    local_cluster: LocalCluster, kube_version: str, kube_schemas: KubeSchemas  # noqa: F811
) -> None:
    text = _template(local_cluster, kube_version, *UI).stdout
    proc = _kubeconform(local_cluster, kube_schemas, text)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = _docs(text)
    ui = _ui_docs(docs)
    assert sorted(d["kind"] for d in ui) == ["Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
    deploy = _one(ui, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["modelratchet", "dashboard"]
    assert "--read-only" in container["args"] and "--namespace=modelratchet-system" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["serviceAccountName"] == _one(ui, "ServiceAccount")["metadata"]["name"] != (
        _one(docs, "ServiceAccount", "mr-modelratchet")["metadata"]["name"]
    )
    role = _one(ui, "Role")
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}, "read-only"
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"modelrollouts", "modelbaselines", "events"}
    # No operator selector picks up the dashboard's pods, and the dashboard's Service picks only them.
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    operator = _one(docs, "Deployment", "mr-modelratchet")
    for selector in (operator["spec"]["selector"]["matchLabels"], _one(docs, "Service", "mr-modelratchet-metrics")
                     ["spec"]["selector"]):
        assert not selector.items() <= labels.items()
    assert _one(ui, "Service")["spec"]["selector"].items() <= labels.items()
    assert not operator["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_all_namespaces_uses_a_cluster_role(local_cluster: LocalCluster, kube_version: str) -> None:  # noqa: F811
    ui = _ui_docs(_docs(_template(local_cluster, kube_version, *UI, "--set", "ui.allNamespaces=true",
                                  "--set", "ui.allowedHosts={rollouts.example.com}").stdout))
    assert sorted(d["kind"] for d in ui) == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"
    ]
    args = _one(ui, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args and "--allowed-host=rollouts.example.com" in args


def test_wrong_ui_values_fail(local_cluster: LocalCluster, kube_version: str) -> None:  # noqa: F811
    proc = _template(local_cluster, kube_version, *UI, "--set", "ui.allowedHosts={evil.com/x}", check=False)
    assert proc.returncode != 0 and "allowedHosts" in proc.stderr
    proc = _template(local_cluster, kube_version, *UI, "--set", "ui.port=80", check=False)
    assert proc.returncode != 0 and "/ui/port" in proc.stderr


def test_the_api_server_grants_the_dashboard_reads_only(
    local_cluster: LocalCluster, kube_version: str, crds: Any, namespace: str  # noqa: F811
) -> None:
    text = _template(local_cluster, kube_version, *UI, "--namespace", namespace).stdout
    rbac = [d for d in _ui_docs(_docs(text)) if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", input="---\n".join(yaml.safe_dump(d) for d in rbac))
    who = f"--as=system:serviceaccount:{namespace}:mr-modelratchet-ui"

    def can(*args: str) -> bool:
        proc = local_cluster.kubectl("auth", "can-i", who, "-n", namespace, *args, check=False)
        return proc.stdout.strip() == "yes"

    assert can("list", "modelrollouts.modelratchet.io") and can("watch", "modelrollouts.modelratchet.io")
    assert can("get", "modelbaselines.modelratchet.io") and can("list", "events")
    assert not can("patch", "modelrollouts.modelratchet.io", "--subresource=status")
    assert not can("get", "secrets") and not can("patch", "deployments.apps")
    assert not can("list", "modelrollouts.modelratchet.io", "-n", "default")


def test_the_dashboard_serves_with_only_the_charts_rights(
    local_cluster: LocalCluster, kube_version: str, kube_api: Any, crds: Any, namespace: str, tmp_path: Path  # noqa: F811
) -> None:
    """The real dashboard process, authenticated as the chart's ServiceAccount with nothing but its Role: the
    overview, the rollout page (baseline and Events included) and the live stream all work read-only."""
    from kubernetes import client
    from test_cli_cluster import NAME, Rollouts, analyzing

    text = _template(local_cluster, kube_version, *UI, "--namespace", namespace).stdout
    rbac = [d for d in _ui_docs(_docs(text)) if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", input="---\n".join(yaml.safe_dump(d) for d in rbac))
    rollouts = Rollouts(kube_api, namespace)
    rollouts.create(analyzing())
    rollouts.event("RolloutStarted", "rolling out the candidate")
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace,
                                                                      "modelbaselines", {
        "apiVersion": "modelratchet.io/v1alpha1", "kind": "ModelBaseline", "metadata": {"name": "fraud-detector"},
        "spec": {"model": "fraud", "metrics": [{"name": "accuracy", "threshold": {"type": "min", "value": 0.9},
                                                "query": "accuracy"}]}})
    token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        "mr-modelratchet-ui", namespace, {"spec": {"audiences": [], "expirationSeconds": 600}}).status.token
    config = yaml.safe_load(Path(local_cluster.kubeconfig).read_text())
    config["users"] = [{"name": "ui", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "ui"
    kubeconfig = tmp_path / "kubeconfig-ui"
    kubeconfig.write_text(json.dumps(config))
    dash = DashboardProcess(kubeconfig, "--read-only", "-n", namespace, log_dir=tmp_path)
    try:
        overview = urllib.request.urlopen(dash.url + "/", timeout=30).read().decode()
        assert f'data-key="{namespace}/{NAME}"' in overview and 'class="error"' not in overview
        page = urllib.request.urlopen(f"{dash.url}/rollouts/{namespace}/{NAME}", timeout=30).read().decode()
        assert page.count('<svg class="chart"') == 2 and 'class="chart ci"' in page  # two metrics, one judged
        assert "model: fraud" in page, "the baseline is readable"
        assert "RolloutStarted" in page and "Events could not be read" not in page
        assert "<form" not in page, "read-only"
        with urllib.request.urlopen(f"{dash.url}/events?namespace={namespace}", timeout=30) as stream:
            line = next(raw for raw in stream if raw.startswith(b"data: "))
        assert json.loads(line[6:])["row"]["key"] == f"{namespace}/{NAME}"
    finally:
        dash.stop()
