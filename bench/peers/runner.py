"""One run: a fresh namespace, the stable checkpoint serving through the gateway, labelled traffic, a rollout of
the candidate, and the clock read at the client until the system has promoted or rolled back.

Times start when the client first gets an answer from the candidate ("first serving"): both systems are timed
from the same event, whatever each did before (creating pods, waiting for them to be ready).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.peers.systems import PROGRESSING, ROLLED_BACK, System, candidate_pods
from e2e.harness.model_servers import checkpoint_file
from e2e.harness.scenario import V1, V2, V3, Scenario

AA = "s3://models/digits/v1-again"  # v1's file under another URI: the same model, told apart by its label
RATE = 30.0  # labelled requests per second through the gateway, both systems
LOW_RATE = 5.0
OUTAGE_AFTER = 6.0  # seconds after first serving: one analysis interval in
OUTAGE_SECONDS = 30.0
POLL = 0.2
TIMEOUT = 180.0


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    candidate: str
    file: str  # the shipped checkpoint served under `candidate`
    rate: float = RATE
    outage: bool = False
    expected: str = "promoted"  # what a correct system does


SCENARIOS = {
    s.name: s
    for s in (
        ScenarioSpec("regressed", V3, "v3-regressed", expected=ROLLED_BACK),
        ScenarioSpec("better", V2, "v2-better"),
        ScenarioSpec("A/A", AA, "v1-good"),
        ScenarioSpec("low traffic", V3, "v3-regressed", rate=LOW_RATE, expected=ROLLED_BACK),
        ScenarioSpec("Prometheus outage", V2, "v2-better", outage=True),
    )
}


@dataclass
class RunResult:
    system: str
    scenario: str
    repeat: int
    outcome: str  # promoted | rolled back | timeout
    seconds: float | None  # first serving -> promoted, or -> rolled back with no candidate pod left
    candidate_answers: int  # answered by the candidate, counted at the client
    stable_answers: int
    failed_requests: int
    message: str
    analyses: list[str] = field(default_factory=list)
    outage: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Cluster:
    """What every run shares: the API client, Prometheus and the data plane (gateway, pods, discovery)."""

    api: Any
    prometheus: Any
    data_plane: Any
    log_dir: Any
    namespaces: list[str] = field(default_factory=list)


def run_once(system: System, spec: ScenarioSpec, repeat: int, env: Cluster,
             say: Callable[[str], None] = print) -> RunResult:
    from kubernetes import client

    ns = f"peers-{system.name.split()[0].lower()}-{secrets.token_hex(3)}"
    client.CoreV1Api(env.api).create_namespace({"metadata": {"name": ns}})  # type: ignore[arg-type]
    env.namespaces.append(ns)
    sc = Scenario(env.api, ns, env.prometheus, model=f"digits-{ns}", log_dir=env.log_dir / ns,
                  data_plane=env.data_plane)
    try:
        sc.start_servers()
        sc.publish(spec.candidate, checkpoint_file(spec.file))
        system.deploy(sc, V1)
        sc.start_traffic(rate=spec.rate, max_duration=TIMEOUT + 120)
        system.roll_out(sc, V1, spec.candidate)
        result = _follow(system, spec, repeat, sc, env)
    finally:
        try:
            system.close(sc)
        finally:
            if env.prometheus.pid is None:  # a failed run must not leave the next without Prometheus
                env.prometheus.start()
            client.CoreV1Api(env.api).delete_namespace(ns)
    say(f"  {system.name:14} {spec.name:18} #{repeat}: {result.outcome:12} "
        f"{'' if result.seconds is None else f'{result.seconds:6.1f} s'} candidate answered {result.candidate_answers}"
        f" | {result.message[:90]}")
    return result


def _follow(system: System, spec: ScenarioSpec, repeat: int, sc: Scenario, env: Cluster) -> RunResult:
    start = time.monotonic()
    first: float | None = None
    outage: dict[str, float] = {}
    seconds: float | None = None
    outcome = "timeout"
    progress = system.progress(sc, spec.candidate)
    while time.monotonic() - start < TIMEOUT:
        now = time.monotonic()
        if first is None and sc.answers().get(spec.candidate, 0) > 0:
            first = now
        if spec.outage and first is not None:
            if "stopped" not in outage and now - first >= OUTAGE_AFTER:
                env.prometheus.stop()
                outage["stopped"] = round(time.monotonic() - first, 1)
            elif "started" not in outage and "stopped" in outage and now - first >= outage["stopped"] + OUTAGE_SECONDS:
                env.prometheus.start()
                outage["started"] = round(time.monotonic() - first, 1)
        progress = system.progress(sc, spec.candidate)
        done = progress.state != PROGRESSING
        if done and progress.state == ROLLED_BACK and candidate_pods(sc, spec.candidate):
            done = False  # rolled back in the status; the candidate's pods are still on their way out
        if done:
            outcome = progress.state
            seconds = time.monotonic() - (first if first is not None else start)
            break
        time.sleep(POLL)
    if "stopped" in outage and "started" not in outage:
        env.prometheus.start()
    time.sleep(2.0)  # answers in flight when the rollout ended reach the client
    assert sc.traffic is not None
    sc.traffic.stop()
    answers = sc.answers()
    stats = sc.traffic.stats()
    analyses: list[str] = getattr(system, "analyses", lambda _sc: [])(sc)
    return RunResult(
        system=system.name, scenario=spec.name, repeat=repeat, outcome=outcome,
        seconds=None if seconds is None else round(seconds, 1),
        candidate_answers=answers.get(spec.candidate, 0), stable_answers=answers.get(V1, 0),
        failed_requests=int(stats.no_answer), message=progress.detail, analyses=analyses, outage=outage,
    )
