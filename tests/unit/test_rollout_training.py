"""Training paused after a rollback, in the pure core: what is suspended and when, what a resume undoes (only
what the operator suspended), and what failures (no RBAC for a kind) look like."""

from __future__ import annotations

from typing import Any

from modelratchet.api.rollout import WorkloadReference
from modelratchet.rollout import training
from modelratchet.rollout.training import WorkloadResult
from rollout_sim import Sim, cond, events, make_spec, metric, notifications, report

STEPS = [{"setWeight": 25}, {"analyze": {"duration": "1m"}}]
CRON = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "retrain"}
JOB = {"apiVersion": "batch/v1", "kind": "Job", "name": "finetune"}
PYTORCH = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "big"}


def sim(resume_on: str = "manual", workloads: list[dict[str, str]] | None = None, **extra: Any) -> Sim:
    on_rollback = {"suspend": workloads if workloads is not None else [CRON, JOB], "resumeOn": resume_on}
    return Sim(make_spec(STEPS, onRollback=on_rollback, **extra))


def rolled_back(s: Sim) -> Sim:
    s.start()
    s.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    s.run_until(lambda x: x.phase == "RolledBack")
    return s


def ok(change: training.WorkloadChange, was: bool = False) -> WorkloadResult:
    return WorkloadResult(change.key, ok=True, was_suspended=was)


def test_a_rollback_records_the_workloads_to_suspend_and_says_so() -> None:
    s = rolled_back(sim())
    t = s.status
    assert t is not None and t.training is not None
    assert (t.training.state, t.training.checkpoint) == ("Suspended", "v2")
    assert [(w.kind, w.name, w.state) for w in t.training.workloads] == [
        ("CronJob", "retrain", "pending"),
        ("Job", "finetune", "pending"),
    ]
    assert t.training.history_id == t.last_history_id
    assert [(c.ref.kind, c.suspend) for c in training.due(t.training)] == [("CronJob", True), ("Job", True)]
    assert (cond(t, "TrainingSuspended").status, cond(t, "TrainingSuspended").reason) == ("Unknown", "Suspending")
    rollback_tick = next(x for x in s.ticks if "RolledBack" in events(x.actions))
    notify = [a for a in rollback_tick.actions if getattr(a, "kind", None) == "rolledBack"]
    assert "training suspended: CronJob/retrain, Job/finetune" in notify[0].message


def test_a_promotion_touches_no_training() -> None:
    s = sim()
    s.start()
    s.run_until(lambda x: x.phase == "Promoted")
    assert s.status is not None and s.status.training is None
    assert not any(c.type == "TrainingSuspended" for c in s.status.conditions or [])


def test_results_mark_workloads_and_an_already_suspended_one_is_left_alone_on_resume() -> None:
    s = rolled_back(sim())
    assert s.status is not None
    cron, job = training.due(s.status.training)
    after, announced = training.apply_results(s.status.training, [ok(cron), ok(job, was=True)])
    assert after is not None and [w.state for w in after.workloads] == ["suspended", "alreadySuspended"]
    assert [e.reason for e in announced] == ["TrainingSuspended", "TrainingSuspended"]
    assert training.due(after) == []
    assert training.condition(after, True) == (
        "True",
        "RolledBack",
        "CronJob/retrain, Job/finetune suspended after rolling back v2; `modelratchet resume-training` resumes them",
    )
    resuming = training.resume(after)
    assert resuming is not None and resuming.state == "Resuming"
    (change,) = training.due(resuming)
    assert (change.ref.kind, change.suspend) == ("CronJob", False), "the Job was suspended by someone else"
    done, announced = training.apply_results(resuming, [ok(change)])
    assert done is None and [e.reason for e in announced] == ["TrainingResumed"]
    assert training.condition(None, resumed_before=True) == ("False", "Resumed", "training runs")


def test_a_refused_patch_is_a_clear_condition_and_is_retried() -> None:
    s = rolled_back(sim())
    assert s.status is not None
    cron, job = training.due(s.status.training)
    denied = "the operator may not patch cronjobs.batch in namespace ns (RBAC)"
    after, announced = training.apply_results(
        s.status.training, [WorkloadResult(cron.key, ok=False, message=denied), ok(job)]
    )
    assert [e.type for e in announced] == ["Warning", "Normal"]
    state = training.condition(after, True)
    assert state is not None and state[:2] == ("False", "SuspendFailed")
    assert f"CronJob/retrain: {denied}" in state[2]
    assert [c.ref.kind for c in training.due(after)] == ["CronJob"], "a failed suspend is tried again"
    # The same failure again is not announced twice.
    _, again = training.apply_results(after, [WorkloadResult(cron.key, ok=False, message=denied)])
    assert again == []


def test_resume_training_gate_resumes_and_is_ignored_without_suspension() -> None:
    s = rolled_back(sim())
    assert s.status is not None
    results = [ok(c) for c in training.due(s.status.training)]
    s.status.training, _ = training.apply_results(s.status.training, results)
    s.gate("resumeTraining", requested_by="alice")
    t = s.tick(1)
    assert "TrainingResumeRequested" in events(t.actions)
    assert t.status.training is not None and t.status.training.state == "Resuming"
    assert cond(t.status, "TrainingSuspended").reason == "Resuming"

    fresh = sim()
    fresh.start()
    fresh.gate("resumeTraining")
    assert events(fresh.tick(1).actions) == ["GateIgnored"]


def test_resume_on_promotion_resumes_when_a_later_checkpoint_is_promoted() -> None:
    s = rolled_back(sim(resume_on="promotion"))
    assert s.status is not None
    s.status.training, _ = training.apply_results(s.status.training, [ok(c) for c in training.due(s.status.training)])
    s.spec = make_spec(STEPS, checkpoint="v3", onRollback={"suspend": [CRON, JOB], "resumeOn": "promotion"})
    s.script = []
    t = s.run_until(lambda x: x.phase == "Promoted")
    assert t.status.training is not None and t.status.training.state == "Resuming"
    assert "TrainingResumeRequested" in events(t.actions) and "promoted" in notifications(t.actions)

    manual = rolled_back(sim())
    assert manual.status is not None
    manual.spec = make_spec(STEPS, checkpoint="v3", onRollback={"suspend": [CRON, JOB]})
    manual.script = []
    t = manual.run_until(lambda x: x.phase == "Promoted")
    assert t.status.training is not None and t.status.training.state == "Suspended"


def test_a_second_rollback_keeps_what_was_suspended() -> None:
    s = rolled_back(sim())
    assert s.status is not None
    s.status.training, _ = training.apply_results(s.status.training, [ok(c) for c in training.due(s.status.training)])
    s.spec = make_spec(STEPS, checkpoint="v3", onRollback={"suspend": [JOB]})
    s.script = [report("failed", "again", metrics=[metric(value=0.5)])] * 3
    t = s.run_until(
        lambda x: (
            x.phase == "RolledBack"
            and x.status is not None
            and x.status.training is not None
            and x.status.training.checkpoint == "v3"
        )
    )
    assert t.status.training is not None
    assert [(w.kind, w.state) for w in t.status.training.workloads] == [("Job", "suspended"), ("CronJob", "suspended")]


def test_suspend_fields_and_resources() -> None:
    cron = WorkloadReference.model_validate(CRON)
    pytorch = WorkloadReference.model_validate(PYTORCH)
    assert training.suspend_field(cron) == ("spec", "suspend")
    assert training.suspend_field(pytorch) == ("spec", "runPolicy", "suspend")
    assert training.resource_of(cron) == ("batch", "v1", "cronjobs")
    assert training.resource_of(pytorch) == ("kubeflow.org", "v1", "pytorchjobs")
