"""One measurement of the operator at N ModelRollouts: set up, analyse, measure a window, restart, converge."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from e2e.harness.cluster import LocalCluster
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.prometheus import LocalPrometheus
from e2e.harness.wait import wait_for

from .measure import Result, Window, parse_ts, peak_rss_mib
from .world import REPO, ScaleWorld

RESTART_SLACK = 2.0  # seconds after its due time an analysis may start and still count as on time
TICK_SECONDS = 30.0  # the chart's default (values.yaml operator.tickSeconds)


def analysed_counts(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Analyses each rollout made between two reads of the statuses (history ids are consecutive)."""
    return {
        name: int(s.get("lastHistoryId") or 0) - int((before.get(name) or {}).get("lastHistoryId") or 0)
        for name, s in after.items()
    }


def stale(statuses: dict[str, dict[str, Any]], interval: float, now: float, slack: float) -> list[str]:
    """Rollouts whose last analysis is older than an interval (plus slack) at ``now``: one is overdue."""
    out = []
    for name, s in statuses.items():
        last = parse_ts(s.get("lastAnalysisAt"))
        if last is None or now - last > interval + slack:
            out.append(name)
    return sorted(out)


def operator_for(
    cluster: LocalCluster,
    prom: LocalPrometheus,
    namespace: str,
    log_dir: Path,
    profile: Path | None,
    operator_src: Path | None = None,
    tick_seconds: float = TICK_SECONDS,
) -> OperatorProcess:
    """The operator restricted to the benchmark's namespace; ``operator_src``: another checkout's operator/ folder
    (e.g. an earlier commit's, for before/after figures), imported ahead of the installed one."""
    paths: list[str] = [] if operator_src is None else [str(operator_src)]
    env: dict[str, str] = {}
    if profile is not None:
        paths += [str(REPO / "bench" / "scale" / "profile_site"), str(REPO)]
        env["MODELRATCHET_BENCH_PROFILE"] = str(profile)
    if paths:
        env["PYTHONPATH"] = ":".join(paths)
    return OperatorProcess(
        cluster.kubeconfig, prom.url, namespaces=[namespace], tick_seconds=tick_seconds, log_dir=log_dir, extra_env=env
    )


def converge_after_restart(
    world: ScaleWorld, operator: OperatorProcess, *, down_seconds: float, timeout: float
) -> tuple[float, int]:
    """Stops the operator for ``down_seconds``, starts it again, and returns the seconds from the start until every
    analysis that fell due (more than RESTART_SLACK ago) was made, and how many were overdue at the start."""
    operator.stop()
    frozen = world.statuses()  # nothing writes them while the operator is down
    due = {n: (parse_ts(s.get("lastAnalysisAt")) or 0.0) + world.interval for n, s in frozen.items()}
    time.sleep(down_seconds)  # the outage itself
    started = time.time()
    overdue = sum(1 for t in due.values() if t <= started)
    operator.start()

    def converged() -> float | None:
        now = time.time()
        statuses = world.statuses()
        waiting = [
            n
            for n, s in statuses.items()
            if s.get("lastAnalysisAt") == frozen[n].get("lastAnalysisAt") and due[n] <= now - RESTART_SLACK
        ]
        return None if waiting else now - started

    return wait_for(converged, timeout=timeout, interval=1.0, message="every overdue analysis made"), overdue


def run_modelratchet(
    cluster: LocalCluster,
    api: client.ApiClient,
    prom: LocalPrometheus,
    objects: int,
    *,
    interval: int,
    measure_seconds: float,
    log_dir: Path,
    profile: Path | None = None,
    restart: bool = True,
    down_seconds: float = 10.0,
    operator_src: Path | None = None,
    tick_seconds: float = TICK_SECONDS,
) -> Result:
    world = ScaleWorld(cluster, api, prom, objects, interval=interval, log_dir=log_dir / "world")
    operator = operator_for(cluster, prom, world.ns, log_dir, profile, operator_src, tick_seconds)
    try:
        t0 = time.monotonic()
        world.create_references()
        setup = time.monotonic() - t0
        operator.start()
        t1 = time.monotonic()
        world.create_rollouts(over_seconds=interval)
        analysing = world.wait_analysing(timeout=240 + 0.6 * objects)
        first = time.monotonic() - t1
        notes = (
            []
            if analysing >= objects
            else [
                f"only {analysing} of {objects} rollouts had analysed {first:.0f} s "
                "after they were created; measured anyway"
            ]
        )
        time.sleep(interval)  # one more interval, so every rollout is in its steady rhythm
        assert operator.proc is not None
        before = world.statuses()
        window = Window(operator, prom.url).open()
        time.sleep(measure_seconds)  # the measurement window itself
        measured = window.close()
        after = world.statuses()
        counts = analysed_counts(before, after)
        expected = math.floor(measure_seconds / interval)
        measured["min_analyses_per_rollout"] = min(counts.values())
        measured["expected_analyses_per_rollout"] = expected
        late = sorted(n for n, c in counts.items() if c < expected)
        overdue = stale(after, interval, time.time(), slack=5.0)
        peak = peak_rss_mib(operator.proc.pid)
        print(f"[scale] window at {objects}: {json.dumps(measured)}, peak RSS {peak:.0f} MiB", flush=True)
        converge, overdue_at_restart = (None, 0)
        if restart:
            try:
                converge, overdue_at_restart = converge_after_restart(
                    world, operator, down_seconds=down_seconds, timeout=300 + objects
                )
            except TimeoutError as e:
                notes.append(f"no convergence after the restart: {e}")
        return Result(
            system="ModelRatchet",
            objects=objects,
            interval=interval,
            setup_seconds=round(setup, 1),
            first_analysis_seconds=round(first, 1),
            window=measured,
            peak_rss_mib=round(peak, 1),
            restart_converge_seconds=None if converge is None else round(converge, 1),
            restart_overdue=overdue_at_restart,
            late_rollouts=sorted(set(late) | set(overdue)),
            notes=notes,
        )
    finally:
        operator.stop()
        world.close()
