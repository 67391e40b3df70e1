"""Training paused after a rollback, on the real API server: the operator's reconciler suspends a CronJob and a
Job when it rolls back (and leaves them alone on a promotion), `modelratchet resume-training` resumes them, and an
operator without RBAC for a listed kind says so in a condition instead of failing its reconcile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from modelratchet.cli.main import main
from modelratchet.kube import resources as res
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.reconciler import Reconciler
from modelratchet.settings import OperatorSettings

from e2e.harness.cluster import LocalCluster
from e2e.harness.wait import wait_for
from tests.integration.test_admission import User

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

GROUP = "modelratchet.io"
WORKLOADS = [
    {"apiVersion": "batch/v1", "kind": "CronJob", "name": "retrain"},
    {"apiVersion": "batch/v1", "kind": "Job", "name": "finetune"},
]


def _target(name: str = "serving", rollout: str = "r") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"modelratchet.io/rollout": rollout}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.k8s.io/pause:3.10",
                            "env": [{"name": "MODEL_CHECKPOINT", "value": "v1"}],
                        }
                    ]
                },
            },
        },
    }


def _training() -> list[dict[str, Any]]:
    pod = {"restartPolicy": "Never", "containers": [{"name": "train", "image": "registry.k8s.io/pause:3.10"}]}
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "retrain"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "finetune"},
            "spec": {"suspend": False, "template": {"spec": pod}},
        },
    ]


def _rollout(name: str = "r", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"name": "serving"},
            "checkpoint": "v2",
            "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
            "baselineRef": {"name": "b"},
            "steps": [{"setWeight": 50}, {"pause": {}}],
            "onRollback": {"suspend": WORKLOADS},
            **extra,
        },
    }


BASELINE = {
    "apiVersion": f"{GROUP}/v1alpha1",
    "kind": "ModelBaseline",
    "metadata": {"name": "b"},
    "spec": {
        "model": "m",
        "metrics": [{"name": "accuracy", "threshold": {"type": "min", "value": 0.9}, "query": "vector(1)"}],
    },
}


def _apply(cluster: LocalCluster, namespace: str, *objs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(json.dumps(o) for o in objs))


def _suspended(batch: client.BatchV1Api, namespace: str) -> tuple[bool, bool]:
    cron = batch.read_namespaced_cron_job("retrain", namespace)
    job = batch.read_namespaced_job("finetune", namespace)
    return bool(cron.spec.suspend), bool(job.spec.suspend)


def _status(custom: client.CustomObjectsApi, namespace: str, name: str = "r") -> dict[str, Any]:
    obj = res.get(custom, res.ROLLOUTS, namespace, name)
    assert obj is not None
    return dict(obj.get("status") or {})


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def _until(reconciler: Reconciler, namespace: str, pred: Any, message: str, name: str = "r") -> None:
    def step() -> bool:
        reconciler.tick(namespace, name)
        return bool(pred())

    wait_for(step, timeout=90, interval=0.5, message=message)


def _gate(cluster: LocalCluster, namespace: str, verb: str, name: str = "r") -> None:
    assert main([verb, name, "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]) == 0


@pytest.fixture
def world(local_cluster: LocalCluster, crds: Any, namespace: str) -> LocalCluster:
    _apply(local_cluster, namespace, _target(), BASELINE, *_training())
    return local_cluster


def test_a_rollback_suspends_training_and_resume_training_resumes_it(
    world: LocalCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    custom, batch, core = client.CustomObjectsApi(kube_api), client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    reconciler = Reconciler(OperatorSettings(), kube_api, MetricsProvider())
    _apply(world, namespace, _rollout())
    _until(reconciler, namespace, lambda: _status(custom, namespace).get("phase") == "Paused", "the rollout pauses")
    assert _suspended(batch, namespace) == (False, False)

    _gate(world, namespace, "abort")
    _until(
        reconciler,
        namespace,
        lambda: _condition(_status(custom, namespace), "TrainingSuspended").get("status") == "True",
        "training is suspended after the rollback",
    )
    status = _status(custom, namespace)
    assert status["phase"] == "RolledBack"
    assert _suspended(batch, namespace) == (True, True)
    assert [(w["kind"], w["state"]) for w in status["training"]["workloads"]] == [
        ("CronJob", "suspended"),
        ("Job", "suspended"),
    ]
    assert (
        "CronJob/retrain, Job/finetune suspended after rolling back v2"
        in _condition(status, "TrainingSuspended")["message"]
    )
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=r").items
    assert sorted(e.message for e in events if e.reason == "TrainingSuspended") == [
        "suspended CronJob/retrain after rolling back v2",
        "suspended Job/finetune after rolling back v2",
    ]
    rolled = [e.message for e in events if e.reason == "RolledBack"]
    assert rolled and "training suspended: CronJob/retrain, Job/finetune" in rolled[0]

    # Nothing resumes them but a person: more looks leave them suspended.
    for _ in range(3):
        reconciler.tick(namespace, "r")
    assert _suspended(batch, namespace) == (True, True)

    _gate(world, namespace, "resume-training")
    _until(reconciler, namespace, lambda: "training" not in _status(custom, namespace), "training resumes")
    assert _suspended(batch, namespace) == (False, False)
    assert _condition(_status(custom, namespace), "TrainingSuspended")["reason"] == "Resumed"


def test_a_promotion_leaves_training_alone(world: LocalCluster, kube_api: client.ApiClient, namespace: str) -> None:
    custom, batch = client.CustomObjectsApi(kube_api), client.BatchV1Api(kube_api)
    reconciler = Reconciler(OperatorSettings(), kube_api, MetricsProvider())
    before = (
        batch.read_namespaced_cron_job("retrain", namespace).metadata.generation,
        batch.read_namespaced_job("finetune", namespace).metadata.generation,
    )
    _apply(world, namespace, _rollout())
    _until(reconciler, namespace, lambda: _status(custom, namespace).get("phase") == "Paused", "the rollout pauses")
    _gate(world, namespace, "promote")
    _until(reconciler, namespace, lambda: _status(custom, namespace).get("phase") == "Promoted", "v2 is promoted")
    after = (
        batch.read_namespaced_cron_job("retrain", namespace).metadata.generation,
        batch.read_namespaced_job("finetune", namespace).metadata.generation,
    )
    assert after == before and _suspended(batch, namespace) == (False, False)
    assert "training" not in _status(custom, namespace)


OPERATOR_WITHOUT_CRONJOBS = [
    {"apiGroups": [GROUP], "resources": ["modelrollouts", "modelbaselines"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": [GROUP],
        "resources": ["modelrollouts/status", "modelbaselines/status"],
        "verbs": ["get", "update", "patch", "record"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "create", "patch", "update", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "patch"]},
]


def test_without_rbac_for_a_kind_the_condition_says_so(
    world: LocalCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    custom, batch = client.CustomObjectsApi(kube_api), client.BatchV1Api(kube_api)
    operator = User(world, namespace, "limited-operator", OPERATOR_WITHOUT_CRONJOBS, tmp_path)
    api = config.new_client_from_config(config_file=str(operator.kubeconfig))  # type: ignore[no-untyped-call]
    reconciler = Reconciler(OperatorSettings(), api, MetricsProvider())
    _apply(world, namespace, _rollout())
    _until(reconciler, namespace, lambda: _status(custom, namespace).get("phase") == "Paused", "the rollout pauses")
    _gate(world, namespace, "abort")
    _until(
        reconciler,
        namespace,
        lambda: _condition(_status(custom, namespace), "TrainingSuspended").get("reason") == "SuspendFailed",
        "the missing RBAC is reported",
    )
    condition = _condition(_status(custom, namespace), "TrainingSuspended")
    assert condition["status"] == "False"
    assert (
        "CronJob/retrain: the operator may not get or patch CronJob 'retrain' (cronjobs.batch) in namespace "
        f"'{namespace}' (RBAC: list it in the chart value rbac.trainingSuspend)"
    ) in condition["message"]
    assert _suspended(batch, namespace) == (False, True), "the Job it may patch is suspended all the same"
    assert _status(custom, namespace)["phase"] == "RolledBack"
    assert not any(c["type"] == "Degraded" and c["status"] == "True" for c in _status(custom, namespace)["conditions"])
    api.close()


def test_admission_refuses_workloads_and_secrets_the_author_could_not_touch(
    local_cluster: LocalCluster, crds: Any, namespace: str, tmp_path: Path
) -> None:
    author = [
        {"apiGroups": [GROUP], "resources": ["modelrollouts"], "verbs": ["create", "get", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "patch"]},
    ]
    jobs_only = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["patch"]}
    erin = User(local_cluster, namespace, "erin", [*author, jobs_only], tmp_path)
    wait_for(
        lambda: "may not patch every workload" in erin.create(_rollout("r1")).stderr,
        timeout=30,
        message="the rollout policy refuses a CronJob its author may not patch",
    )
    proc = erin.create(_rollout("r1", onRollback={"suspend": WORKLOADS[1:]}))
    assert proc.returncode == 0, proc.stderr
    both = {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["patch"]}
    frank = User(local_cluster, namespace, "frank", [*author, both], tmp_path)
    assert frank.create(_rollout("r2")).returncode == 0
    source = {"mlflow": {"model": "digits", "secretRef": {"name": "mlflow-token", "key": "token"}}}
    spec_with_source = _rollout("r3", source=source)
    del spec_with_source["spec"]["checkpoint"]
    proc = frank.create(spec_with_source)
    assert proc.returncode != 0 and "spec.source.mlflow.secretRef" in proc.stderr and "mlflow-token" in proc.stderr
    # The CRD itself: a literal checkpoint and a source together are refused, as is neither.
    both_set = _rollout("r4", source={"mlflow": {"model": "digits"}})
    proc = frank.create(both_set)
    assert proc.returncode != 0 and "set exactly one of checkpoint or source" in proc.stderr
