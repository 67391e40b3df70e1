"""The demo: a local cluster, Prometheus, pods that really serve behind a real gateway (Traefik), and the
operator. A better checkpoint goes shadow -> 5% -> 25% -> promoted through the gateway; a regressed one is rolled
back during its shadow phase, before any user got an answer from it.

    python -m e2e.demo [--keep]      (needs root: the pods' network is a network namespace)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from e2e.harness.cluster import LocalCluster, default_run_dir
from e2e.harness.dataplane import DataPlane
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.prometheus import LocalPrometheus
from e2e.harness.scenario import V1, V2, V3, Scenario, digits_baseline, rollout_spec

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "ml-demo"


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"==> {text}", flush=True)


def follow(sc: Scenario, name: str, until: set[str], timeout: float = 180) -> dict[str, Any]:
    """Print each change of the rollout's phase, step, weight and verdict until it settles."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = sc.status(name)
        line = (
            f"phase={s.get('phase')} step={s.get('currentStep')} weight={s.get('canaryWeight')} "
            f"canary={s.get('canaryCheckpoint')} verdict={s.get('lastVerdict')}"
        )
        if line != last:
            print(f"    {time.strftime('%H:%M:%S')} {line}", flush=True)
            history = s.get("history") or []
            if history and last is not None:
                h = history[0]
                for m in h["metrics"]:
                    print(f"        #{h['id']} {m['message']}", flush=True)
            last = line
        settled = s.get("phase") in until and s.get("canaryCheckpoint") is None
        if settled and s.get("observedGeneration", 0) >= sc.rollout(name)["metadata"]["generation"]:
            print(f"    {s.get('message')}", flush=True)
            return s
        time.sleep(0.5)
    raise TimeoutError(f"rollout {name} did not reach {until} in {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    args = parser.parse_args(argv)

    run_dir = default_run_dir("demo")
    say("starting a local Kubernetes cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    cluster = LocalCluster.up(run_dir, owned=not args.keep)
    print(f"    up in {cluster.startup_seconds:.1f}s at {cluster.server}")
    kubeconfig = str(cluster.kubeconfig)
    os.environ["KUBECONFIG"] = kubeconfig
    prometheus = LocalPrometheus(run_dir / "prometheus", owned=not args.keep)
    operator: OperatorProcess | None = None
    sc: Scenario | None = None
    plane: DataPlane | None = None
    try:
        say("installing the ModelRatchet CRDs")
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/modelrollouts.modelratchet.io",
                        "crd/modelbaselines.modelratchet.io", "--timeout=60s")
        say("starting Prometheus (scraping every second)")
        prometheus.start()
        print(f"    {prometheus.url}")
        say("starting the operator")
        operator = OperatorProcess(cluster.kubeconfig, prometheus.url,
                                   log_dir=Path(tempfile.mkdtemp(prefix="modelratchet-demo-")))
        operator.start()
        print(f"    log: {operator.log_path}")
        say("starting the data plane: a pod network, the pod supervisor, Traefik with the Gateway API")
        plane = DataPlane(cluster, run_dir / "dataplane", prometheus=prometheus, owned=not args.keep)
        plane.start()
        print(f"    gateway at {plane.url}, up in {plane.startup_seconds:.1f}s")
        config.load_kube_config(config_file=kubeconfig)
        api = client.ApiClient()
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        sc = Scenario(api, NAMESPACE, prometheus, model="digits", data_plane=plane)
        sc.start_servers()
        say("deploying digits-serving on v1 with an HTTPRoute to its stable Service; labelled traffic via the gateway")
        sc.deploy_target(V1, replicas=2, route_service=sc.stable_service)
        sc.start_traffic(rate=100)
        # At 5% of 100 requests/s the candidate sees 5 labelled answers a second: 20 make a judgement.
        sc.create("modelbaselines", "digits", digits_baseline("digits", min_samples=20))
        routing = {"gatewayAPI": {"httpRoute": sc.route, "stableService": sc.stable_service,
                                  "mirror": "traefikService"}, "canaryReplicas": 1}
        steps = [
            {"setMirror": {"percent": 100}},
            {"analyze": {"duration": "10s"}},
            {"setMirror": {"percent": 0}},
            {"setWeight": 5},
            {"analyze": {"duration": "12s"}},
            {"setWeight": 25},
            {"analyze": {"duration": "6s"}},
        ]
        analysis = {"interval": "2s", "failureLimit": 0, "inconclusiveLimit": 8}

        say(f"ModelRollout digits: roll out {V2}: shadow, then 5%, then 25% of requests")
        sc.create("modelrollouts", "digits", rollout_spec(sc.target, "digits", V2, steps=steps, trafficRouting=routing,
                                                           analysis=analysis))
        follow(sc, "digits", {"Promoted", "RolledBack"})
        print(f"    target now serves {sc.target_checkpoint()}; answers seen by clients: {sc.answers()}")

        say(f"roll out {V3} (a regressed checkpoint): judged on mirrored requests")
        before = sc.answers().get(V3, 0)
        sc.patch_spec("modelrollouts", "digits", {"checkpoint": V3})
        follow(sc, "digits", {"RolledBack", "Promoted"})
        print(f"    target still serves {sc.target_checkpoint()}; "
              f"client answers from {V3}: {sc.answers().get(V3, 0) - before}")

        say("kubectl get mro,mb")
        print(cluster.kubectl("get", "mro,mb", "-n", NAMESPACE, "-o", "wide").stdout)
        say("modelratchet history digits")
        out = subprocess.run([sys.executable, "-m", "modelratchet.cli.main", "history", "digits", "-n", NAMESPACE,
                              "--kubeconfig", kubeconfig, "--limit", "6"], capture_output=True, text=True)
        print(out.stdout or out.stderr)
        print(f"operator memory: {operator.rss_mib():.0f} MiB")
        return 0
    finally:
        if sc:
            sc.close()
        if operator:
            operator.stop()
        if plane and not args.keep:
            plane.stop()
        if args.keep:
            say(f"left running: export KUBECONFIG={kubeconfig}  (stop: e2e/cluster.sh down --name demo)")
        else:
            prometheus.stop()
            cluster.down()


if __name__ == "__main__":
    raise SystemExit(main())
