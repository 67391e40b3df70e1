"""ModelRatchet, Argo Rollouts and Flagger side by side on one local cluster, with the real data plane.

Usage: python -m bench.peers [--repeats 5] [--scenario NAME ...] [--system NAME ...] [--out bench/peers/out]

Starts a local cluster (e2e/harness), Prometheus discovering the serving pods, the data plane (pod network,
supervisor, Traefik with the Gateway API), installs the systems, then runs every scenario for each system in
turn: only the controller under test runs while its scenarios do. Needs the pinned components (`make setup`) and
root for the pod network namespace, as the e2e suite does. Writes peers.md, peers.json and peers.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.peers.runner import LOW_RATE, RATE, SCENARIOS, Cluster, run_once
from bench.peers.systems import ArgoRollouts, Flagger, ModelRatchet, System

HERE = Path(__file__).resolve().parent
SYSTEMS = ("ModelRatchet", "Argo Rollouts", "Flagger")


class Controller:
    """The process of one system under test: started before its runs, its CPU and peak RSS read from /proc."""

    def __init__(self, start: Callable[[], None], stop: Callable[[], None], pid: Callable[[], int | None]) -> None:
        self.start, self.stop, self.pid = start, stop, pid


def operator_pid(operator: Any) -> int | None:
    return int(operator.proc.pid) if operator.proc is not None and operator.alive() else None


def run_systems(env: Cluster, systems: Iterable[tuple[System, Controller]], scenarios: Iterable[str],
                repeats: int, say: Callable[[str], None] = print,
                partial: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every scenario `repeats` times for each system in turn; each run is appended to `partial` as it ends."""
    from e2e.harness.argo_rollouts import cpu_seconds
    from e2e.harness.procs import rss_kib

    runs: list[dict[str, Any]] = []
    controllers: dict[str, dict[str, float]] = {}
    names = list(scenarios)
    for system, controller in systems:
        controller.start()
        pid = controller.pid()
        assert pid is not None, f"{system.name}: the controller is not running"
        cpu0 = cpu_seconds(pid)
        say(f"== {system.name} (pid {pid})")
        count = 0
        for scenario in names:
            for repeat in range(1, repeats + 1):
                runs.append(run_once(system, SCENARIOS[scenario], repeat, env, say).as_dict())
                if partial is not None:
                    with partial.open("a") as fh:
                        fh.write(json.dumps(runs[-1]) + "\n")
                count += 1
        controllers[system.name] = {"rollouts": count, "cpu_seconds": round(cpu_seconds(pid) - cpu0, 2),
                                    "peak_rss_mib": round(rss_kib(pid, "VmHWM") / 1024, 1)}
        controller.stop()
    return runs, controllers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="default: all")
    parser.add_argument("--system", action="append", choices=SYSTEMS, help="default: all")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)

    from kubernetes import config

    from bench.peers.report import write
    from e2e.harness.argo_rollouts import LocalArgoRollouts
    from e2e.harness.cluster import LocalCluster, default_run_dir
    from e2e.harness.components import REPO_ROOT
    from e2e.harness.dataplane import DataPlane
    from e2e.harness.flagger import LocalFlagger
    from e2e.harness.operator_proc import OperatorProcess
    from e2e.harness.prometheus import LocalPrometheus

    began = time.monotonic()
    run_dir = default_run_dir("peers")
    print(f"starting a local cluster, Prometheus and the data plane in {run_dir}", flush=True)
    cluster = LocalCluster.up(run_dir / "cluster", owned=True)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    prometheus = LocalPrometheus(run_dir / "prometheus")
    plane: DataPlane | None = None
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/modelrollouts.modelratchet.io",
                        "crd/modelbaselines.modelratchet.io", "--timeout=60s")
        prometheus.start()
        plane = DataPlane(cluster, run_dir / "dataplane", prometheus=prometheus)
        plane.start()
        argo = LocalArgoRollouts(cluster, run_dir / "argo-rollouts")
        argo.install()
        (run_dir / "operator").mkdir(parents=True, exist_ok=True)
        operator = OperatorProcess(cluster.kubeconfig, prometheus.url, log_dir=run_dir / "operator")
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        env = Cluster(api=api, prometheus=prometheus, data_plane=plane, log_dir=run_dir / "runs")
        chosen = args.system or list(SYSTEMS)
        systems: list[tuple[System, Controller]] = []
        if "ModelRatchet" in chosen:
            systems.append((ModelRatchet(), Controller(operator.start, operator.stop, lambda: operator_pid(operator))))
        if "Argo Rollouts" in chosen:
            systems.append((ArgoRollouts(prometheus.url), Controller(argo.start, argo.stop, lambda: argo.pid)))
        if "Flagger" in chosen:  # installed after the data plane: its router needs the Gateway API CRDs
            flagger = LocalFlagger(cluster, run_dir / "flagger", prometheus.url)
            flagger.install()
            systems.append((Flagger(prometheus.url), Controller(flagger.start, flagger.stop, lambda: flagger.pid)))
        args.out.mkdir(parents=True, exist_ok=True)
        runs, controllers = run_systems(env, systems, args.scenario or list(SCENARIOS), args.repeats,
                                        partial=run_dir / "runs.jsonl")
        meta = {
            "command": "python -m bench.peers" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
            "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
                       f"Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "repeats": args.repeats,
            "rate": RATE,
            "low_rate": LOW_RATE,
            "minutes": (time.monotonic() - began) / 60,
        }
        write(args.out, runs, controllers, meta)
        print((args.out / "peers.md").read_text())
        return 0
    finally:
        if plane is not None:
            plane.stop()
        prometheus.stop()
        cluster.down()


if __name__ == "__main__":
    raise SystemExit(main())
