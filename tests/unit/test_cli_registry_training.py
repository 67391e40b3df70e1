"""The CLI with a registry source and training pauses: `status` shows the registry version, its aliases, pending
verdict writes and suspended workloads; `resume-training` asks only when training is suspended."""

from __future__ import annotations

from typing import Any

import pytest
from modelratchet.api.rollout import ModelRollout, ModelRolloutStatus
from modelratchet.cli.gates import plan
from modelratchet.cli.kubeapi import CliError
from modelratchet.cli.render_status import desired_checkpoint, outcome, render_detail
from test_cli_render_status import NOW

V1, V2 = "file:///mlflow/1/a/artifacts/model/v1.npz", "file:///mlflow/1/b/artifacts/model/v2.npz"


def rollout(status: dict[str, Any]) -> ModelRollout:
    spec = {
        "targetRef": {"name": "digits-serving"},
        "source": {"mlflow": {"model": "digits"}},
        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
        "baselineRef": {"name": "digits"},
        "steps": [{"setWeight": 25}],
        "onRollback": {"suspend": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "retrain"}]},
    }
    return ModelRollout.model_validate(
        {"metadata": {"name": "digits", "namespace": "ml", "generation": 1}, "spec": spec, "status": status}
    )


ROLLED_BACK: dict[str, Any] = {
    "phase": "RolledBack",
    "observedGeneration": 1,
    "stableCheckpoint": V1,
    "rejectedCheckpoints": [V2],
    "registry": {
        "candidate": {
            "model": "digits",
            "alias": "challenger",
            "version": "2",
            "checkpoint": V2,
            "aliases": ["challenger", "staging"],
        },
        "writes": [
            {
                "id": 1,
                "version": "2",
                "verdict": "rolledBack",
                "recordedAt": "2025-03-04T10:00:00Z",
                "attempts": 3,
                "lastError": "MLflow at http://mlflow:5000 unreachable: connection refused",
            }
        ],
    },
    "training": {
        "state": "Suspended",
        "checkpoint": V2,
        "reason": "rolled back",
        "suspendedAt": "2025-03-04T10:00:00Z",
        "workloads": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "retrain", "state": "suspended"}],
    },
}


def test_status_shows_registry_version_aliases_pending_writes_and_training() -> None:
    ro = rollout(ROLLED_BACK)
    text = render_detail(ro, NOW)
    assert "Desired:" in text and V2 in text
    assert "Registry:        MLflow digits@challenger = version 2 (aliases: challenger, staging)" in text
    assert "Registry writes: 1 pending (rolledBack v2); last error: MLflow at http://mlflow:5000 unreachable" in text
    assert f"Training:        suspended after rolling back {V2}: CronJob/retrain (suspended)" in text
    assert desired_checkpoint(ro) == V2 and outcome(ro) == "rolledBack"


def test_an_unresolved_source_says_so() -> None:
    ro = rollout({"phase": "Idle", "observedGeneration": 1})
    assert "Registry:     MLflow digits@challenger, not resolved yet" in render_detail(ro, NOW)
    assert desired_checkpoint(ro) is None


def test_resume_training_is_requested_only_while_suspended() -> None:
    gate = plan(rollout(ROLLED_BACK), "resumeTraining", user="alice", now=NOW)
    assert (gate.action, gate.checkpoint, gate.requested_by) == ("resumeTraining", V2, "alice")
    idle = dict(ROLLED_BACK, training=None)
    with pytest.raises(CliError, match='nothing to resume: modelrollout "digits" has no training suspended'):
        plan(rollout(idle), "resumeTraining", user="alice", now=NOW)


def test_retry_defaults_to_the_checkpoint_the_alias_names() -> None:
    gate = plan(rollout(ROLLED_BACK), "retry", user="alice", now=NOW)
    assert (gate.action, gate.checkpoint) == ("retry", V2)
    assert ModelRolloutStatus.model_validate(ROLLED_BACK).registry is not None


def test_report_shows_registry_and_training_rows() -> None:
    from modelratchet.cli.render_report import render_report

    text = render_report(rollout(ROLLED_BACK), [], NOW)
    assert "| Registry | MLflow digits@challenger = version 2 (aliases: challenger, staging) |" in text
    assert "| Training | suspended after rolling back" in text and "CronJob/retrain (suspended)" in text
