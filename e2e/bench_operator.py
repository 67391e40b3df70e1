"""How many analyses per second one operator sustains, and its memory, on the local cluster.

    python -m e2e.bench_operator [--rollouts 40] [--seconds 60]

N ModelRollouts, each with its own Deployment and a 1 s analysis interval in a long analyze step,
all judged from a real Prometheus scraping real model servers. Prints analyses/s, reconcile latency
and the operator's memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from e2e.harness.cluster import LocalCluster, default_run_dir
from e2e.harness.model_servers import ModelServerFleet, TrafficDriver, checkpoint_file, static_weights
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.prometheus import LocalPrometheus
from e2e.harness.scenario import V1, V2, deployment, digits_baseline
from e2e.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[1]
NS = f"bench-{int(time.time())}"


def _total(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    existing = os.environ.get("MODELRATCHET_KUBECONFIG")
    cluster = LocalCluster.attach(Path(existing)) if existing else LocalCluster.up(default_run_dir("bench"), owned=True)
    prom = LocalPrometheus(Path(tempfile.mkdtemp(prefix="modelratchet-bench-prom-")))
    fleet = ModelServerFleet({V1: checkpoint_file("v1-good"), V2: checkpoint_file("v2-better")}, model="bench")
    operator = OperatorProcess(cluster.kubeconfig, "", log_dir=Path(tempfile.mkdtemp(prefix="modelratchet-bench-")))
    traffic = None
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        prom.start()
        operator.prometheus_url = prom.url
        for label, address in fleet.start().items():
            prom.add_target(f"bench-{label.rsplit('/', 1)[-1]}", address)
        traffic = TrafficDriver(fleet.urls, static_weights({V1: 1, V2: 1}), rate=100, max_duration=args.seconds + 300)
        traffic.start()
        config.load_kube_config(config_file=str(cluster.kubeconfig))
        api = client.ApiClient()
        _core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
        cluster.kubectl("create", "namespace", NS, check=False)
        body = {
            "apiVersion": "modelratchet.io/v1alpha1",
            "kind": "ModelBaseline",
            "metadata": {"name": "bench"},
            "spec": digits_baseline("bench", min_samples=1),
        }
        custom.create_namespaced_custom_object("modelratchet.io", "v1alpha1", NS, "modelbaselines", body)
        for i in range(args.rollouts):
            apps.create_namespaced_deployment(NS, deployment(f"serving-{i}", V1, replicas=1, rollout=f"r{i}"))
            spec = {
                "targetRef": {"name": f"serving-{i}"},
                "checkpoint": V2,
                "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
                "baselineRef": {"name": "bench"},
                "steps": [{"setWeight": 50}, {"analyze": {"duration": "1h"}}],
                "analysis": {"interval": "1s", "inconclusiveLimit": 100, "onInconclusive": "hold"},
                "historyLimit": 20,
            }
            custom.create_namespaced_custom_object(
                "modelratchet.io",
                "v1alpha1",
                NS,
                "modelrollouts",
                {
                    "apiVersion": "modelratchet.io/v1alpha1",
                    "kind": "ModelRollout",
                    "metadata": {"name": f"r{i}"},
                    "spec": spec,
                },
            )
        operator.start()

        def analyzing() -> bool:
            items = custom.list_namespaced_custom_object("modelratchet.io", "v1alpha1", NS, "modelrollouts")["items"]
            return sum(1 for r in items if (r.get("status") or {}).get("lastHistoryId")) == args.rollouts

        wait_for(analyzing, timeout=300, interval=1, message="every rollout analyzing")
        m0, t0 = operator.metrics(), time.monotonic()
        time.sleep(args.seconds)  # the measurement window itself
        m1, t1 = operator.metrics(), time.monotonic()
        analyses = _total(m1, "modelratchet_analyses_total") - _total(m0, "modelratchet_analyses_total")
        reconciles = (
            m1["modelratchet_reconcile_duration_seconds_count"] - m0["modelratchet_reconcile_duration_seconds_count"]
        )
        seconds = m1["modelratchet_reconcile_duration_seconds_sum"] - m0["modelratchet_reconcile_duration_seconds_sum"]
        rate = analyses / (t1 - t0)
        print(f"rollouts analyzing:          {args.rollouts} (interval 1 s, 2 metrics, live baselines)")
        print(f"analyses per second:         {rate:.1f}  (ideal {args.rollouts:.0f})")
        print(f"reconciles per second:       {reconciles / (t1 - t0):.1f}")
        print(f"mean reconcile duration:     {1000 * seconds / max(reconciles, 1):.0f} ms")
        print(f"operator memory:             {operator.rss_mib():.0f} MiB rss, {operator.peak_rss_mib():.0f} MiB peak")
        sample = custom.get_namespaced_custom_object("modelratchet.io", "v1alpha1", NS, "modelrollouts", "r0")["status"]
        print(
            f"sample rollout:              phase {sample.get('phase')}, {sample.get('lastHistoryId')} analyses, "
            f"last verdict {sample.get('lastVerdict')}: {sample.get('message')}"
        )
        print(f"reconcile errors:            {_total(m1, 'modelratchet_reconcile_errors_total'):.0f}")
        return 0
    finally:
        operator.stop()
        if traffic:
            traffic.stop()
        fleet.stop()
        prom.stop()
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)
        if not existing:
            cluster.down()


if __name__ == "__main__":
    raise SystemExit(main())
