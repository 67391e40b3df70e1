"""The admission policies in crds/, enforced by the real API server.

A user who may create or patch a ModelRollout gains no power their own RBAC lacks: they cannot write the
operator's state into status, cannot record a gate under another name, cannot point a rollout at a
Deployment they could not edit, and cannot make the operator read a Secret they could not read.
Users here are ServiceAccounts with bound tokens, so the API server authenticates them for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness.cluster import LocalCluster
from e2e.harness.wait import wait_for

pytestmark = pytest.mark.integration

GROUP = "modelratchet.io"


def _rollout(name: str = "r", target: str = "serving", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"name": target},
            "checkpoint": "s3://m/v2",
            "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
            "baselineRef": {"name": "b"},
            "steps": [{"setWeight": 10}, {"pause": {}}],
            **spec,
        },
    }


def _baseline(name: str = "b", **prometheus: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "m",
        "metrics": [{"name": "accuracy", "threshold": {"type": "min", "value": 0.9}, "query": "vector(1)"}],
    }
    if prometheus:
        spec["prometheus"] = prometheus
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModelBaseline", "metadata": {"name": name}, "spec": spec}


class User:
    """A ServiceAccount with a Role of exactly the given rules, and kubectl as that account."""

    def __init__(self, cluster: LocalCluster, namespace: str, name: str, rules: list[dict[str, Any]], tmp: Path):
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.username = f"system:serviceaccount:{namespace}:{name}"
        docs = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        ]
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
        token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
        admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
        self.kubeconfig = tmp / f"{name}.kubeconfig"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
                    "users": [{"name": name, "user": {"token": token}}],
                    "contexts": [
                        {"name": name, "context": {"cluster": "local", "user": name, "namespace": namespace}}
                    ],
                    "current-context": name,
                }
            )
        )

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.cluster.bin("kubectl")), f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args]
        return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=60)

    def create(self, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl("create", "-f", "-", input=json.dumps(obj))

    def patch_status(self, name: str, status: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "patch", "modelrollout", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
        )


def _admin_create(cluster: LocalCluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))


def _admin_status(cluster: LocalCluster, namespace: str, name: str, status: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", "modelrollout", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )


def _status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    obj = json.loads(cluster.kubectl("get", "modelrollout", name, "-n", namespace, "-o", "json").stdout)
    return dict(obj.get("status") or {})


def _denied(proc: subprocess.CompletedProcess[str], *words: str) -> bool:
    return proc.returncode != 0 and all(w in proc.stderr for w in words)


GATE_WRITER = [
    {"apiGroups": [GROUP], "resources": ["modelrollouts"], "verbs": ["get"]},
    {"apiGroups": [GROUP], "resources": ["modelrollouts/status"], "verbs": ["get", "patch"]},
]


@pytest.fixture
def rollout(local_cluster: LocalCluster, crds: Any, namespace: str) -> str:
    """A rollout whose status the operator (here: the admin, who holds every verb) has written."""
    _admin_create(local_cluster, namespace, _rollout())
    _admin_status(
        local_cluster, namespace, "r",
        {"phase": "Paused", "stableCheckpoint": "s3://m/v1", "lastGoodCheckpoints": ["s3://m/v1"],
         "canaryCheckpoint": "s3://m/v2", "currentStep": 1},
    )
    return "r"


def test_only_the_operator_writes_status_others_only_their_own_gate(
    local_cluster: LocalCluster, namespace: str, rollout: str, tmp_path: Path
) -> None:
    alice = User(local_cluster, namespace, "alice", GATE_WRITER, tmp_path)
    # Policies take effect a moment after they are created: wait until the forged write is refused.
    forged = {"stableCheckpoint": "evil:1"}
    wait_for(
        lambda: _denied(alice.patch_status(rollout, forged), "only the operator may change status fields"),
        timeout=30, message="the status policy refuses a forged stableCheckpoint",
    )
    for field, value in [
        ("lastGoodCheckpoints", ["evil:1"]),
        ("previousCheckpoint", "evil:1"),
        ("phase", "Promoted"),
        ("history", [{"id": 1, "time": "2026-01-01T00:00:00Z", "checkpoint": "evil:1", "verdict": "passed"}]),
    ]:
        proc = alice.patch_status(rollout, {field: value})
        assert _denied(proc, "only the operator may change status fields"), (field, proc.stderr)
    assert _status(local_cluster, namespace, rollout)["stableCheckpoint"] == "s3://m/v1"

    # A gate under someone else's name is refused; under her own it is accepted.
    gate = {"action": "promote", "checkpoint": "s3://m/v2", "requestedAt": "2026-11-29T10:00:00Z"}
    proc = alice.patch_status(rollout, {"gate": {**gate, "requestedBy": "bob"}})
    assert _denied(proc, "requestedBy must be the requesting user", alice.username), proc.stderr
    proc = alice.patch_status(rollout, {"gate": {**gate}})
    assert _denied(proc, "requestedBy must be the requesting user"), proc.stderr
    proc = alice.patch_status(rollout, {"gate": {**gate, "requestedBy": alice.username}})
    assert proc.returncode == 0, proc.stderr
    assert _status(local_cluster, namespace, rollout)["gate"]["requestedBy"] == alice.username

    # Holding `record` on the status is what makes a writer the operator.
    operator = User(
        local_cluster, namespace, "operator",
        [{"apiGroups": [GROUP], "resources": ["modelrollouts/status"], "verbs": ["get", "patch", "record"]}],
        tmp_path,
    )
    proc = operator.patch_status(rollout, {"message": "written by the operator", "gate": None})
    assert proc.returncode == 0, proc.stderr
    assert _status(local_cluster, namespace, rollout)["message"] == "written by the operator"


def test_the_cli_records_the_gate_under_the_identity_the_api_server_knows(
    local_cluster: LocalCluster, namespace: str, rollout: str, tmp_path: Path
) -> None:
    alice = User(local_cluster, namespace, "alice", GATE_WRITER, tmp_path)
    # The kubeconfig's user entry is called "alice"; the API server knows her as a ServiceAccount.
    proc = subprocess.run(
        [sys.executable, "-m", "modelratchet.cli.main", "promote", rollout, "--kubeconfig", str(alice.kubeconfig),
         "-n", namespace, "--reason", "looks good"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _status(local_cluster, namespace, rollout)["gate"]["requestedBy"] == alice.username


def test_a_rollout_asks_for_nothing_its_author_could_not_do(
    local_cluster: LocalCluster, crds: Any, namespace: str, tmp_path: Path
) -> None:
    rollouts = {"apiGroups": [GROUP], "resources": ["modelrollouts"], "verbs": ["create", "get", "patch"]}
    bob = User(local_cluster, namespace, "bob", [rollouts], tmp_path)
    wait_for(
        lambda: _denied(bob.create(_rollout("r1")), "may not patch Deployment", "serving"),
        timeout=30, message="the rollout policy refuses a target its author may not patch",
    )
    # Patching the named Deployment is not enough: the canary is a Deployment of its own.
    patch_one = {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["serving"],
                 "verbs": ["patch"]}
    carol = User(local_cluster, namespace, "carol", [rollouts, patch_one], tmp_path)
    proc = carol.create(_rollout("r2"))
    assert _denied(proc, "may not create Deployments"), proc.stderr
    assert carol.create(_rollout("r2", target="other")).returncode != 0
    create = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}
    dave = User(local_cluster, namespace, "dave", [rollouts, patch_one, create], tmp_path)
    proc = dave.create(_rollout("r3"))
    assert proc.returncode == 0, proc.stderr
    # Re-pointing it at a Deployment he may not patch is refused too.
    proc = dave.kubectl("patch", "modelrollout", "r3", "--type=merge", "-p",
                        json.dumps({"spec": {"targetRef": {"name": "payments"}}}))
    assert _denied(proc, "may not patch Deployment", "payments"), proc.stderr
    # A router is driven for the author too: only a route they may patch.
    routed = {"gatewayAPI": {"httpRoute": "digits", "stableService": "digits-stable"}}
    proc = dave.create(_rollout("r5", trafficRouting=routed))
    assert _denied(proc, "spec.trafficRouting.gatewayAPI", "may not patch HTTPRoute", "digits"), proc.stderr
    route = {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["patch"]}
    services = {"apiGroups": [""], "resources": ["services"], "verbs": ["create"]}
    gina = User(local_cluster, namespace, "gina", [rollouts, patch_one, create, route, services], tmp_path)
    proc = gina.create(_rollout("r5", trafficRouting=routed))
    assert proc.returncode == 0, proc.stderr
    # Notifications name Secrets (webhook URLs): only ones the author may read.
    proc = dave.create(_rollout("r4", notifications=[{"webhook": {"secretRef": {"name": "hook", "key": "url"}}}]))
    assert _denied(proc, "spec.notifications", "may not get every Secret"), proc.stderr


def test_a_baseline_names_only_secrets_its_author_may_read(
    local_cluster: LocalCluster, crds: Any, namespace: str, tmp_path: Path
) -> None:
    baselines = {"apiGroups": [GROUP], "resources": ["modelbaselines"], "verbs": ["create", "get", "patch"]}
    erin = User(local_cluster, namespace, "erin", [baselines], tmp_path)
    token = {"bearerTokenSecretRef": {"name": "db-prod-password", "key": "password"}}
    wait_for(
        lambda: _denied(erin.create(_baseline("b1", **token)), "bearerTokenSecretRef", "db-prod-password"),
        timeout=30, message="the baseline policy refuses a Secret its author may not get",
    )
    proc = erin.create(_baseline("b1", caSecretRef={"name": "some-ca", "key": "ca.crt"}))
    assert _denied(proc, "caSecretRef", "some-ca"), proc.stderr
    assert erin.create(_baseline("b2")).returncode == 0  # no Secret named: nothing to check
    read_token = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["prom-token"], "verbs": ["get"]}
    frank = User(local_cluster, namespace, "frank", [baselines, read_token], tmp_path)
    proc = frank.create(_baseline("b3", bearerTokenSecretRef={"name": "prom-token", "key": "token"}))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("steps", 1, "pause", "duration"), "100000000h", "spec.steps[1].pause.duration"),
        (("steps", 1, "pause", "duration"), "721h", "must be between 0s and 720h"),
        (("analysis", "interval"), "500ms", "must be between 1s and 1h"),
        (("cooldown",), "999999h", "must be between 0s and 720h"),
        (("postPromotion", "watch"), "1000h", "must be between 0s and 720h"),
    ],
    ids=["overflow", "pause", "interval", "cooldown", "watch"],
)
def test_durations_are_bounded_by_the_api_server(
    local_cluster: LocalCluster, crds: Any, namespace: str, path: tuple[Any, ...], value: str, message: str
) -> None:
    obj = _rollout()
    node: Any = obj["spec"]
    for key in path[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    proc = local_cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
