"""Flagger v1.36.1 for real on the data plane: its Gateway API router moves the weights of the HTTPRoute it makes on
the bench's Traefik Gateway, and its analysis (bench/peers/flagger.yaml) judges the canary from Prometheus.

Two rollouts at once, in their own namespaces: a regressed checkpoint, which Flagger must roll back after its failed
checks (not for any other reason, such as a missed deadline), and a better one, which it must promote; while the
better one progresses, the share of answers the client gets from the candidate at each weight Flagger set must be
that weight. What would break here: a config Flagger rejects, a router Traefik does not follow (weights ignored, a
route not accepted), the controller failing under upstream's RBAC, a status the benchmark misreads.
"""

from __future__ import annotations

import itertools
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bench.peers.__main__ import Controller, run_systems
from bench.peers.runner import RATE, TIMEOUT, Cluster
from bench.peers.systems import PROGRESSING, PROMOTED, ROLLED_BACK, Flagger
from e2e.harness.flagger import LocalFlagger, flagger  # noqa: F401  (the fixture)
from e2e.harness.model_servers import checkpoint_file
from e2e.harness.scenario import V1, V2, Scenario, _model_io

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SETTLE = 1.5  # seconds after a weight change before answers count for it: Traefik applies routes within 0.5 s
MIN_ANSWERS = 100  # a weight is judged only over this many answers (binomial sd at 10 %: under 0.03)
TOLERANCE = 0.08


def _shares(samples: list[tuple[float, int, dict[str, int]]]) -> dict[int, tuple[int, int]]:
    """(candidate answers, all answers) per canary weight, from (time, weight, answers so far) samples, counting
    only answers that came at least SETTLE seconds after the weight was set and before the next change."""
    totals: dict[int, tuple[int, int]] = {}
    since = samples[0][0]
    for (t0, w0, a0), (t1, w1, a1) in itertools.pairwise(samples):
        if w1 != w0:
            since = t1
            continue
        if t0 - since < SETTLE:
            continue
        cand = a1.get(V2, 0) - a0.get(V2, 0)
        both = cand + a1.get(V1, 0) - a0.get(V1, 0)
        c, n = totals.get(w0, (0, 0))
        totals[w0] = (c + cand, n + both)
    return totals


def _promote_better(env: Cluster, system: Flagger, tmp_path: Path) -> tuple[str, dict[int, tuple[int, int]], str]:
    ns = f"flagger-better-{secrets.token_hex(3)}"
    client.CoreV1Api(env.api).create_namespace({"metadata": {"name": ns}})  # type: ignore[arg-type]
    sc = Scenario(env.api, ns, env.prometheus, model=f"digits-{ns}", log_dir=tmp_path / ns,
                  data_plane=env.data_plane)
    try:
        sc.start_servers()
        sc.publish(V2, checkpoint_file("v2-better"))
        system.deploy(sc, V1)
        sc.start_traffic(rate=RATE, max_duration=TIMEOUT + 60)
        system.roll_out(sc, V1, V2)
        samples: list[tuple[float, int, dict[str, int]]] = []
        deadline = time.monotonic() + TIMEOUT
        progress = system.progress(sc, V2)
        while progress.state == PROGRESSING and time.monotonic() < deadline:
            status = system.get(sc).get("status") or {}
            if status.get("phase") == "Progressing":
                samples.append((time.monotonic(), int(status.get("canaryWeight") or 0), sc.answers()))
            time.sleep(0.5)
            progress = system.progress(sc, V2)
        return progress.state, _shares(samples) if len(samples) > 1 else {}, progress.detail
    finally:
        system.close(sc)
        client.CoreV1Api(env.api).delete_namespace(ns)


def test_flagger_rolls_back_the_regressed_and_promotes_the_better_through_the_gateway(
    kube_api: Any, prometheus: Any, data_plane: Any, flagger: LocalFlagger, tmp_path: Path,  # noqa: F811
) -> None:
    env = Cluster(api=kube_api, prometheus=prometheus, data_plane=data_plane, log_dir=tmp_path)
    system = Flagger(prometheus.url)
    running = Controller(lambda: None, lambda: None, lambda: flagger.pid)
    _model_io()  # loaded once here: its loader is not safe for two threads publishing checkpoints at once
    with ThreadPoolExecutor(1) as pool:
        regressed = pool.submit(run_systems, env, [(system, running)], ["regressed"], 1)
        better, shares, detail = _promote_better(env, system, tmp_path)
        runs, _ = regressed.result()
    run = runs[0]
    print(f"[figure] Flagger regressed: {run['outcome']} {run['seconds']} s after the candidate first answered; "
          f"candidate answered {run['candidate_answers']}; events {run['analyses']}")
    print(f"[figure] Flagger better: {better} ({detail}); candidate share per weight "
          + ", ".join(f"{w}%: {c}/{n}" for w, (c, n) in sorted(shares.items())))
    assert flagger.pid is not None, f"flagger died:\n{flagger.log_tail()}"
    assert run["outcome"] == ROLLED_BACK, (run, flagger.log_tail())
    assert run["candidate_answers"] > 0, "the regressed candidate served through the gateway before the rollback"
    assert any("Halt" in e and "accuracy-ratio" in e for e in run["analyses"]), \
        f"the rollback came from the accuracy checks: {run['analyses']}"
    assert better == PROMOTED, (detail, flagger.log_tail())
    judged = {w: c / n for w, (c, n) in shares.items() if w > 0 and n >= MIN_ANSWERS}
    assert judged, f"no weight held long enough to judge the split: {shares}"
    for weight, share in judged.items():
        assert abs(share - weight / 100) <= TOLERANCE, f"Traefik sent {share:.2f} to the canary at weight {weight}"
