"""The objects of the scale benchmark in one namespace, and the synthetic exporter their metrics come from.

N ModelRollouts ``r<i>``, each with its own target Deployment ``serving-<i>`` (one kwok pod that does not serve,
opted in to its rollout); ``PER_MODEL`` rollouts share a model and its ModelBaseline ``m<j>``. Every model has a
stable checkpoint and every rollout its own candidate, each with its own series in the exporter, which the real
Prometheus scrapes. A rollout shifts 50% to its candidate (one canary pod) and then analyses for two hours, every
``interval`` seconds, judging accuracy against the stable checkpoint side by side (a live ratio, with a samples
query): 4 PromQL queries per analysis.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.harness.cluster import KWOK_NODE_ANNOTATION, LocalCluster, free_port
from e2e.harness.prometheus import LocalPrometheus
from e2e.harness.scenario import deployment
from e2e.harness.wait import wait_for

GROUP, VERSION = "modelratchet.io", "v1alpha1"
PER_MODEL = 10
PODS_PER_NODE = 110
REPO = Path(__file__).resolve().parents[2]

_SEL = 'model="{{ model }}",checkpoint="{{ checkpoint }}"'
ACCURACY_QUERY = (
    f"sum(increase(model_correct_total{{{_SEL}}}[{{{{ window }}}}]))"
    f" / sum(increase(model_feedback_total{{{_SEL}}}[{{{{ window }}}}]))"
)
SAMPLES_QUERY = f"sum(increase(model_feedback_total{{{_SEL}}}[{{{{ window }}}}]))"
# The 4 queries of an analysis (value and samples, for the candidate and the stable checkpoint) go as one request.
REQUESTS_PER_ANALYSIS = 1


def stable_of(model: int) -> str:
    return f"s3://models/m{model}/v1"


def candidate_of(model: int, rollout: int) -> str:
    return f"s3://models/m{model}/r{rollout}"


def baseline_body(model: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelBaseline",
        "metadata": {"name": f"m{model}"},
        "spec": {
            "model": f"m{model}",
            "metrics": [
                {
                    "name": "accuracy",
                    "baseline": "live",
                    "threshold": {"type": "ratio", "value": 0.05},
                    "severity": "critical",
                    "query": ACCURACY_QUERY,
                    "minSamples": 10,
                    "samplesQuery": SAMPLES_QUERY,
                }
            ],
        },
    }


def deployment_body(i: int, checkpoint: str) -> dict[str, Any]:
    """One replica, opted in to rollout ``r<i>``; its pod is not labelled to serve, so kwok makes it ready."""
    return deployment(f"serving-{i}", checkpoint, replicas=1, rollout=f"r{i}")


def rollout_body(i: int, model: int, interval: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRollout",
        "metadata": {"name": f"r{i}"},
        "spec": {
            "targetRef": {"name": f"serving-{i}"},
            "checkpoint": candidate_of(model, i),
            "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
            "baselineRef": {"name": f"m{model}"},
            "steps": [{"setWeight": 50}, {"analyze": {"duration": "2h"}}],
            "analysis": {"interval": f"{interval}s", "inconclusiveLimit": 100, "onInconclusive": "hold"},
            "historyLimit": 5,
        },
    }


def ensure_nodes(cluster: LocalCluster, core: client.CoreV1Api, pods: int) -> int:
    """Enough kwok nodes for ``pods`` pods (110 each, as a kubelet's default); returns the node count."""
    have = len(core.list_node().items)
    need = math.ceil(pods / (PODS_PER_NODE - 10)) + 1
    for k in range(have, need):
        name = f"scale-node-{k}"
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
            "spec": {},
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(PODS_PER_NODE)},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(PODS_PER_NODE)},
            },
        }
        try:
            core.create_node(body)
        except ApiException as e:
            if e.status != 409:
                raise
    return max(have, need)


def _parallel(fn: Callable[[Any], object], items: Iterable[Any], workers: int = 8) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, items):
            pass


class ScaleWorld:
    """The namespace, its objects and the exporter; ``close()`` removes them."""

    def __init__(
        self,
        cluster: LocalCluster,
        api: client.ApiClient,
        prom: LocalPrometheus,
        objects: int,
        *,
        interval: int,
        log_dir: Path,
        namespace: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.prom = prom
        self.objects = objects
        self.interval = interval
        self.log_dir = log_dir
        self.ns = namespace or f"scale-{objects}-{int(time.time())}"
        self.models = math.ceil(objects / PER_MODEL)
        self.core, self.apps, self.custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
        self.exporter: subprocess.Popen[bytes] | None = None
        self.job = f"scale-{self.ns}"

    def model_of(self, i: int) -> int:
        return i // PER_MODEL

    # --- set-up ---------------------------------------------------------------------------------

    def start_exporter(self) -> None:
        checkpoints = [{"model": f"m{j}", "checkpoint": stable_of(j), "accuracy": 0.9} for j in range(self.models)]
        checkpoints += [
            {"model": f"m{self.model_of(i)}", "checkpoint": candidate_of(self.model_of(i), i), "accuracy": 0.9}
            for i in range(self.objects)
        ]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / "checkpoints.json"
        path.write_text(json.dumps(checkpoints))
        port = free_port()
        log = (self.log_dir / "exporter.log").open("wb")
        self.exporter = subprocess.Popen(
            [sys.executable, "-m", "bench.scale.exporter", "--port", str(port), "--checkpoints", str(path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.prom.add_target(self.job, f"127.0.0.1:{port}")
        stable = stable_of(0)

        def scraped() -> bool:
            return bool(self.prom.query(f'model_feedback_total{{checkpoint="{stable}"}} > 0'))

        wait_for(scraped, timeout=60, interval=1, message="Prometheus scraping the synthetic exporter")

    def create_references(self, *, targets: bool = True) -> None:
        """Namespace, nodes, exporter and, with ``targets``, the ModelBaselines and target Deployments (rolled out)."""
        self.cluster.kubectl("create", "namespace", self.ns)
        ensure_nodes(self.cluster, self.core, 2 * self.objects)
        self.start_exporter()
        if not targets:
            return
        _parallel(
            lambda j: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.ns, "modelbaselines", baseline_body(j)
            ),
            range(self.models),
        )
        _parallel(
            lambda i: self.apps.create_namespaced_deployment(self.ns, deployment_body(i, stable_of(self.model_of(i)))),
            range(self.objects),
        )

        def available() -> bool:
            items = self.apps.list_namespaced_deployment(self.ns).items
            return sum(1 for d in items if (d.status.available_replicas or 0) >= 1) >= self.objects

        wait_for(available, timeout=120 + self.objects, interval=2, message=f"{self.objects} Deployments available")

    def create_rollouts(self, over_seconds: float) -> None:
        """Creates the ModelRollouts at an even pace over ``over_seconds``, so their analyses fall due spread over
        an interval as a fleet's do, not all in the same second."""
        started = time.monotonic()

        def one(i: int) -> None:
            delay = started + over_seconds * i / self.objects - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the creations, not waiting on a condition
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.ns, "modelrollouts", rollout_body(i, self.model_of(i), self.interval)
            )

        _parallel(one, range(self.objects), workers=4)

    # --- observation ----------------------------------------------------------------------------

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every rollout's status; a list cut by an overloaded API server is read again (three tries)."""
        for attempt in range(3):
            try:
                items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "modelrollouts")["items"]
                return {r["metadata"]["name"]: r.get("status") or {} for r in items}
            except (ApiException, ValueError, urllib3.exceptions.HTTPError):
                if attempt == 2:
                    raise
                time.sleep(2)  # backing off before the next try
        raise AssertionError("unreachable")

    def wait_analysing(self, timeout: float) -> int:
        """Waits until every rollout made its first analysis, at most ``timeout`` s; returns how many did."""
        deadline = time.monotonic() + timeout
        while True:
            done = sum(1 for s in self.statuses().values() if (s.get("lastHistoryId") or 0) >= 1)
            if done >= self.objects or time.monotonic() > deadline:
                return done
            time.sleep(3)  # polling the statuses

    # --- tear-down ------------------------------------------------------------------------------

    def close(self) -> None:
        if self.exporter is not None and self.exporter.poll() is None:
            self.exporter.terminate()
            self.exporter.wait(10)
        self.prom.remove_target(self.job)
        self.cluster.kubectl("delete", "namespace", self.ns, "--wait=false", "--ignore-not-found", check=False)
