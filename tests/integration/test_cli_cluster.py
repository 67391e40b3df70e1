"""The cluster verbs of the CLI against the local kube-apiserver: status, history, report, watch, and the manual
gates promote / abort / retry, which must write status.gate through the status subresource and leave the spec
(what git holds) alone. No operator runs here: the tests write the status an operator would have written, and
where a gate must be consumed they run one reconcile of the real state machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from modelratchet.api.rollout import ModelRolloutSpec, ModelRolloutStatus
from modelratchet.cli.main import main
from modelratchet.kube import resources as res
from modelratchet.rollout import CanaryState, EmitEvent, TargetState, World, reconcile

from e2e.harness.cluster import LocalCluster, free_port
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCRIPT = Path(sys.executable).parent / "modelratchet"
GROUP, VERSION, PLURAL = "modelratchet.io", "v1alpha1", "modelrollouts"
NAME = "fraud-detector"
V41, V42, V43 = (f"s3://models/fraud/v{n}" for n in (41, 42, 43))
SPEC: dict[str, Any] = {
    "targetRef": {"name": "fraud-serving"},
    "checkpoint": V43,
    "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
    "baselineRef": {"name": "fraud-detector"},
    "steps": [
        {"setWeight": 10},
        {"analyze": {"duration": "5m"}},
        {"setWeight": 50},
        {"pause": {}},
        {"analyze": {"duration": "10m"}},
    ],
    "analysis": {"interval": "30s"},
    "postPromotion": {"watch": "30m"},
}
Obj = dict[str, Any]

# The user the API server authenticates the harness's admin certificate as (e2e/harness/cluster.py).
ADMIN = "modelratchet-admin"


def ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: float) -> str:
    return ts(datetime.now(UTC) - timedelta(seconds=seconds))


def metric(name: str, value: float, baseline: float, outcome: str = "passed", **extra: Any) -> dict[str, Any]:
    return {"metric": name, "value": value, "baseline": baseline, "delta": round(value - baseline, 10),
            "outcome": outcome, "severity": "critical", **extra}


def analyzing() -> ModelRolloutStatus:
    """What the operator writes 2m30s into step 2/5 (analyze for 5m), after two passing analyses."""
    passing = [
        metric("eval_loss", 0.43, 0.45, classification="improved", threshold={"type": "max", "value": 0.5},
               message="eval_loss: 0.43 <= 0.50 (max)"),
        metric("accuracy", 0.93, 0.92, classification="neutral", threshold={"type": "ratio", "value": 0.05},
               message="accuracy: 0.93 is 1.09% above baseline 0.92, no regression (ratio)",
               judge={"judge": "sequential", "estimate": 0.011, "ciLow": -0.004, "ciHigh": 0.026, "samples": 420}),
    ]
    return ModelRolloutStatus.model_validate({
        "phase": "Progressing",
        "observedGeneration": 1,
        "message": f"analyzing {V43} at step 2/5 (2 analyses)",
        "stableCheckpoint": V42,
        "canaryCheckpoint": V43,
        "currentStep": 1,
        "canaryWeight": 10,
        "stepStartedAt": ago(150),
        "rolloutStartedAt": ago(200),
        "lastAnalysisAt": ago(30),
        "analysisCount": 2,
        "lastVerdict": "passed",
        "lastHistoryId": 2,
        "lastGoodCheckpoints": [V42, V41],
        "history": [
            {"id": 2, "time": ago(30), "checkpoint": V43, "step": 1, "verdict": "passed",
             "message": "2 passed, 0 failed, 0 inconclusive", "metrics": passing},
            {"id": 1, "time": ago(60), "checkpoint": V43, "step": 1, "verdict": "passed",
             "message": "2 passed, 0 failed, 0 inconclusive", "metrics": passing},
        ],
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "ReferencesResolved", "message": "references resolve",
             "lastTransitionTime": ago(3600), "observedGeneration": 1},
            {"type": "Progressing", "status": "True", "reason": "Analyzing",
             "message": f"analyzing {V43} at step 2/5 (2 analyses)", "lastTransitionTime": ago(200),
             "observedGeneration": 1},
        ],
    })


def at_manual_pause() -> ModelRolloutStatus:
    return analyzing().model_copy(update={
        "phase": "Paused", "current_step": 3, "canary_weight": 50, "step_started_at": ago(20),
        "message": "paused at step 4/5: `modelratchet promote` to continue, `abort` to roll back",
    })


def promoted(watch_until: str | None = None) -> ModelRolloutStatus:
    return analyzing().model_copy(update={
        "phase": "Promoted", "stable_checkpoint": V43, "previous_checkpoint": V42, "canary_checkpoint": None,
        "current_step": None, "canary_weight": 0, "promoted_at": ago(60), "post_promotion_until": watch_until,
        "message": f"promoted {V43} (was {V42})",
    })


def rolled_back() -> ModelRolloutStatus:
    return analyzing().model_copy(update={
        "phase": "RolledBack", "canary_checkpoint": None, "current_step": None, "canary_weight": 0,
        "rejected_checkpoints": [V43], "rolled_back_at": ago(10), "last_verdict": "failed",
        "message": f"rolled back {V43}, serving {V42}: analysis failed",
    })


# ------------------------------------------------------------------------------------------------ cluster


class Rollouts:
    """ModelRollouts of one test namespace, read and written the way the operator does it."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self.api = api
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def create(self, status: ModelRolloutStatus | None, name: str = NAME, **spec: Any) -> Obj:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelRollout", "metadata": {"name": name},
                "spec": {**SPEC, **spec}}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        if status is not None:
            self.set_status(status, name)
        return self.get(name)

    def set_status(self, status: ModelRolloutStatus, name: str = NAME) -> None:
        res.replace_status(self.custom, PLURAL, self.get(name), status.wire())

    def get(self, name: str = NAME) -> Obj:
        obj = res.get(self.custom, PLURAL, self.namespace, name)
        assert obj is not None
        return obj

    def event(self, reason: str, message: str, type_: str = "Normal", name: str = NAME) -> None:
        res.emit_event(self.core, self.get(name), type_, reason, message)

    def operator_tick(self, name: str = NAME) -> None:
        """One reconcile of the real state machine, its Events and status written as the operator does."""
        obj = self.get(name)
        status = ModelRolloutStatus.model_validate(obj.get("status") or {})
        world = World(
            target=TargetState(checkpoint=V42, replicas=4, ready_replicas=4, available=True),
            canary=CanaryState(checkpoint=status.canary_checkpoint, replicas=4, ready_replicas=4)
            if status.canary_checkpoint else None,
        )
        decision = reconcile(ModelRolloutSpec.model_validate(obj["spec"]), status,
                             generation=obj["metadata"]["generation"], world=world, now=datetime.now(UTC))
        for action in decision.actions:
            if isinstance(action, EmitEvent):
                res.emit_event(self.core, obj, action.type, action.reason, action.message)
        res.replace_status(self.custom, PLURAL, obj, decision.status.wire())


@pytest.fixture
def rollouts(kube_api: client.ApiClient, crds: list[str], namespace: str) -> Rollouts:
    return Rollouts(kube_api, namespace)


@pytest.fixture
def kubeconfig(local_cluster: LocalCluster) -> str:
    return str(local_cluster.kubeconfig)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI in-process; argparse usage errors count as their exit code."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def script(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, env=env, check=False)


def spec_and_generation(obj: Obj) -> tuple[Any, Any]:
    return obj["spec"], obj["metadata"]["generation"]


def no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------------------------------ status


def test_status_of_one_rollout(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str) -> None:
    rollouts.create(analyzing())
    code, out, err = cli(capsys, "status", NAME, "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:5] == [
        f"Name:         {NAME}",
        f"Namespace:    {rollouts.namespace}",
        "Target:       Deployment fraud-serving, judged by ModelBaseline fraud-detector",
        "Phase:        Progressing",
        "Step:         2/5 analyze for 5m",
    ]
    # 2m30s of 5m, give or take the seconds this test takes.
    assert re.fullmatch(r"Progress:     \[#{10,11}-{9,10}\]  5[0-4]%  analyzed 2m3\ds of 5m \(2 analyses\)", lines[5])
    assert lines[6:10] == ["Weight:       10%", f"Stable:       {V42}", f"Canary:       {V43}", f"Desired:      {V43}"]
    assert lines[10].startswith(f"Last verdict: passed (analysis #2 of {V43}, ")
    assert "  > 2/5  analyze for 5m        current" in lines
    assert any(re.match(r"  Ready\s+True\s+ReferencesResolved\s+1h\s+references resolve", line) for line in lines)


def test_status_table_of_a_namespace_and_of_all(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str
) -> None:
    rollouts.create(analyzing())
    rollouts.create(promoted(), name="intent-classifier")
    rollouts.create(None, name="ranker")
    code, out, _ = cli(capsys, "status", "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "VERDICT", "PROGRESS", "MESSAGE"]
    assert [r[0] for r in rows[1:]] == [NAME, "intent-classifier", "ranker"]
    assert rows[1][:10] == [NAME, "Progressing", "2/5", "analyze", "for", "5m", "10%", V42, V43, "passed"]
    assert rows[2][:6] == ["intent-classifier", "Promoted", "-", "0%", V43, "-"]
    assert rows[3] == ["ranker", "-", "-", "-", "-", "-", "-", "-", "-"]

    code, out, _ = cli(capsys, "status", "-A", "--kubeconfig", kubeconfig)
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [rollouts.namespace, NAME, "Progressing"] in [line.split()[:3] for line in out.splitlines()]


def test_status_of_an_empty_namespace(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str) -> None:
    code, out, err = cli(capsys, "status", "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert (code, out) == (0, "")
    assert err == f"No modelrollouts found in namespace {rollouts.namespace}.\n"


def test_namespace_and_user_come_from_the_context(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str, tmp_path: Path
) -> None:
    """Like kubectl: the context's namespace is the default, --context picks another context."""
    config = json.loads(Path(kubeconfig).read_text())
    base = config["contexts"][0]
    config["contexts"] = [
        {"name": "team", "context": {**base["context"], "namespace": rollouts.namespace}},
        {"name": "elsewhere", "context": {**base["context"], "namespace": "kube-system"}},
    ]
    config["current-context"] = "elsewhere"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    rollouts.create(at_manual_pause())

    code, out, err = cli(capsys, "status", NAME, "--kubeconfig", str(path))
    assert code == 1
    assert err == f'modelratchet status: modelrollout "{NAME}" not found in namespace "kube-system"\n'
    code, out, _ = cli(capsys, "status", NAME, "--kubeconfig", str(path), "--context", "team")
    assert code == 0 and f"Namespace:    {rollouts.namespace}" in out
    code, _, _ = cli(capsys, "promote", NAME, "--kubeconfig", str(path), "--context", "team")
    assert code == 0
    gate = rollouts.get()["status"]["gate"]
    # Recorded under the name the API server knows (admission refuses any other), not the kubeconfig's entry.
    assert gate["requestedBy"] == ADMIN != base["context"]["user"]


# ------------------------------------------------------------------------------------------------ history / report


def test_history(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str) -> None:
    rollouts.create(analyzing())
    args = ("-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    code, out, _ = cli(capsys, "history", NAME, *args)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "ID", "CHECKPOINT", "STEP", "VERDICT", "METRICS"]
    assert [line.split()[1:5] for line in lines[1:]] == [["2", V43, "canary", "2/5"], ["1", V43, "canary", "2/5"]]
    assert lines[1].endswith("passed    eval_loss 0.43 vs 0.45 ok; accuracy 0.93 vs 0.92 ok")

    code, out, _ = cli(capsys, "history", NAME, "--format", "json", "--limit", "1", *args)
    assert code == 0
    assert json.loads(out) == rollouts.get()["status"]["history"][:1]

    code, out, _ = cli(capsys, "history", NAME, "--format", "markdown", *args)
    assert code == 0
    assert f"### Analyses of ModelRollout `{rollouts.namespace}/{NAME}`" in out
    assert f"| 2 | `{V43}` | canary 2/5 | passed | eval_loss 0.43 vs 0.45 ok<br>accuracy 0.93 vs 0.92 ok |" in out

    code, _, err = cli(capsys, "history", NAME, "--limit", "0", *args)
    assert code == 2 and "expected a positive integer" in err


def test_report(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str, tmp_path: Path) -> None:
    rollouts.create(analyzing())
    rollouts.event("RolloutStarted", f"rolling out {V43} (stable {V42})")
    rollouts.event("StepReached", "step 2/5: analyze for 5m")
    output = tmp_path / "report.md"
    code, out, err = cli(
        capsys, "report", NAME, "-n", rollouts.namespace, "--kubeconfig", kubeconfig, "--output", str(output)
    )
    assert (code, out) == (0, "")
    assert err == f"wrote the report of modelrollout {rollouts.namespace}/{NAME} to {output}\n"
    text = output.read_text()
    assert text.startswith(f"## ModelRollout `{rollouts.namespace}/{NAME}`: **In progress**\n")
    assert f"| Candidate | `{V43}` |" in text and f"| Stable (judged against) | `{V42}` |" in text
    assert "| Analyses | 2: 2 passed |" in text
    assert re.search(rf"\| \S+Z \| Normal \| RolloutStarted \| rolling out {re.escape(V43)} ", text)
    assert re.search(r"\| \S+Z \| Normal \| StepReached \| step 2/5: analyze for 5m \|", text)
    assert re.search(r"\| \S+Z \| condition \| Ready=True \(ReferencesResolved\) \| references resolve \|", text)
    assert "#### `accuracy`" in text and "#### `eval_loss`" in text
    # The statistical judge's figures, and the value against baseline and threshold of each analysis.
    assert "| passed | sequential | +0.011 | [-0.004, 0.026] | 420 | 0.93 is 1.09% above baseline 0.92" in text
    assert re.search(r"\| 1 \| \S+Z \| canary 2/5 \| 0\.93 \| 0\.92 \| \+0\.01 \| ratio 0\.05 \| passed \|", text)

    done = script("report", NAME, "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert done.returncode == 0, done.stderr

    def timeless(report: str) -> list[str]:
        return [line for line in report.split("_Generated")[0].splitlines() if not line.startswith("| Progress |")]

    assert timeless(done.stdout) == timeless(text)


# ------------------------------------------------------------------------------------------------ gates


def test_promote_writes_the_gate_through_the_status_subresource(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str
) -> None:
    before = rollouts.create(at_manual_pause())
    started = datetime.now(UTC).replace(microsecond=0)
    code, out, err = cli(capsys, "promote", NAME, "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert (code, err) == (0, "")
    after = rollouts.get()
    gate = after["status"]["gate"]
    assert set(gate) == {"action", "checkpoint", "requestedAt", "requestedBy"}  # a null reason is not stored
    assert (gate["action"], gate["checkpoint"], gate["requestedBy"]) == ("promote", V43, ADMIN)
    requested = datetime.fromisoformat(gate["requestedAt"].replace("Z", "+00:00"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", gate["requestedAt"])
    assert started <= requested <= datetime.now(UTC)
    assert spec_and_generation(after) == spec_and_generation(before)
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    # Nothing else in the status moved.
    assert {k: v for k, v in after["status"].items() if k != "gate"} == before["status"]
    assert out.splitlines()[0] == (
        f'promote of {V43} requested on modelrollout "{NAME}" in namespace "{rollouts.namespace}" '
        f"by {ADMIN} at {gate['requestedAt']}"
    )

    # The operator applies it once and clears it: the manual pause is passed.
    rollouts.operator_tick()
    status = rollouts.get()["status"]
    assert "gate" not in status
    assert (status["phase"], status["currentStep"]) == ("Progressing", 4)


def test_abort_with_a_reason_and_during_the_post_promotion_watch(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str
) -> None:
    before = rollouts.create(analyzing())
    args = ("-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    code, out, _ = cli(capsys, "abort", NAME, "--reason", "p99 latency doubled", *args)
    assert code == 0
    gate = rollouts.get()["status"]["gate"]
    assert {k: gate[k] for k in ("action", "checkpoint", "requestedBy", "reason")} == {
        "action": "abort", "checkpoint": V43, "requestedBy": ADMIN, "reason": "p99 latency doubled"
    }
    assert out.splitlines()[0].endswith(f"at {gate['requestedAt']}: p99 latency doubled")
    assert spec_and_generation(rollouts.get()) == spec_and_generation(before)
    rollouts.operator_tick()
    status = rollouts.get()["status"]
    assert (status["phase"], status["rejectedCheckpoints"]) == ("RolledBack", [V43])

    # Promoted and under watch: abort reverts, and names the promoted (stable) checkpoint.
    rollouts.set_status(promoted(watch_until=ts(datetime.now(UTC) + timedelta(minutes=29))))
    code, _, _ = cli(capsys, "abort", NAME, *args)
    assert code == 0
    assert rollouts.get()["status"]["gate"]["checkpoint"] == V43
    assert rollouts.get()["status"]["gate"]["action"] == "abort"


def test_retry_of_a_rejected_checkpoint(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str
) -> None:
    before = rollouts.create(rolled_back())
    args = ("-n", rollouts.namespace, "--kubeconfig", kubeconfig)

    code, out, err = cli(capsys, "retry", NAME, "--checkpoint", V41, *args)
    assert (code, out) == (1, "")
    assert err == (
        f'modelratchet retry: {V41} is not rejected on modelrollout "{NAME}", so there is nothing to retry '
        f"(rejected: {V43})\n"
    )
    assert "gate" not in rollouts.get()["status"]

    code, out, err = cli(capsys, "retry", NAME, *args)  # default: spec.checkpoint
    assert (code, err) == (0, "")
    gate = rollouts.get()["status"]["gate"]
    assert (gate["action"], gate["checkpoint"]) == ("retry", V43)
    assert spec_and_generation(rollouts.get()) == spec_and_generation(before)
    rollouts.operator_tick()
    status = rollouts.get()["status"]
    assert "rejectedCheckpoints" not in status
    assert (status["phase"], status["canaryCheckpoint"]) == ("Progressing", V43)  # rolled out again


@pytest.mark.parametrize(
    ("status", "argv", "message"),
    [
        (promoted(), ["promote"], f'nothing to promote: modelrollout "{NAME}" has no rollout in progress '
                                  f"(phase Promoted, serving {V43})"),
        (rolled_back(), ["abort"], f'nothing to abort: modelrollout "{NAME}" has no rollout in progress and no '
                                   f"post-promotion watch (phase RolledBack, serving {V42})"),
        (analyzing(), ["retry"], f'{V43} is not rejected on modelrollout "{NAME}", so there is nothing to retry '
                                 "(rejected: none)"),
        (None, ["promote"], f'nothing to promote: modelrollout "{NAME}" has no rollout in progress '
                            "(phase not reconciled yet, serving nothing yet)"),
    ],
)
def test_gates_that_make_no_sense_are_refused(
    capsys: pytest.CaptureFixture[str],
    rollouts: Rollouts,
    kubeconfig: str,
    status: ModelRolloutStatus | None,
    argv: list[str],
    message: str,
) -> None:
    before = rollouts.create(status)
    code, out, err = cli(capsys, *argv, NAME, "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert (code, out) == (1, "")
    assert err == f"modelratchet {argv[0]}: {message}\n"
    assert rollouts.get()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_pending_gate_is_not_overwritten_unless_forced(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str
) -> None:
    rollouts.create(at_manual_pause())
    args = ("-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert cli(capsys, "abort", NAME, "--reason", "bad", *args)[0] == 0
    first = rollouts.get()["status"]["gate"]
    code, _, err = cli(capsys, "promote", NAME, *args)
    assert code == 1
    assert err == (
        f"modelratchet promote: an abort requested by {ADMIN} at {first['requestedAt']} is still pending on "
        f'modelrollout "{NAME}": the operator has not applied it yet (is it running?); --force replaces it\n'
    )
    assert rollouts.get()["status"]["gate"] == first
    assert cli(capsys, "promote", NAME, "--force", *args)[0] == 0
    gate = rollouts.get()["status"]["gate"]
    assert gate["action"] == "promote" and "reason" not in gate  # the old reason does not linger


def test_a_gate_is_checked_against_the_state_it_is_written_on(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write is conditional on the resourceVersion read: a status that changed in between (here the rollout
    was promoted meanwhile) is read again, and the request checked again."""
    from modelratchet.cli import kubeapi

    rollouts.create(at_manual_pause())
    stale = rollouts.get()
    rollouts.set_status(promoted())
    reads: list[str] = []
    real_get = kubeapi.get_rollout

    def get(cluster: kubeapi.Cluster, namespace: str, name: str) -> Obj:
        reads.append(name)
        return stale if len(reads) == 1 else real_get(cluster, namespace, name)

    monkeypatch.setattr(kubeapi, "get_rollout", get)
    code, out, err = cli(capsys, "promote", NAME, "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert (code, out, len(reads)) == (1, "", 2)
    assert err.startswith(f'modelratchet promote: nothing to promote: modelrollout "{NAME}" has no rollout')
    assert "gate" not in rollouts.get()["status"]


def test_wait_until_the_operator_applied_the_request(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str
) -> None:
    rollouts.create(at_manual_pause())

    def operator() -> None:
        wait_for(lambda: "gate" in rollouts.get()["status"], 30, message="the gate to be written")
        time.sleep(1.5)  # the CLI polls a few times before the operator gets to it
        rollouts.operator_tick()

    thread = threading.Thread(target=operator)
    thread.start()
    try:
        done = script("promote", NAME, "--wait", "--timeout", "30", "-n", rollouts.namespace, "--kubeconfig",
                      kubeconfig)
    finally:
        thread.join(60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f'promote of {V43} requested on modelrollout "{NAME}"')
    # What the operator recorded about it (its wording is the state machine's), then where the rollout is now.
    reasons = [line.split(": ")[1] for line in lines[1:-1]]
    assert reasons == ["PromoteRequested", "StepReached"], lines
    assert lines[1].endswith(f" skipped by {ADMIN}")
    status = rollouts.get()["status"]
    assert (status["phase"], status["currentStep"]) == ("Progressing", 4)
    assert lines[-1] == f"phase: Progressing ({status['message']})"


def test_wait_times_out_when_no_operator_runs(
    capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--wait keeps reading the rollout while the request is pending and gives up once --timeout has passed.

    The command's clock is a stand-in that only its own sleeps move forward, so what it waited is counted in its
    sleeps and reads, whatever the machine's load; the rollout it reads and the gate it writes are real.
    """
    from modelratchet.cli import gates, kubeapi

    rollouts.create(analyzing())
    now = 0.0
    sleeps: list[float] = []
    looks: list[tuple[float, Any]] = []  # the command's clock at each read of the rollout, and the gate it saw

    def monotonic() -> float:
        return now

    def sleep(seconds: float) -> None:
        nonlocal now
        sleeps.append(seconds)
        assert len(sleeps) < 100, "--wait never gave up"
        now += seconds

    real_get = kubeapi.get_rollout

    def get(cluster: kubeapi.Cluster, namespace: str, name: str) -> Obj:
        obj = real_get(cluster, namespace, name)
        looks.append((now, (obj.get("status") or {}).get("gate")))
        return obj

    monkeypatch.setattr(gates, "time", SimpleNamespace(monotonic=monotonic, sleep=sleep))
    monkeypatch.setattr(kubeapi, "get_rollout", get)
    code, out, err = cli(capsys, "abort", NAME, "--wait", "--timeout", "1.5", "-n", rollouts.namespace,
                         "--kubeconfig", kubeconfig)
    assert code == 3
    assert out.startswith(f'abort of {V43} requested on modelrollout "{NAME}"')
    assert err == (
        "modelratchet abort: the operator did not apply the request within 1.5s (is it running?); "
        "it stays pending in status.gate\n"
    )
    pending = rollouts.get()["status"]["gate"]
    assert pending["action"] == "abort"
    # The first read is the one the request was checked against; every later one saw the request still pending.
    waiting = looks[1:]
    assert len(waiting) == len(sleeps) + 1 >= 2
    assert all(gate == pending for _, gate in waiting)
    # It slept until its clock passed the timeout, then looked once more and gave up: not before, not later.
    assert sum(sleeps[:-1]) < 1.5 <= sum(sleeps) == waiting[-1][0]


# ------------------------------------------------------------------------------------------------ watch


def test_watch_ends_promoted(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str) -> None:
    rollouts.create(analyzing())
    proc = subprocess.Popen(
        [str(SCRIPT), "watch", NAME, "--interval", "0.5", "--timeout", "60", "-n", rollouts.namespace,
         "--kubeconfig", kubeconfig],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        # The operator moves on only once the watch has shown the status it started from.
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Phase:"):
                break
        rollouts.set_status(promoted())
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    stdout = "".join(lines) + out
    assert proc.returncode == 0, err
    blocks = re.split(r"^--- \S+ ---$", stdout, flags=re.M)[1:]
    assert len(blocks) == 2  # one per status seen, not one per look
    assert "Phase:        Progressing" in blocks[0] and "Phase:        Promoted" in blocks[1]
    assert stdout.splitlines()[-1] == f'modelrollout "{NAME}": promoted {V43}'


def test_watch_exit_codes(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str) -> None:
    args = ("-n", rollouts.namespace, "--kubeconfig", kubeconfig, "--interval", "0.2")
    rollouts.create(rolled_back())
    code, out, _ = cli(capsys, "watch", NAME, *args)
    assert code == 1
    assert out.splitlines()[-1] == f'modelrollout "{NAME}": rolled back {V43}, serving {V42}: analysis failed'

    rollouts.set_status(promoted(watch_until=ts(datetime.now(UTC) + timedelta(minutes=29))))
    assert cli(capsys, "watch", NAME, *args)[0] == 0
    code, _, err = cli(capsys, "watch", NAME, "--post-promotion", "--timeout", "1", *args)
    assert code == 3
    assert err == f'modelratchet watch: modelrollout "{NAME}" has not finished after 1s (phase Promoted)\n'


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("argv", [["status", "nope"], ["history", "nope"], ["report", "nope"], ["promote", "nope"],
                                  ["abort", "nope"], ["retry", "nope"], ["watch", "nope"]])
def test_not_found(capsys: pytest.CaptureFixture[str], rollouts: Rollouts, kubeconfig: str, argv: list[str]) -> None:
    code, out, err = cli(capsys, *argv, "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert (code, out) == (1, "")
    assert err == f'modelratchet {argv[0]}: modelrollout "nope" not found in namespace "{rollouts.namespace}"\n'


def test_errors_of_the_console_script_are_one_line(rollouts: Rollouts, kubeconfig: str, tmp_path: Path) -> None:
    done = script("status", "nope", "-n", rollouts.namespace, "--kubeconfig", kubeconfig)
    assert done.returncode == 1
    no_traceback(done.stderr)

    missing = tmp_path / "missing.kubeconfig"
    done = script("status", "--kubeconfig", str(missing))
    assert done.returncode == 2
    assert done.stderr == f"modelratchet status: kubeconfig {missing} does not exist\n"

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = script("history", NAME, env=env)
    assert done.returncode == 2
    assert done.stderr == (
        f"modelratchet history: no kubeconfig: {tmp_path}/.kube/config not found; pass --kubeconfig or set KUBECONFIG\n"
    )

    done = script("status", NAME, "-A", "--kubeconfig", kubeconfig)
    assert done.returncode == 2
    assert done.stderr == "modelratchet status: NAME cannot be combined with --all-namespaces\n"

    plugin = SCRIPT.with_name("kubectl-modelratchet")
    done = subprocess.run([str(plugin), "history", "nope", "-n", rollouts.namespace, "--kubeconfig", kubeconfig],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr == (
        f'kubectl modelratchet history: modelrollout "nope" not found in namespace "{rollouts.namespace}"\n'
    )

    done = script("status", "--kubeconfig", kubeconfig, "--context", "nope")
    assert done.returncode == 2
    assert done.stderr == f'modelratchet status: context "nope" not found in kubeconfig {kubeconfig}\n'


def test_unreachable_cluster(kubeconfig: str, tmp_path: Path) -> None:
    config = json.loads(Path(kubeconfig).read_text())
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    config["clusters"][0]["cluster"]["server"] = server
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    for argv in (["status"], ["status", NAME], ["promote", NAME], ["report", NAME]):
        done = script(*argv, "--kubeconfig", str(path))
        assert done.returncode == 2, argv
        assert done.stderr == f"modelratchet {argv[0]}: cannot reach the cluster at {server}: connection refused\n"


def test_forbidden(rollouts: Rollouts, kubeconfig: str, tmp_path: Path) -> None:
    """A service account without RBAC for ModelRollouts."""
    core = rollouts.core
    core.create_namespaced_service_account(
        rollouts.namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    issued = core.create_namespaced_service_account_token("nobody", rollouts.namespace, request).status
    assert issued is not None
    token = issued.token
    config = json.loads(Path(kubeconfig).read_text())
    config["users"] = [{"name": "nobody", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "nobody"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    done = script("status", NAME, "-n", rollouts.namespace, "--kubeconfig", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(
        f'modelratchet status: forbidden: modelrollouts.modelratchet.io "{NAME}" is forbidden: User '
        f'"system:serviceaccount:{rollouts.namespace}:nobody" cannot get resource "modelrollouts"'
    )
    no_traceback(done.stderr)


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of its own without the CRDs: removing them from the shared cluster would delete every
    ModelRollout of other tests."""
    cluster = LocalCluster.up(tmp_path_factory.mktemp("bare-cluster"), owned=True)
    try:
        yield cluster
    finally:
        cluster.down()


def test_crd_not_installed(capsys: pytest.CaptureFixture[str], bare_cluster: LocalCluster) -> None:
    for argv in (["status"], ["status", NAME], ["history", NAME], ["promote", NAME], ["watch", NAME]):
        code, out, err = cli(capsys, *argv, "--kubeconfig", str(bare_cluster.kubeconfig))
        assert (code, out) == (2, ""), argv
        assert err == f"modelratchet {argv[0]}: the ModelRollout CRD is not installed: kubectl apply -f crds/\n"
    done = script("status", "-A", "--kubeconfig", str(bare_cluster.kubeconfig))
    assert done.returncode == 2
    assert done.stderr == "modelratchet status: the ModelRollout CRD is not installed: kubectl apply -f crds/\n"
