"""End to end: real kube-apiserver + kwok, real Prometheus, model servers as pods behind a Service and a real
gateway (the data plane), the operator as a process."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import V1, V2, V3, V4, Scenario, digits_baseline, rollout_spec
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def _assert_history_is_clean(status: dict[str, Any]) -> None:
    history = status.get("history") or []
    ids = [h["id"] for h in history]
    assert ids == sorted(ids, reverse=True), "history is newest first"
    assert len(ids) == len(set(ids)), f"duplicate history entries: {ids}"
    assert ids == list(range(status["lastHistoryId"], status["lastHistoryId"] - len(ids), -1)), ids


def _recorded_once(sc: Scenario, name: str, reason: str) -> None:
    """The Event is posted right after the status that records the transition: wait for it, then count."""
    wait_for(lambda: reason in [r for r, _ in sc.events(name)], timeout=30, message=f"{reason} event")
    assert [r for r, _ in sc.events(name)].count(reason) == 1, f"{reason} recorded exactly once"


def _setup(sc: Scenario, checkpoint: str, *, baseline: dict[str, Any] | None = None, **spec: Any) -> str:
    sc.create("modelbaselines", "digits", baseline or digits_baseline(sc.model))
    sc.create("modelrollouts", "digits", rollout_spec(sc.target, "digits", checkpoint, **spec))
    return "digits"


def test_better_checkpoint_is_promoted_through_every_step(scenario: Scenario) -> None:
    name = _setup(scenario, V2)
    status = scenario.wait_phase(name, "Promoted", timeout=120)
    assert scenario.target_checkpoint() == V2
    assert scenario.canary() is None
    assert status["stableCheckpoint"] == V2
    assert status["lastGoodCheckpoints"][:2] == [V2, V1]
    history = status["history"]
    _assert_history_is_clean(status)
    # Two analyze steps of 6 s and 4 s at a 2 s interval: at least one analysis each, all of the candidate.
    assert {h["step"] for h in history} == {1, 3}
    for h in history:
        print(f"  #{h['id']} step {h['step']} {h['verdict']}: {h['message']}")
    assert all(h["checkpoint"] == V2 and h["verdict"] != "failed" for h in history)
    # Each analyze step ends on a conclusive pass (an early look may still lack samples).
    for step in (1, 3):
        assert next(h for h in history if h["step"] == step)["verdict"] in ("passed", "warning")
    accuracy = next(m for m in history[0]["metrics"] if m["metric"] == "accuracy")
    assert accuracy["baseline"] is not None and accuracy["value"] >= accuracy["baseline"] * 0.95
    _recorded_once(scenario, name, "Promoted")
    assert "RolloutStarted" in [r for r, _ in scenario.events(name)]
    mb = scenario.get("modelbaselines", "digits")["status"]
    assert mb["usedBy"] == ["digits"] and mb["metricCount"] == 2
    assert mb["lastValidation"]["checkpoint"] == V2


def test_regressed_checkpoint_is_rolled_back_fast(scenario: Scenario) -> None:
    generation = scenario.target_generation()
    name = _setup(scenario, V3)
    wait_for(lambda: scenario.canary() is not None, timeout=60, message="canary created")
    # Watch closely: the time from the failing analysis to the canary gone is the figure that matters.
    failed_at: datetime | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = scenario.status(name)
        failing = [h for h in status.get("history") or [] if h["verdict"] == "failed"]
        if failing and failed_at is None:
            failed_at = datetime.fromisoformat(failing[-1]["time"].replace("Z", "+00:00"))
        if failed_at is not None and scenario.canary() is None:
            break
        time.sleep(0.05)
    assert failed_at is not None, "no failing analysis recorded"
    gone_at = datetime.now(UTC)
    seconds = (gone_at - failed_at).total_seconds()
    print(f"\n[figure] failing analysis -> canary gone: {seconds:.2f} s (interval 2 s)")
    assert scenario.canary() is None, "the canary was still there when the watch gave up"
    status = scenario.wait_phase(name, "RolledBack", timeout=30)
    assert scenario.target_checkpoint() == V1
    assert scenario.target_generation() == generation, "the target was never touched"
    assert V3 in status["rejectedCheckpoints"]
    assert _condition(status, "RolledBack")["reason"] == "AnalysisFailed"
    accuracy = next(m for m in status["history"][0]["metrics"] if m["metric"] == "accuracy")
    assert accuracy["outcome"] == "failed" and accuracy["severity"] == "critical"
    # The condition keeps why; status.message moves on at the next look to what to do about the rejected checkpoint.
    assert "accuracy" in _condition(status, "RolledBack")["message"]


def test_a_candidate_whose_pods_never_start_is_rolled_back_at_the_progress_deadline(scenario: Scenario) -> None:
    scenario.stop_server(V2)  # v2 leaves the model store: its pods fail to load it and never become ready
    generation = scenario.target_generation()
    name = _setup(scenario, V2, progressDeadline="15s")
    wait_for(lambda: scenario.canary() is not None, timeout=60, message="canary created")
    status = scenario.wait_phase(name, "RolledBack", timeout=90)
    rolled_back = _condition(status, "RolledBack")
    assert rolled_back["reason"] == "ProgressDeadlineExceeded"
    assert f"step 1/4 still waiting for 1 canary pod(s) of {V2} to be ready after 15s" in rolled_back["message"]
    assert status["rejectedCheckpoints"] == [V2] and not status.get("history"), "never analysed: it never served"
    assert scenario.canary() is None and scenario.target_checkpoint() == V1
    assert scenario.target_generation() == generation, "the target was never touched"
    _recorded_once(scenario, name, "RolledBack")


@pytest.mark.parametrize("policy", ["proceed", "block"])
def test_warning_only_regression_follows_warning_policy(scenario: Scenario, policy: str) -> None:
    name = _setup(scenario, V4, analysis={"interval": "2s", "warningPolicy": policy})
    if policy == "proceed":
        status = scenario.wait_phase(name, "Promoted", timeout=120)
        assert scenario.target_checkpoint() == V4
        assert any(h["verdict"] == "warning" for h in status["history"]), "the slowdown was recorded"
    else:
        status = scenario.wait_phase(
            name, "Paused", timeout=120, also=lambda s: _condition(s, "Paused").get("reason") == "WarningBlocked"
        )
        assert scenario.target_checkpoint() == V1
        assert status["canaryCheckpoint"] == V4
        latency = next(m for m in status["history"][0]["metrics"] if m["metric"] == "latency_p90")
        assert latency["outcome"] == "failed" and latency["severity"] == "warning"


@pytest.mark.parametrize("policy", ["rollback", "hold"])
def test_prometheus_outage_mid_analysis(scenario: Scenario, prometheus: Any, policy: str) -> None:
    name = _setup(
        scenario,
        V2,
        steps=[{"setWeight": 25}, {"analyze": {"duration": "8s"}}],
        analysis={"interval": "2s", "inconclusiveLimit": 2, "onInconclusive": policy},
    )
    scenario.wait_phase(name, "Progressing", timeout=60, also=lambda s: (s.get("lastHistoryId") or 0) >= 1)
    prometheus.stop()
    try:
        if policy == "rollback":
            status = scenario.wait_phase(name, "RolledBack", timeout=60)
            assert _condition(status, "RolledBack")["reason"] == "InconclusiveLimit"
            assert _condition(status, "AnalysisPassing")["reason"] == "QueryError"
            assert scenario.canary() is None and scenario.target_checkpoint() == V1
        else:
            status = scenario.wait_phase(
                name,
                "Paused",
                timeout=60,
                also=lambda s: _condition(s, "Paused").get("reason") == "WaitingForData",
            )
            assert scenario.canary() is not None, "holding keeps the canary serving"
    finally:
        prometheus.start()
        prometheus.wait_ready()
    if policy == "hold":
        status = scenario.wait_phase(name, "Promoted", timeout=120)
        assert scenario.target_checkpoint() == V2
        assert any(h["verdict"] == "inconclusive" for h in status["history"])
        _assert_history_is_clean(status)


def test_operator_killed_during_analysis_resumes_without_duplicates(
    scenario: Scenario, operator: OperatorProcess
) -> None:
    name = _setup(
        scenario,
        V2,
        steps=[{"setWeight": 25}, {"analyze": {"duration": "10s"}}, {"setWeight": 50}, {"analyze": {"duration": "4s"}}],
    )
    scenario.wait_phase(name, "Progressing", timeout=60, also=lambda s: (s.get("lastHistoryId") or 0) >= 2)
    operator.kill()
    operator.start()
    status = scenario.wait_phase(name, "Promoted", timeout=120)
    _assert_history_is_clean(status)
    assert scenario.target_checkpoint() == V2 and scenario.canary() is None
    assert status["lastGoodCheckpoints"].count(V2) == 1
    _recorded_once(scenario, name, "Promoted")


def test_regression_after_promotion_reverts_to_previous_good(scenario: Scenario) -> None:
    # Swapping the server behind the label leaves a gap in its series: tolerate it, the regression is the point.
    analysis = {"interval": "2s", "failureLimit": 0, "inconclusiveLimit": 10}
    name = _setup(scenario, V2, postPromotion={"watch": "60s"}, analysis=analysis)
    scenario.wait_phase(name, "Promoted", timeout=120)
    assert scenario.target_checkpoint() == V2
    # The promoted checkpoint degrades in production: what is stored under V2 becomes a worse model, and the
    # target's pods restart onto it.
    scenario.replace_checkpoint(V2, "v3-regressed")
    status = scenario.wait_phase(name, "RolledBack", timeout=90)
    for h in status["history"][:8]:
        print(f"  #{h['id']} {h['stage']} {h['verdict']}: {h['message']}")
    assert _condition(status, "RolledBack")["reason"] == "PostPromotionRegression"
    wait_for(lambda: scenario.target_checkpoint() == V1, timeout=30, message="target back on v1")
    assert status["stableCheckpoint"] == V1 and V2 in status["rejectedCheckpoints"]
    assert any(h["stage"] == "postPromotion" and h["verdict"] == "failed" for h in status["history"])


@pytest.mark.parametrize("gate", ["promote", "abort"])
def test_manual_pause_holds_until_promote_or_abort(scenario: Scenario, operator: OperatorProcess, gate: str) -> None:
    name = _setup(scenario, V2, steps=[{"setWeight": 25}, {"pause": {}}, {"analyze": {"duration": "4s"}}])
    scenario.wait_phase(name, "Paused", timeout=60)

    def looks() -> float:
        return operator.metrics().get("modelratchet_reconcile_duration_seconds_count", 0.0)

    before = looks()
    wait_for(lambda: looks() >= before + 3, timeout=30, message="three more reconciles")
    assert scenario.status(name)["phase"] == "Paused", "a manual gate does not time out"
    scenario.gate(name, gate, V2)
    if gate == "promote":
        scenario.wait_phase(name, "Promoted", timeout=60)
        assert scenario.target_checkpoint() == V2
    else:
        status = scenario.wait_phase(name, "RolledBack", timeout=60)
        assert _condition(status, "RolledBack")["reason"] == "Aborted"
        assert scenario.target_checkpoint() == V1 and scenario.canary() is None
    assert "gate" not in scenario.status(name), "the request was consumed"


def test_broken_references_become_conditions_and_fixing_them_resumes(
    scenario: Scenario, operator: OperatorProcess
) -> None:
    spec = rollout_spec("missing-deployment", "digits", V2)
    scenario.create("modelrollouts", "digits", spec)
    wait_for(
        lambda: _condition(scenario.status("digits"), "Ready").get("reason") == "TargetNotFound",
        timeout=30,
        message="TargetNotFound",
    )
    scenario.patch_spec("modelrollouts", "digits", {"targetRef": {"name": scenario.target}})
    wait_for(
        lambda: _condition(scenario.status("digits"), "Ready").get("reason") == "BaselineNotFound",
        timeout=30,
        message="BaselineNotFound",
    )
    bad = digits_baseline(scenario.model)
    bad["metrics"][0]["query"] = 'sum(rate(model_correct_total{checkpoint="{{ checkpoint }}"}[1m]) /'
    scenario.create("modelbaselines", "digits", bad)
    wait_for(
        lambda: _condition(scenario.status("digits"), "Ready").get("reason") == "InvalidQuery",
        timeout=60,
        message="InvalidQuery",
    )
    status = scenario.status("digits")
    assert "parse error" in _condition(status, "Ready")["message"]
    assert scenario.target_checkpoint() == V1
    scenario.patch_spec("modelbaselines", "digits", digits_baseline(scenario.model))
    status = scenario.wait_phase("digits", "Promoted", timeout=120)
    assert _condition(status, "Ready")["status"] == "True"
    assert operator.alive() and operator.starts >= 1
    errors = sum(v for k, v in operator.metrics().items() if k.startswith("modelratchet_reconcile_errors_total"))
    assert errors == 0, "broken references are conditions, not reconcile errors"


def test_two_operator_replicas_act_once(
    scenario: Scenario, operator: OperatorProcess, local_cluster: Any, prometheus: Any, tmp_path: Any
) -> None:
    """With a Lease, a second replica stands by; the rollout is promoted once, whoever leads."""
    lease_env = {"MODELRATCHET_LEASE_NAMESPACE": scenario.ns, "MODELRATCHET_LEASE_NAME": "modelratchet-leader"}
    operator.stop()
    replicas = [
        OperatorProcess(local_cluster.kubeconfig, prometheus.url, log_dir=tmp_path, extra_env=lease_env)
        for _ in range(2)
    ]
    try:
        for r in replicas:
            r.start()
        name = _setup(scenario, V2)
        status = scenario.wait_phase(name, "Promoted", timeout=120)
        _assert_history_is_clean(status)
        _recorded_once(scenario, name, "Promoted")
        lease = client.CoordinationV1Api(scenario.api).read_namespaced_lease("modelratchet-leader", scenario.ns)
        assert lease.spec.holder_identity
        # Exactly one replica did the work: the other never reconciled a rollout.
        counts = [r.metrics().get("modelratchet_reconcile_duration_seconds_count", 0.0) for r in replicas]
        assert sorted(c > 0 for c in counts) == [False, True], counts
    finally:
        for r in replicas:
            r.stop()
        operator.start()


def test_a_target_that_has_not_opted_in_is_never_touched(scenario: Scenario) -> None:
    # The serving Deployment names the ModelRollout "digits" as the one that may drive it; "intruder" is refused
    # until someone who may edit the Deployment names it instead.
    scenario.create("modelbaselines", "digits", digits_baseline(scenario.model))
    scenario.create("modelrollouts", "intruder", rollout_spec(scenario.target, "digits", V2))
    ready = wait_for(
        lambda: _condition(scenario.status("intruder"), "Ready").get("reason") == "TargetNotOptedIn"
        and scenario.status("intruder"),
        timeout=30,
        message="TargetNotOptedIn",
    )
    assert "modelratchet.io/rollout=intruder" in _condition(ready, "Ready")["message"]
    assert scenario.canary() is None and scenario.target_checkpoint() == V1
    assert "TargetNotOptedIn" in [r for r, _ in scenario.events("intruder")]
    scenario.apps.patch_namespaced_deployment(
        scenario.target, scenario.ns, {"metadata": {"annotations": {"modelratchet.io/rollout": "intruder"}}}
    )
    scenario.wait_phase("intruder", "Promoted", timeout=120)
    assert scenario.target_checkpoint() == V2
