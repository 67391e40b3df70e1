"""The same fleet under Argo Rollouts: N Rollouts, each analysed every 30 s by an AnalysisRun with the Prometheus
provider, from the same exporter's series, with the controller's CPU, memory and lag measured the same way.

Each Rollout ``a<i>`` (one replica, the same kwok pod template as the ModelRollouts' targets) first rolls out its
model's stable checkpoint (a first revision skips the steps), then its own candidate: setWeight 50, then an inline
analysis of bench/peers' AnalysisTemplate (the candidate's accuracy over the stable's, successCondition,
failureLimit 3) at interval 30s with a count that outlasts the benchmark, its window the interval, as Argo's docs
write it. One PromQL query per measurement (the ratio in one expression) where ModelRatchet sends four.

Argo Rollouts schedules a metric's next measurement an interval after the previous one finished; measurements carry
whole-second timestamps, so its lag is known to the second (ModelRatchet's operator measures its own to the
millisecond).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from e2e.harness.argo_rollouts import LocalArgoRollouts
from e2e.harness.cluster import LocalCluster
from e2e.harness.prometheus import LocalPrometheus

from .measure import Result, parse_ts, prometheus_queries
from .run import RESTART_SLACK
from .world import REPO, ScaleWorld, candidate_of, deployment_body, stable_of

ARGO = ("argoproj.io", "v1alpha1")
PEERS_CONFIG = REPO / "bench" / "peers" / "argo-rollouts.yaml"


def template(prometheus_url: str, interval: int) -> dict[str, Any]:
    """bench/peers' AnalysisTemplate at this interval: the query's window is the interval, the count outlasts us."""
    import yaml

    doc = next(d for d in yaml.safe_load_all(PEERS_CONFIG.read_text()) if d and d["kind"] == "AnalysisTemplate")
    metric = doc["spec"]["metrics"][0]
    metric["interval"] = f"{interval}s"
    metric["count"] = math.ceil(7200 / interval)
    prom = metric["provider"]["prometheus"]
    prom["address"] = prometheus_url
    prom["query"] = prom["query"].replace("[6s]", f"[{interval}s]")
    return dict(doc)


def rollout(i: int, model: int, checkpoint: str) -> dict[str, Any]:
    pod = deployment_body(i, checkpoint)["spec"]["template"]
    name = f"a{i}"
    pod["metadata"]["labels"] = {"app": name}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 50},
                        {
                            "analysis": {
                                "templates": [{"templateName": "accuracy"}],
                                "args": [
                                    {"name": "model", "value": f"m{model}"},
                                    {"name": "canary", "value": candidate_of(model, i)},
                                    {"name": "stable", "value": stable_of(model)},
                                ],
                            }
                        },
                    ]
                }
            },
            "template": pod,
        },
    }


def _measurements(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for r in (run.get("status") or {}).get("metricResults") or [] for m in r.get("measurements") or []]


class ArgoFleet:
    def __init__(self, world: ScaleWorld, api: client.ApiClient) -> None:
        self.world = world
        self.custom = client.CustomObjectsApi(api)

    def _list(self, plural: str) -> list[dict[str, Any]]:
        resp: Any = self.custom.list_namespaced_custom_object(*ARGO, self.world.ns, plural, _preload_content=False)
        return list(json.loads(resp.data)["items"])

    def create(self, prometheus_url: str) -> None:
        w = self.world
        self.custom.create_namespaced_custom_object(
            *ARGO, w.ns, "analysistemplates", template(prometheus_url, w.interval)
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda i: self.custom.create_namespaced_custom_object(
                        *ARGO, w.ns, "rollouts", rollout(i, w.model_of(i), stable_of(w.model_of(i)))
                    ),
                    range(w.objects),
                )
            )

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            healthy = sum(1 for r in self._list("rollouts") if (r.get("status") or {}).get("phase") == "Healthy")
            if healthy >= self.world.objects:
                return
            time.sleep(3)  # polling the Rollouts
        raise TimeoutError(f"not every Rollout Healthy within {timeout:.0f} s")

    def roll_out(self, over_seconds: float) -> None:
        """Each Rollout to its candidate, at an even pace over ``over_seconds`` (as the ModelRollouts are made)."""
        w = self.world
        started = time.monotonic()

        def one(i: int) -> None:
            delay = started + over_seconds * i / w.objects - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the changes
            patch = {
                "spec": {"template": rollout(i, w.model_of(i), candidate_of(w.model_of(i), i))["spec"]["template"]}
            }
            self.custom.patch_namespaced_custom_object(*ARGO, w.ns, "rollouts", f"a{i}", patch)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, range(w.objects)))

    def runs(self) -> dict[str, dict[str, Any]]:
        return {r["metadata"]["name"]: r for r in self._list("analysisruns")}

    def wait_measuring(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            done = sum(1 for r in self.runs().values() if _measurements(r))
            if done >= self.world.objects or time.monotonic() > deadline:
                return done
            time.sleep(3)  # polling the AnalysisRuns


def _last_start(measurements: list[dict[str, Any]]) -> str | None:
    """When the newest measurement started (a run keeps only its last ten, so counting them says nothing)."""
    return max((m.get("startedAt") or "" for m in measurements), default=None)


def _window(runs: dict[str, dict[str, Any]], start: float, end: float, interval: int) -> tuple[int, list[float], int]:
    """Measurements started in [start, end), the lags of those (start minus the previous one's finish minus the
    interval), and the fewest any run made."""
    count, lags, fewest = 0, [], math.inf
    for run in runs.values():
        ms = sorted(_measurements(run), key=lambda m: m.get("startedAt") or "")
        mine = 0
        for prev, m in itertools.pairwise(ms):
            started, finished = parse_ts(m.get("startedAt")), parse_ts(prev.get("finishedAt"))
            if started is None or not start <= started < end:
                continue
            mine += 1
            if finished is not None:
                lags.append(max(0.0, started - finished - interval))
        count += mine
        fewest = min(fewest, mine)
    return count, lags, 0 if math.isinf(fewest) else int(fewest)


def _quantile(q: float, values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run_argo(
    cluster: LocalCluster,
    api: client.ApiClient,
    prom: LocalPrometheus,
    objects: int,
    *,
    interval: int,
    measure_seconds: float,
    log_dir: Path,
    restart: bool = True,
    down_seconds: float = 10.0,
) -> Result:
    world = ScaleWorld(
        cluster,
        api,
        prom,
        objects,
        interval=interval,
        log_dir=log_dir / "world",
        namespace=f"argo-scale-{objects}-{int(time.time())}",
    )
    controller = LocalArgoRollouts(cluster, log_dir / "argo-rollouts")
    fleet = ArgoFleet(world, api)
    notes: list[str] = []
    try:
        t0 = time.monotonic()
        controller.install()
        world.create_references(targets=False)  # namespace, nodes, exporter
        controller.start()
        fleet.create(prom.url)
        fleet.wait_healthy(timeout=240 + objects)
        setup = time.monotonic() - t0
        t1 = time.monotonic()
        fleet.roll_out(over_seconds=interval)
        measuring = fleet.wait_measuring(timeout=240 + 0.6 * objects)
        first = time.monotonic() - t1
        if measuring < objects:
            notes.append(f"only {measuring} of {objects} AnalysisRuns had measured {first:.0f} s after the change")
        time.sleep(interval)  # one more interval, so every run is in its steady rhythm
        assert controller.pid is not None
        q0, cpu0, w0 = prometheus_queries(prom.url), controller.cpu_seconds(), time.time()
        time.sleep(measure_seconds)  # the measurement window itself
        q1, cpu1, w1 = prometheus_queries(prom.url), controller.cpu_seconds(), time.time()
        count, lags, fewest = _window(fleet.runs(), w0, w1, interval)
        seconds = w1 - w0
        window = {
            "seconds": round(seconds, 1),
            "analyses": count,
            "analyses_per_second": count / seconds,
            "lag_p50": _quantile(0.5, lags),
            "lag_p99": _quantile(0.99, lags),
            "lag_mean": sum(lags) / len(lags) if lags else None,
            "prometheus_queries_per_second": (q1 - q0) / seconds,
            "cpu_seconds": cpu1 - cpu0,
            "cpu_share": (cpu1 - cpu0) / seconds,
            "min_analyses_per_rollout": fewest,
            "expected_analyses_per_rollout": math.floor(measure_seconds / interval),
        }
        peak = controller.peak_rss_mib()
        print(f"[scale] window at {objects}: {json.dumps(window)}, peak RSS {peak:.0f} MiB", flush=True)
        converge, overdue = None, 0
        if restart:
            try:
                converge, overdue = _converge(fleet, controller, interval, down_seconds, timeout=300 + objects)
            except TimeoutError as e:
                notes.append(f"no convergence after the restart: {e}")
        late = [n for n, r in fleet.runs().items() if len(_measurements(r)) < 1]
        return Result(
            system="Argo Rollouts",
            objects=objects,
            interval=interval,
            setup_seconds=round(setup, 1),
            first_analysis_seconds=round(first, 1),
            window=window,
            peak_rss_mib=round(peak, 1),
            restart_converge_seconds=None if converge is None else round(converge, 1),
            restart_overdue=overdue,
            late_rollouts=late,
            notes=notes,
        )
    finally:
        controller.stop()
        world.close()


def _converge(
    fleet: ArgoFleet, controller: LocalArgoRollouts, interval: int, down_seconds: float, timeout: float
) -> tuple[float, int]:
    """As for ModelRatchet: seconds from the start until every measurement that fell due was made."""
    controller.stop()
    frozen = {n: copy.deepcopy(_measurements(r)) for n, r in fleet.runs().items()}
    due = {n: (parse_ts(ms[-1].get("finishedAt")) or 0.0) + interval if ms else 0.0 for n, ms in frozen.items()}
    time.sleep(down_seconds)  # the outage itself
    started = time.time()
    overdue = sum(1 for t in due.values() if t <= started)
    controller.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.time()
        runs = fleet.runs()
        waiting = [
            n
            for n, t in due.items()
            if _last_start(_measurements(runs.get(n, {}))) == _last_start(frozen[n]) and t <= now - RESTART_SLACK
        ]
        if not waiting:
            return now - started, overdue
        time.sleep(1)  # polling the AnalysisRuns
    raise TimeoutError(f"measurements still overdue {timeout:.0f} s after the restart")
