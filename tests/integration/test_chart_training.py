"""The chart's opt-in RBAC for pausing training (rbac.trainingSuspend) and its MLflow settings: nothing is
granted on training workloads unless a kind is listed, exactly the listed resources are, the real API server's
RBAC agrees, and the schema refuses what would not work."""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.harness.cluster import LocalCluster
from tests.integration.test_chart import _docs, _one, _template

pytestmark = pytest.mark.integration

SUSPEND = [
    "--set",
    "rbac.trainingSuspend[0].apiGroup=batch",
    "--set",
    "rbac.trainingSuspend[0].resources={cronjobs,jobs}",
]


@pytest.fixture(scope="module")
def kube_version(local_cluster: LocalCluster) -> str:
    return str(json.loads(local_cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"])


def _operator_role(docs: list[dict[str, Any]], kind: str = "Role") -> dict[str, Any]:
    """The operator's Role (not the leader-election one), or its RoleBinding."""
    roles = [
        d for d in docs if d["kind"] == "Role" and any("modelrollouts" in r.get("resources", []) for r in d["rules"])
    ]
    assert len(roles) == 1, roles
    if kind == "Role":
        return roles[0]
    return next(
        d
        for d in docs
        if d["kind"] == kind
        and d["roleRef"]["name"] == roles[0]["metadata"]["name"]
        and d["metadata"]["namespace"] == roles[0]["metadata"]["namespace"]
    )


def _training_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    role = _operator_role(docs)
    return [r for r in role["rules"] if set(r.get("resources", [])) & {"cronjobs", "jobs", "pytorchjobs"}]


def test_no_training_kind_is_granted_by_default(local_cluster: LocalCluster, kube_version: str) -> None:
    docs = _docs(_template(local_cluster, kube_version).stdout)
    assert _training_rules(docs) == []
    env = {e["name"] for e in _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "MODELRATCHET_MLFLOW_TRACKING_URI" not in env and "MODELRATCHET_MLFLOW_TOKEN" not in env


def test_listed_kinds_get_and_patch_only(local_cluster: LocalCluster, kube_version: str, namespace: str) -> None:
    args = [*SUSPEND, "--set", f"watchNamespaces={{{namespace}}}"]
    text = _template(local_cluster, kube_version, *args).stdout
    docs = _docs(text)
    assert _training_rules(docs) == [
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": ["get", "patch"]}
    ]
    # The real API server's RBAC: the operator's ServiceAccount may patch CronJobs and Jobs, and nothing more on them.
    role = _operator_role(docs)
    binding = _operator_role(docs, "RoleBinding")
    sa = binding["subjects"][0]
    local_cluster.kubectl("create", "namespace", sa["namespace"], check=False)
    local_cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in (role, binding)))
    who = f"--as=system:serviceaccount:{sa['namespace']}:{sa['name']}"

    def can(verb: str, resource: str) -> bool:
        proc = local_cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, who, check=False)
        return proc.stdout.strip() == "yes"

    assert can("patch", "cronjobs.batch") and can("patch", "jobs.batch") and can("get", "cronjobs.batch")
    assert not can("delete", "cronjobs.batch") and not can("create", "jobs.batch")
    assert not can("patch", "pytorchjobs.kubeflow.org")


def test_mlflow_settings_reach_the_operator(local_cluster: LocalCluster, kube_version: str) -> None:
    args = [
        "--set",
        "mlflow.trackingURI=http://mlflow.ml:5000",
        "--set",
        "mlflow.token.secretName=mlflow",
        "--set",
        "mlflow.allowedAddresses={https://mlflow.other:443}",
    ]
    docs = _docs(_template(local_cluster, kube_version, *args).stdout)
    env = {e["name"]: e for e in _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELRATCHET_MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.ml:5000"
    assert env["MODELRATCHET_MLFLOW_ALLOWED_ADDRESSES"]["value"] == "https://mlflow.other:443"
    assert env["MODELRATCHET_MLFLOW_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow", "key": "token"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--set", "rbac.trainingSuspend[0].apiGroup=batch", "--set", "rbac.trainingSuspend[0].resources={CronJob}"],
            ["/rbac/trainingSuspend/0/resources/0", "does not match pattern"],
        ),
        (["--set", "rbac.trainingSuspend[0].resources={jobs}"], ["/rbac/trainingSuspend/0", "apiGroup"]),
        (["--set", "mlflow.trackingURI=mlflow:5000"], ["/mlflow/trackingURI", "does not match pattern"]),
    ],
)
def test_wrong_values_are_refused(
    local_cluster: LocalCluster, kube_version: str, args: list[str], words: list[str]
) -> None:
    proc = _template(local_cluster, kube_version, *args, check=False)
    assert proc.returncode != 0 and all(w in proc.stderr for w in words), proc.stderr
