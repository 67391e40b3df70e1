"""Scale: N ModelRollouts on one operator replica, on the local cluster, with a real Prometheus.

    python -m bench.scale --objects 100,300,1000

For each N: N ModelRollouts (each with its target Deployment, kwok pods that do not serve; 10 rollouts share a
model and its ModelBaseline), analysing every 30 s from a synthetic exporter that gives each checkpoint its own
series, scraped by Prometheus. Measures, over a window in steady state: reconcile lag (due time to the start of
the analysis) p50/p99, analyses/s, Prometheus queries/s (Prometheus's own request counters), operator CPU and
peak RSS (/proc); then stops the operator for 10 s and measures the time until every overdue analysis was made.
Writes bench/scale/out/scale.{json,md,png}. Uses $MODELRATCHET_KUBECONFIG's cluster if set, else starts one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from e2e.harness.cluster import LocalCluster, default_run_dir
from e2e.harness.prometheus import LocalPrometheus

from .argo import run_argo
from .measure import Result
from .report import markdown, plot
from .run import TICK_SECONDS, run_modelratchet
from .world import REPO

OUT = Path(__file__).resolve().parent / "out"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} vCPU ({cpu}), {mem / 1024 / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", default="100,300,1000", help="comma-separated numbers of ModelRollouts")
    parser.add_argument("--interval", type=int, default=30, help="analysis interval, seconds")
    parser.add_argument("--measure", type=float, default=120.0, help="measurement window, seconds")
    parser.add_argument("--no-restart", action="store_true", help="skip the restart-convergence measurement")
    parser.add_argument(
        "--tick", type=float, default=TICK_SECONDS, help="the operator's longest time between two looks at a rollout"
    )
    parser.add_argument("--profile", action="store_true", help="sample the operator's CPU by function (sampler.py)")
    parser.add_argument(
        "--operator-src",
        type=Path,
        default=None,
        help="run the operator from this operator/ folder (another checkout), for before/after",
    )
    parser.add_argument("--systems", default="modelratchet,argo", help="modelratchet, argo or both (in that order)")
    parser.add_argument("--label", default="", help="a name for this run in the output files (e.g. before)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.objects.split(",") if x.strip()]

    existing = os.environ.get("MODELRATCHET_KUBECONFIG")
    cluster = (
        LocalCluster.attach(Path(existing))
        if existing
        else LocalCluster.up(default_run_dir("scale"), owned=True, disable_qps_limits=True)
    )
    work = Path(tempfile.mkdtemp(prefix="modelratchet-scale-"))
    prom = LocalPrometheus(work / "prometheus")
    suffix = f"-{args.label}" if args.label else ""
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        prom.start()
        config.load_kube_config(config_file=str(cluster.kubeconfig))
        api = client.ApiClient()
        systems = [x.strip() for x in args.systems.split(",") if x.strip()]
        command = "python -m bench.scale " + " ".join(sys.argv[1:] if argv is None else argv)
        for n in sizes:
            for system in systems:
                print(f"[scale] {system}, {n} rollouts ...", flush=True)
                if system == "argo":
                    result = run_argo(
                        cluster,
                        api,
                        prom,
                        n,
                        interval=args.interval,
                        measure_seconds=args.measure,
                        log_dir=work / f"argo-{n}",
                        restart=not args.no_restart,
                    )
                else:
                    profile = args.out / f"profile{suffix}-{n}.txt" if args.profile else None
                    result = run_modelratchet(
                        cluster,
                        api,
                        prom,
                        n,
                        interval=args.interval,
                        measure_seconds=args.measure,
                        log_dir=work / f"modelratchet-{n}",
                        profile=profile,
                        operator_src=args.operator_src,
                        restart=not args.no_restart,
                        tick_seconds=args.tick,
                    )
                results.append(result)
                print(f"[scale] {json.dumps(result.to_json())}", flush=True)
                doc = {
                    "machine": machine(),
                    "command": command,
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "results": [r.to_json() for r in results],
                }
                (args.out / f"scale{suffix}.json").write_text(json.dumps(doc, indent=2) + "\n")
                (args.out / f"scale{suffix}.md").write_text(markdown(doc))
        plot([r.to_json() for r in results], args.out / f"scale{suffix}.png")
        print((args.out / f"scale{suffix}.md").read_text())
        return 0
    finally:
        prom.stop()
        if not existing:
            cluster.down()
