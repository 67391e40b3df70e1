"""How fast the dashboard's pages paint and how much they weigh, in headless Chromium.

    python -m bench.dashboard [--analyses N] [--runs N] [--json]

A figure, not a test. On a local cluster (kube-apiserver + etcd of the e2e harness, or the one
$MODELRATCHET_KUBECONFIG names), it writes a ModelRollout whose status holds N analyses of a two-metric baseline
(the history the operator would have recorded; no operator runs, so it stays put), starts `modelratchet dashboard`
as a user would and loads the overview and the rollout page ``--runs`` times each in a fresh tab, reading the
browser's Paint Timing (first contentful paint) and Navigation/Resource Timing (bytes over the wire, decoded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from e2e.harness.browser import Browser, first_paint_and_weight
from e2e.harness.cluster import LocalCluster
from e2e.harness.components import REPO_ROOT
from e2e.harness.dashboard import DashboardProcess

NAMESPACE = "bench-dashboard"


def _metric(name: str, value: float, baseline: float, ratio: float, outcome: str, severity: str) -> dict[str, Any]:
    return {
        "metric": name, "value": value, "baseline": baseline, "delta": value - baseline, "outcome": outcome,
        "severity": severity, "classification": "neutral", "threshold": {"type": "ratio", "value": ratio},
        "message": f"{name}: {value:.4g} against {baseline:.4g}",
        "judge": {"judge": "sequential", "estimate": value - baseline, "ciLow": value - baseline - 0.02,
                  "ciHigh": value - baseline + 0.02, "samples": 200},
    }


def status(analyses: int, now: datetime) -> dict[str, Any]:
    history = []
    for i in range(analyses, 0, -1):
        t = now - timedelta(seconds=30 * (analyses - i))
        acc = 0.95 - 0.0004 * i
        history.append({
            "id": i, "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "checkpoint": "s3://models/digits/v3",
            "step": 1, "stage": "canary", "verdict": "passed", "message": "2 passed, 0 failed, 0 inconclusive",
            "metrics": [_metric("accuracy", acc, 0.95, 0.05, "passed", "critical"),
                        _metric("latency_p90", 0.05 + 0.0001 * i, 0.05, 0.5, "passed", "warning")],
        })
    return {
        "phase": "Progressing", "stableCheckpoint": "s3://models/digits/v1", "canaryCheckpoint": "s3://models/digits/v3",
        "currentStep": 1, "canaryWeight": 25, "lastVerdict": "passed", "lastHistoryId": analyses,
        "stepStartedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "history": history,
    }


def setup(cluster: LocalCluster, analyses: int) -> None:
    from kubernetes import client, config

    cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/modelrollouts.modelratchet.io")
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    baseline = {"apiVersion": "modelratchet.io/v1alpha1", "kind": "ModelBaseline", "metadata": {"name": "digits"},
                "spec": {"model": "digits", "metrics": [
                    {"name": "accuracy", "baseline": "live", "threshold": {"type": "ratio", "value": 0.05},
                     "query": "accuracy"},
                    {"name": "latency_p90", "direction": "lowerIsBetter", "baseline": "live",
                     "threshold": {"type": "ratio", "value": 0.5}, "severity": "warning", "query": "latency"}]}}
    rollout = {"apiVersion": "modelratchet.io/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "digits"},
               "spec": {"targetRef": {"name": "digits-serving"}, "checkpoint": "s3://models/digits/v3",
                        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
                        "baselineRef": {"name": "digits"}, "historyLimit": 500,
                        "steps": [{"setWeight": 25}, {"analyze": {"duration": "1h"}}, {"setWeight": 50}]}}
    for plural, body in (("modelbaselines", baseline), ("modelrollouts", rollout)):
        try:
            custom.create_namespaced_custom_object("modelratchet.io", "v1alpha1", NAMESPACE, plural, body)
        except client.ApiException as e:
            if e.status != 409:
                raise
    custom.patch_namespaced_custom_object_status(
        "modelratchet.io", "v1alpha1", NAMESPACE, "modelrollouts", "digits",
        {"status": status(analyses, datetime.now(UTC))},
    )
    api.close()


def measure(browser: Browser, url: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        browser.page.navigate("about:blank")
        browser.page.navigate(url)
        samples.append(first_paint_and_weight(browser.page))
    out = {k: float(statistics.median(s[k] for s in samples)) for k in samples[0]}
    out["first_contentful_paint_ms_max"] = max(s["first_contentful_paint_ms"] for s in samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--analyses", type=int, default=50, help="analyses in the rollout's history (default 50)")
    parser.add_argument("--runs", type=int, default=5, help="page loads per page (default 5)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--screenshot", metavar="PNG", help="also save the rollout page here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        reuse = os.environ.get("MODELRATCHET_KUBECONFIG")
        cluster = LocalCluster.attach(Path(reuse)) if reuse else LocalCluster.up(Path(tmp) / "cluster", owned=True)
        try:
            setup(cluster, args.analyses)
            dash = DashboardProcess(Path(cluster.kubeconfig), "-n", NAMESPACE, log_dir=Path(tmp))
            browser = Browser()
            try:
                results = {
                    "overview": measure(browser, dash.url + "/", args.runs),
                    "rollout": measure(browser, f"{dash.url}/rollouts/{NAMESPACE}/digits", args.runs),
                }
                if args.screenshot:
                    browser.page.screenshot(Path(args.screenshot))
            finally:
                browser.close()
                dash.stop()
        finally:
            if cluster.owned:
                cluster.down()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"dashboard pages, median of {args.runs} loads, {args.analyses} analyses x 2 metrics in the history")
    head = ("page", "FCP ms", "max", "load ms", "requests", "transfer KiB", "decoded KiB")
    print(f"{head[0]:10} {head[1]:>8} {head[2]:>7} {head[3]:>8} {head[4]:>8} {head[5]:>13} {head[6]:>12}")
    for page, r in results.items():
        print(f"{page:10} {r['first_contentful_paint_ms']:8.0f} {r['first_contentful_paint_ms_max']:7.0f} "
              f"{r['load_ms']:8.0f} {r['requests']:8.0f} {r['transfer_bytes'] / 1024:13.1f} "
              f"{r['decoded_bytes'] / 1024:12.1f}")


if __name__ == "__main__":
    main()
