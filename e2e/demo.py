"""The demo: a local cluster, Prometheus, real model servers and the operator; one checkpoint promoted, one
regressed checkpoint rolled back.

    python -m e2e.demo [--keep]
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
        config.load_kube_config(config_file=kubeconfig)
        api = client.ApiClient()
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        sc = Scenario(api, NAMESPACE, prometheus, model="digits")
        say("starting model servers for checkpoints v1 (good), v2 (better), v3 (regressed)")
        sc.start_servers()
        say("deploying digits-serving on v1 (3 replicas) and sending labelled traffic")
        sc.deploy_target(V1)
        sc.start_traffic()
        sc.create("modelbaselines", "digits", digits_baseline("digits"))

        say(f"ModelRollout digits: roll out {V2}")
        sc.create("modelrollouts", "digits", rollout_spec(sc.target, "digits", V2))
        follow(sc, "digits", {"Promoted", "RolledBack"})
        print(f"    target now serves {sc.target_checkpoint()}")

        say(f"roll out {V3} (a regressed checkpoint)")
        sc.patch_spec("modelrollouts", "digits", {"checkpoint": V3})
        follow(sc, "digits", {"RolledBack", "Promoted"})
        print(f"    target still serves {sc.target_checkpoint()}")

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
        if args.keep:
            say(f"left running: export KUBECONFIG={kubeconfig}  (stop: e2e/cluster.sh down --name demo)")
        else:
            prometheus.stop()
            cluster.down()


if __name__ == "__main__":
    raise SystemExit(main())
