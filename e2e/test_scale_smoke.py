"""The scale benchmark's code path at 20 ModelRollouts, so it cannot rot (bench/scale runs it at 100 to 1,000).

20 rollouts, two models sharing their baselines, judged every 10 s from the synthetic exporter through the real
Prometheus by one operator restricted to the namespace: every rollout keeps its rhythm (no rollout misses an
interval over the window), the operator's lag and Prometheus's query counters are read, and after a 5 s outage
every overdue analysis is made. It asserts behaviour, not speed: the figures are printed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.scale.run import run_modelratchet
from bench.scale.world import REQUESTS_PER_ANALYSIS
from e2e.harness.operator_proc import OperatorProcess

OBJECTS = 20
INTERVAL = 10
WINDOW = 35.0


def test_twenty_rollouts_each_analysed_every_interval_and_caught_up_after_a_restart(
    local_cluster: Any, kube_api: Any, crds: Any, prometheus: Any, operator: OperatorProcess, tmp_path: Path
) -> None:
    operator.stop()  # the session's operator watches every namespace: this one must be the only one acting here
    try:
        result = run_modelratchet(
            local_cluster,
            kube_api,
            prometheus,
            OBJECTS,
            interval=INTERVAL,
            measure_seconds=WINDOW,
            log_dir=tmp_path,
            down_seconds=5.0,
        )
    finally:
        operator.start(timeout=120)  # the session's operator back for the tests after this one
    print(f"\n[scale smoke] {json.dumps(result.to_json())}")
    window = result.window
    assert result.notes == [], result.notes  # every rollout made its first analysis, and caught up after the restart
    # Every rollout was analysed once per interval over the window, and none was overdue at its end.
    assert window["min_analyses_per_rollout"] >= math.floor(WINDOW / INTERVAL), window
    assert result.late_rollouts == []
    assert window["errors"] == 0
    # Each analysis was timed from its due time, and asked Prometheus its four queries in one request (the
    # window's edges may cut one analysis per rollout from its request).
    assert window["lag_p99"] is not None and window["analyses"] >= OBJECTS * math.floor(WINDOW / INTERVAL)
    requests = window["prometheus_queries_per_second"] * window["seconds"]
    expected = window["analyses"] * REQUESTS_PER_ANALYSIS
    assert expected - OBJECTS <= requests <= expected + OBJECTS, (requests, window["analyses"])
    # The operator was down longer than nothing: some analyses fell due meanwhile, and all were made after it.
    assert result.restart_overdue > 0 and result.restart_converge_seconds is not None
    assert result.peak_rss_mib > 0
