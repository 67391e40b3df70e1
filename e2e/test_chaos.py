"""Chaos runs on the real cluster: the control plane restarted, Prometheus slow or answering garbage, and a
concurrent writer making the operator's status writes conflict, each in the middle of real rollouts.

Every run puts a regressed checkpoint (V3) and then a better one (V2) through the fault, and ends with the same
checks: V3 RolledBack and never written into the target (which stayed on V1), V2 Promoted, no history entry lost
or duplicated, the target on a validated checkpoint (status.stableCheckpoint, in status.lastGoodCheckpoints),
and the status within its bounds. Each run prints the faults it injected and what it checked.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.harness.chaos import FAULT_MODES, ChaosProxy, ConflictWriter, Mode, apiserver_requests, status_conflicts
from e2e.harness.cluster import LocalCluster
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import GROUP, V1, V2, V3, VERSION, Scenario, digits_baseline, rollout_spec
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NAME = "digits"
# The bounds the operator keeps status within (modelratchet.rollout.bounds).
MAX_STATUS_BYTES = 256 * 1024
MAX_MESSAGE = 1024
OUTAGE_SECONDS = 3.0
# What each Prometheus fault looks like from the operator's side (the problem text it records). The order keeps
# two modes with the same text apart, so a match proves the mode it follows was met.
PROMETHEUS_FAULTS: dict[Mode, str] = {
    "trickle": "no answer",
    "not_json": "not the Prometheus API",
    "stall": "no answer",
    "truncated_json": "not the Prometheus API",
    "error_500": "too large",
}
assert set(PROMETHEUS_FAULTS) == set(FAULT_MODES)


# ------------------------------------------------------------------------------------------------ reading


def _transient(e: BaseException) -> bool:
    """Errors a client sees while the API server or etcd is down or coming back."""
    if isinstance(e, ApiException):
        return e.status in (0, 429) or e.status >= 500
    return isinstance(e, urllib3.exceptions.HTTPError | OSError)


def _tolerant(read: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return read()
        except Exception as e:
            if _transient(e):
                return None
            raise

    return call


def _status(sc: Scenario) -> dict[str, Any]:
    resp: Any = sc.custom.get_namespaced_custom_object(
        GROUP, VERSION, sc.ns, "modelrollouts", NAME, _preload_content=False, _request_timeout=5
    )
    return dict(json.loads(resp.data).get("status") or {})


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def _brief(status: dict[str, Any]) -> str:
    keep = {k: v for k, v in status.items() if k != "history"}
    keep["history"] = [{k: h.get(k) for k in ("id", "checkpoint", "step", "verdict", "message")}
                       for h in status.get("history") or []][:8]
    return json.dumps(keep, indent=1)


# ------------------------------------------------------------------------------------------------ a run


@dataclass
class Run:
    """One chaos run: the scenario, what was injected and what was checked, for the printed summary."""

    fault: str
    sc: Scenario
    operator: OperatorProcess
    started: float = field(default_factory=time.monotonic)
    faults: int = 0
    details: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)  # every status read, for the bound checks

    def status(self) -> dict[str, Any]:
        status = _status(self.sc)
        self.seen.append(status)
        return status

    def wait(self, what: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120.0) -> dict[str, Any]:
        """The status once ``predicate`` holds; reads that fail while the control plane recovers are retried."""

        def check() -> dict[str, Any] | None:
            status = self.status()
            return status if predicate(status) else None

        try:
            result: dict[str, Any] = wait_for(_tolerant(check), timeout, interval=0.2, message=what)
        except TimeoutError as e:
            last = self.seen[-1] if self.seen else {}
            raise TimeoutError(
                f"{e}\nstatus: {_brief(last)}\noperator log ({self.operator.log_path}):\n{self.operator.log_tail(40)}"
            ) from None
        return result

    def phase(self, phase: str, timeout: float = 120.0, **want: Any) -> dict[str, Any]:
        return self.wait(
            f"phase {phase} {want or ''}",
            lambda s: s.get("phase") == phase and all(s.get(k) == v for k, v in want.items()),
            timeout,
        )

    def check(self, what: str) -> None:
        self.checked.append(what)

    def report(self, unit: str) -> None:
        took = time.monotonic() - self.started
        extra = f" ({'; '.join(self.details)})" if self.details else ""
        print(f"\n[chaos] {self.fault}: {self.faults} {unit} injected{extra} in {took:.0f} s; "
              f"checked: {', '.join(self.checked)}")


def _start(sc: Scenario, checkpoint: str, **spec: Any) -> None:
    sc.create("modelbaselines", NAME, digits_baseline(sc.model))
    sc.create("modelrollouts", NAME, rollout_spec(sc.target, NAME, checkpoint, **spec))


def _target_checkpoints(sc: Scenario) -> set[str]:
    """Every checkpoint the target's pod template ever carried: each template change leaves a ReplicaSet."""
    resp: Any = sc.apps.list_namespaced_replica_set(sc.ns, _preload_content=False, _request_timeout=10)
    out: set[str] = set()
    for rs in json.loads(resp.data)["items"]:
        owners = rs["metadata"].get("ownerReferences") or []
        if not any(o["kind"] == "Deployment" and o["name"] == sc.target for o in owners):
            continue
        for c in rs["spec"]["template"]["spec"]["containers"]:
            out |= {e["value"] for e in c.get("env") or [] if e["name"] == "MODEL_CHECKPOINT"}
    return out


def _pods_settled(sc: Scenario) -> bool:
    """No pod of the target or the canary is starting. kwok v0.7.0 does not retry a pod's Ready patch that fails,
    so an API server or etcd going down at that moment would leave the pod unready for good (a kubelet retries);
    the control-plane faults are injected only while no pod is starting."""
    for name in (sc.target, f"{sc.target}-canary"):
        try:
            resp: Any = sc.apps.read_namespaced_deployment(name, sc.ns, _preload_content=False, _request_timeout=5)
        except ApiException as e:
            if e.status == 404:
                continue
            raise
        dep = json.loads(resp.data)
        want, st = dep["spec"]["replicas"], dep.get("status") or {}
        counts = (st.get("replicas", 0), st.get("updatedReplicas", 0), st.get("readyReplicas", 0))
        if st.get("observedGeneration", 0) < dep["metadata"]["generation"] or counts != (want, want, want):
            return False
    return True


def _entries(status: dict[str, Any], checkpoint: str) -> list[dict[str, Any]]:
    return [h for h in status.get("history") or [] if h["checkpoint"] == checkpoint]


# ------------------------------------------------------------------------------------------------ checks


def _assert_history_is_clean(run: Run, status: dict[str, Any]) -> None:
    history = status.get("history") or []
    ids = [h["id"] for h in history]
    assert len(ids) == len(set(ids)), f"duplicate history entries: {ids}"
    assert ids == list(range(status["lastHistoryId"], status["lastHistoryId"] - len(ids), -1)), ids
    # What was read before is still there, unchanged: nothing was lost or rewritten by a later (retried) write.
    kept = {h["id"]: h for h in history}
    for earlier in run.seen:
        for h in earlier.get("history") or []:
            if h["id"] >= ids[-1]:
                assert kept.get(h["id"]) == h, f"history entry #{h['id']} changed or vanished"
    run.check(f"history #{ids[-1]}..#{ids[0]} contiguous, no duplicates, nothing rewritten")


def _assert_bounded(run: Run) -> None:
    for status in run.seen:
        size = len(json.dumps(status, separators=(",", ":")).encode())
        assert size <= MAX_STATUS_BYTES, f"status of {size} bytes"
        texts = [status.get("message") or "", *(c.get("message") or "" for c in status.get("conditions") or [])]
        for h in status.get("history") or []:
            texts += [h.get("message") or "", *(m.get("message") or "" for m in h.get("metrics") or [])]
        longest = max(len(t) for t in texts)
        assert longest <= MAX_MESSAGE, f"a status message of {longest} characters"
        assert len(status.get("history") or []) <= 50, "history over its default limit"
    run.check(f"status bounded in all {len(run.seen)} reads")


def _assert_rolled_back(run: Run, status: dict[str, Any], generation: int) -> None:
    sc = run.sc
    assert _condition(status, "RolledBack").get("reason") == "AnalysisFailed", _brief(status)
    assert V3 in status["rejectedCheckpoints"] and V3 not in status["lastGoodCheckpoints"]
    assert status["stableCheckpoint"] == V1
    assert any(h["verdict"] == "failed" for h in _entries(status, V3)), "the failing analysis is in history"
    assert sc.target_generation() == generation, "the target was never touched"
    assert V3 not in _target_checkpoints(sc), "the target never carried the regressed checkpoint"
    run.check("V3 RolledBack (AnalysisFailed), never in the target")


def _assert_settled(run: Run, checkpoint: str) -> dict[str, Any]:
    """The canary gone, the target on ``checkpoint``, which is the validated stable one; no Degraded left."""
    sc = run.sc
    wait_for(_tolerant(lambda: sc.canary() is None), 60, message="canary gone")
    wait_for(_tolerant(lambda: sc.target_checkpoint() == checkpoint and sc.target_available()), 60,
             message=f"target serving {checkpoint}")
    status = run.wait("Degraded cleared", lambda s: _condition(s, "Degraded").get("status") != "True", 60)
    assert status["stableCheckpoint"] == checkpoint
    assert checkpoint in status["lastGoodCheckpoints"]
    assert run.operator.alive(), run.operator.log_tail()
    run.check(f"target on {checkpoint.rsplit('/', 1)[-1]} = stableCheckpoint, in lastGoodCheckpoints")
    return status


def _announced_at_most_once(run: Run, reason: str) -> None:
    reasons = [r for r, _ in run.sc.events(NAME)]
    assert reasons.count(reason) <= 1, f"{reason} announced {reasons.count(reason)} times"


# ------------------------------------------------------------------------------------------------ runs


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_restarted_mid_rollout(
    scenario: Scenario, operator: OperatorProcess, local_cluster: LocalCluster, component: str
) -> None:
    if local_cluster.run_dir is None:
        pytest.skip("the cluster's processes are not run from a local run dir (e.g. kind): nothing to restart")
    run = Run(f"{component}-restart", scenario, operator)
    signals = iter([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL])

    def restart(when: dict[str, Any]) -> None:
        assert when.get("phase") in ("Progressing", "Paused"), f"fault meant for mid-rollout, got {_brief(when)}"
        sig = next(signals)
        # Down for longer than an analysis interval: a look falls due while the operator cannot record it.
        down = local_cluster.restart(component, sig=sig, down_for=OUTAGE_SECONDS)
        run.faults += 1
        run.details.append(f"{sig.name} at step {when.get('currentStep')}, back in {down:.1f} s")

    def at(step: int, checkpoint: str) -> Callable[[dict[str, Any]], bool]:
        def ready(s: dict[str, Any]) -> bool:
            reached = s.get("canaryCheckpoint") == checkpoint and (s.get("currentStep") or 0) >= step
            return reached and _pods_settled(scenario)

        return ready

    generation = scenario.target_generation()
    _start(scenario, V3)
    # Crash it as soon as the canary serves (step 1): the first analysis, and so the verdict, is an interval away.
    restart(run.wait("V3 canary serving", at(1, V3)))
    status = run.phase("RolledBack")
    _assert_rolled_back(run, status, generation)
    _assert_settled(run, V1)

    scenario.patch_spec("modelrollouts", NAME, {"checkpoint": V2})
    first = status["lastHistoryId"]
    if component == "etcd":
        # Once V2 has an analysis on record. (Every API server restart stalls pod starts for tens of seconds, longer
        # when restarts follow each other: its clients, kwok included, come back with their watch backoffs.)
        restart(run.wait("V2 analysed", lambda s: at(1, V2)(s) and s.get("lastHistoryId", 0) > first))
    # In its second analyze step, after the canary scaled up: the promotion follows the outage.
    restart(run.wait("V2 at step 3", at(3, V2)))
    status = run.phase("Promoted", stableCheckpoint=V2)
    status = _assert_settled(run, V2)
    assert {h["verdict"] for h in _entries(status, V2)} <= {"passed", "warning", "inconclusive"}
    assert _target_checkpoints(scenario) == {V1, V2}
    run.check("V2 Promoted")
    _assert_history_is_clean(run, status)
    _announced_at_most_once(run, "Promoted")
    _assert_bounded(run)
    errors = operator.metrics().get(
        f'modelratchet_reconcile_errors_total{{kind="ModelRollout",namespace="{scenario.ns}"}}', 0.0
    )
    run.details.append(f"{errors:.0f} reconcile errors while down")
    run.report("restarts")


def test_prometheus_slow_and_answering_garbage(
    scenario: Scenario, operator: OperatorProcess, local_cluster: LocalCluster, prometheus: Any, tmp_path: Path
) -> None:
    """Behind a proxy that stalls, trickles or answers garbage, every analysis is inconclusive: the rollout holds
    (onInconclusive: hold) and neither promotes nor rolls back; back to transparent, it completes the right way."""
    operator.stop()  # this run's operator talks to Prometheus through the proxy only
    proxy = ChaosProxy(prometheus.url)
    proxy.start()
    proxied = OperatorProcess(Path(local_cluster.kubeconfig), proxy.url, log_dir=tmp_path)
    run = Run("prometheus-slow-garbage", scenario, proxied)
    try:
        proxied.start()
        generation = scenario.target_generation()
        analysis = {"interval": "2s", "failureLimit": 0, "inconclusiveLimit": 1, "onInconclusive": "hold"}

        def faults(checkpoint: str) -> None:
            """Every fault mode in turn, each until the operator has recorded an analysis that met it."""
            first: int | None = None  # the first entry that met a fault: from there on, all are inconclusive
            reads = len(run.seen)
            for mode, text in PROMETHEUS_FAULTS.items():
                mark = run.status().get("lastHistoryId") or 0
                proxy.set_mode(mode)

                def meeting(s: dict[str, Any], mark: int = mark, text: str = text) -> list[int]:
                    return [h["id"] for h in _entries(s, checkpoint) if h["id"] > mark and text in json.dumps(h)]

                status = run.wait(f"an analysis meeting {mode}", lambda s: bool(meeting(s)), 60)
                first = min(meeting(status)) if first is None else first
            status = run.phase("Paused")
            assert _condition(status, "Paused")["reason"] == "WaitingForData", "onInconclusive: hold"
            assert first is not None
            during = [h["verdict"] for h in _entries(status, checkpoint) if h["id"] >= first]
            assert set(during) == {"inconclusive"}, during
            assert not any(s.get("phase") in ("Promoted", "RolledBack") for s in run.seen[reads:]), "no verdict"
            assert scenario.canary() is not None and scenario.target_generation() == generation
            proxy.set_mode("transparent")
            run.check(f"{checkpoint.rsplit('/', 1)[-1]}: {len(during)} analyses inconclusive, held (WaitingForData)")

        # V3 meets the faults from its first analysis on, so no verdict can come before them.
        proxy.set_mode("trickle")
        _start(scenario, V3, analysis=analysis)
        faults(V3)
        status = run.phase("RolledBack")
        _assert_rolled_back(run, status, generation)
        _assert_settled(run, V1)

        # V2 first shows it passes, then meets the faults.
        last = status["lastHistoryId"]
        scenario.patch_spec("modelrollouts", NAME, {"checkpoint": V2})
        run.wait("V2 analysed", lambda s: s.get("canaryCheckpoint") == V2 and s.get("lastHistoryId", 0) > last)
        faults(V2)
        status = run.phase("Promoted", stableCheckpoint=V2)
        status = _assert_settled(run, V2)
        assert any(h["verdict"] == "passed" for h in _entries(status, V2))
        run.check("V2 held (WaitingForData) through the faults, then Promoted")
        _assert_history_is_clean(run, status)
        _announced_at_most_once(run, "Promoted")
        _assert_bounded(run)
        metrics = proxied.metrics()
        errors = sum(v for k, v in metrics.items() if k.startswith("modelratchet_reconcile_errors_total"))
        assert errors == 0, "a misbehaving Prometheus is a verdict input, not a reconcile error"
        assert "Traceback" not in proxied.log_text(), proxied.log_tail()
        run.check("no reconcile error, no traceback")
        inconclusive = metrics.get(f'modelratchet_analyses_total{{namespace="{scenario.ns}",rollout="{NAME}",'
                                   'verdict="inconclusive"}', 0)
        run.faults = sum(proxy.faults.values())
        run.details.append(", ".join(f"{m} {n}" for m, n in proxy.faults.items()))
        run.details.append(f"{inconclusive:.0f} inconclusive analyses recorded")
        run.report("faulty answers")
    finally:
        proxied.stop()
        proxy.stop()
        operator.start()


def test_status_write_conflicts_during_analyses(
    scenario: Scenario, operator: OperatorProcess, local_cluster: LocalCluster, kube_api: client.ApiClient
) -> None:
    """A concurrent writer keeps bumping the rollout's resourceVersion: the operator's guarded status writes meet
    409s and decide again on the same observations, so no analysis is lost and none is recorded twice."""
    run = Run("status-conflicts", scenario, operator)
    generation = scenario.target_generation()
    conflicts_before = apiserver_requests(local_cluster, status_conflicts)
    # Three failed analyses are needed before the rollback: each of them must make it into history.
    _start(scenario, V3, analysis={"interval": "2s", "failureLimit": 2, "inconclusiveLimit": 3})
    with ConflictWriter(kube_api, scenario.ns, NAME) as writer:
        status = run.phase("RolledBack")
        _assert_rolled_back(run, status, generation)
        _assert_settled(run, V1)
        failed = [h for h in _entries(status, V3) if h["verdict"] == "failed"]
        assert len(failed) == status["failedAnalyses"] == 3, [h["verdict"] for h in _entries(status, V3)]
        at_step = [h for h in _entries(status, V3) if h["step"] == 1]
        assert len(at_step) == status["analysisCount"], "analysisCount agrees with the entries recorded"
        run.check("3 failed analyses of V3 recorded (failureLimit 2), counters agree with history")

        scenario.patch_spec("modelrollouts", NAME, {"checkpoint": V2})
        run.phase("Promoted", stableCheckpoint=V2)
        status = _assert_settled(run, V2)
        run.check("V2 Promoted")
    assert not writer.errors, writer.errors[:3]
    conflicts = apiserver_requests(local_cluster, status_conflicts) - conflicts_before
    assert conflicts > 0, "the writer never made a status write conflict: the run injected nothing"
    _assert_history_is_clean(run, status)
    for reason in ("RolledBack", "Promoted"):
        assert [r for r, _ in scenario.events(NAME)].count(reason) == 1, f"{reason} announced exactly once"
    run.check("RolledBack and Promoted announced once each")
    _assert_bounded(run)
    run.faults = int(conflicts)
    run.details.append(f"{writer.writes} annotation writes")
    run.report("status-write 409s")
