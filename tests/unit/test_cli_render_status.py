"""`modelratchet status` rendering: the detail view, the table, progress bars and when a rollout has ended.

The builders here (a fraud-detector rollout mid-canary, metrics as the gate engine writes them) are shared with
the history and report rendering tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from modelratchet.api.common import Condition
from modelratchet.api.rollout import (
    GateRequest,
    HistoryEntry,
    JudgeFigures,
    MetricResult,
    ModelRollout,
    ModelRolloutStatus,
    ThresholdSummary,
)
from modelratchet.cli.render_status import (
    Progress,
    Traffic,
    bar,
    human_duration,
    outcome,
    progress,
    render_detail,
    render_table,
    step_label,
)

NOW = datetime(2025, 3, 4, 10, 12, 30, tzinfo=UTC)
V41, V42, V43, V44 = (f"s3://models/fraud/v{n}" for n in (41, 42, 43, 44))
STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"analyze": {"duration": "5m"}},
    {"setWeight": 50},
    {"pause": {}},
    {"analyze": {"duration": "10m"}},
]


def metric(
    name: str,
    value: float | None,
    baseline: float | None,
    *,
    outcome: str = "passed",
    severity: str = "critical",
    threshold: tuple[str, float] = ("ratio", 0.05),
    classification: str | None = "neutral",
    message: str = "",
    judge: JudgeFigures | None = None,
) -> MetricResult:
    delta = None if value is None or baseline is None else round(value - baseline, 10)
    return MetricResult.model_validate(
        {
            "metric": name,
            "value": value,
            "baseline": baseline,
            "delta": delta,
            "classification": classification,
            "outcome": outcome,
            "severity": severity,
            "threshold": ThresholdSummary(type=threshold[0], value=threshold[1]),
            "message": message or f"{name}: {outcome}",
            "judge": judge,
        }
    )


def good_metrics() -> list[MetricResult]:
    """A passing analysis of the fraud-detector baseline (the gate engine's messages)."""
    return [
        metric("eval_loss", 0.43, 0.45, threshold=("max", 0.5), classification="improved",
               message="eval_loss: 0.43 <= 0.50 (max)"),
        metric("accuracy", 0.93, 0.92, classification="neutral",
               message="accuracy: 0.93 is 1.09% above baseline 0.92, no regression (ratio)"),
        metric("elo", 1490.0, 1485.0, threshold=("delta", 20.0), classification="improved",
               message="elo: rose 5 from 1485, no regression (delta)"),
    ]


def bad_metrics() -> list[MetricResult]:
    """A failing analysis: accuracy and elo regressed past their critical bounds."""
    return [
        metric("eval_loss", 0.47, 0.45, threshold=("max", 0.5), classification="regressed",
               message="eval_loss: 0.47 <= 0.50 (max)"),
        metric("accuracy", 0.87, 0.92, outcome="failed", classification="regressed",
               message="accuracy: 0.87 is 5.4% below baseline 0.92, more than 5% (ratio)"),
        metric("elo", 1450.0, 1485.0, outcome="failed", threshold=("delta", 30.0), classification="regressed",
               message="elo: dropped 35 from 1485, beyond 30 (delta, critical tier)"),
    ]


def entry(
    id_: int,
    time: str,
    metrics: list[MetricResult],
    *,
    verdict: str = "passed",
    checkpoint: str = V43,
    step: int | None = 1,
    stage: str = "canary",
    message: str = "",
) -> HistoryEntry:
    return HistoryEntry.model_validate(
        {
            "id": id_,
            "time": time,
            "checkpoint": checkpoint,
            "step": step,
            "stage": stage,
            "verdict": verdict,
            "message": message or f"{len(metrics)} passed, 0 failed, 0 inconclusive",
            "metrics": metrics,
        }
    )


def condition(type_: str, status: str, reason: str, time: str, message: str = "") -> Condition:
    return Condition.model_validate(
        {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": time}
    )


def analyzing_status(**overrides: Any) -> ModelRolloutStatus:
    """Step 2/5 (analyze for 5m), started 2m30s before NOW, two analyses recorded."""
    status = ModelRolloutStatus(
        phase="Progressing",
        observed_generation=3,
        message=f"analyzing {V43} at step 2/5 (2 analyses)",
        stable_checkpoint=V42,
        canary_checkpoint=V43,
        current_step=1,
        canary_weight=10,
        step_started_at="2025-03-04T10:10:00Z",
        rollout_started_at="2025-03-04T10:09:30Z",
        last_analysis_at="2025-03-04T10:11:00Z",
        analysis_count=2,
        last_verdict="passed",
        last_history_id=2,
        last_good_checkpoints=[V42, V41],
        history=[
            entry(2, "2025-03-04T10:11:00Z", good_metrics()),
            entry(1, "2025-03-04T10:10:30Z", good_metrics()),
        ],
        conditions=[
            condition("Ready", "True", "ReferencesResolved", "2025-03-04T09:00:00Z",
                      "target, checkpoint field and baseline resolve"),
            condition("Progressing", "True", "Analyzing", "2025-03-04T10:09:30Z",
                      f"analyzing {V43} at step 2/5 (2 analyses)"),
            condition("Paused", "False", "NotPaused", "2025-03-04T10:09:30Z"),
            condition("AnalysisPassing", "True", "Passed", "2025-03-04T10:10:30Z", "3 passed, 0 failed"),
        ],
    )
    return status.model_copy(update=overrides)


def rollout(
    status: ModelRolloutStatus | None,
    *,
    name: str = "fraud-detector",
    namespace: str = "ml-prod",
    generation: int = 3,
    checkpoint: str = V43,
    steps: list[dict[str, Any]] | None = None,
    watch: str | None = "30m",
) -> ModelRollout:
    spec: dict[str, Any] = {
        "targetRef": {"name": "fraud-serving"},
        "checkpoint": checkpoint,
        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
        "baselineRef": {"name": "fraud-detector"},
        "steps": steps if steps is not None else STEPS,
        "analysis": {"interval": "30s"},
    }
    if watch:
        spec["postPromotion"] = {"watch": watch}
    return ModelRollout.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, "generation": generation},
            "spec": spec,
            "status": None if status is None else status.wire(),
        }
    )


def promoted_status(**overrides: Any) -> ModelRolloutStatus:
    status = ModelRolloutStatus(
        phase="Promoted",
        observed_generation=3,
        message=f"promoted {V43} (was {V42})",
        stable_checkpoint=V43,
        previous_checkpoint=V42,
        canary_weight=0,
        rollout_started_at="2025-03-04T09:40:00Z",
        promoted_at="2025-03-04T10:00:00Z",
        last_verdict="passed",
        last_good_checkpoints=[V43, V42, V41],
        conditions=[condition("Promoted", "True", "Promoted", "2025-03-04T10:00:00Z", f"promoted {V43}")],
    )
    return status.model_copy(update=overrides)


# ------------------------------------------------------------------------------------------- small helpers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (135, "2m15s"),
        (3600, "1h"),
        (3900, "1h5m"),
        (3959, "1h5m"),  # two units at most, like kubectl ages
        (86400, "1d"),
        (3 * 86400 + 4 * 3600 + 59, "3d4h"),
        (-5, "0s"),  # clock skew never shows a negative age
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("fraction", "filled"),
    [(0.0, 0), (0.049, 0), (0.05, 1), (0.5, 10), (0.999, 19), (1.0, 20), (1.7, 20), (-0.3, 0)],
)
def test_bar_fills_by_twentieths_rounding_down(fraction: float, filled: int) -> None:
    assert bar(fraction) == "[" + "#" * filled + "-" * (20 - filled) + "]"


def test_bar_width() -> None:
    assert bar(0.35, 10) == "[###-------]"


def test_step_labels_count_from_one() -> None:
    ro = rollout(analyzing_status())
    assert step_label(ro.spec.steps, 0) == "1/5 setWeight 10"
    assert step_label(ro.spec.steps, 3) == "4/5 pause until promoted"
    assert step_label(ro.spec.steps, 5) == "5/5 done, promoting"
    assert step_label(ro.spec.steps, None) == "-"


# ------------------------------------------------------------------------------------------------ progress


def test_analysis_progress_is_elapsed_over_duration() -> None:
    p = progress(rollout(analyzing_status()), NOW)
    assert p == Progress(0.5, "analyzed 2m30s of 5m (2 analyses)")
    assert p is not None and p.render() == "[##########----------]  50%  analyzed 2m30s of 5m (2 analyses)"


def test_analysis_past_its_duration_is_full_and_says_by_how_much() -> None:
    p = progress(rollout(analyzing_status(step_started_at="2025-03-04T10:06:30Z")), NOW)
    assert p is not None
    assert p.render() == "[####################] 100%  analyzed 6m of 5m (2 analyses)"


def test_timed_pause_progress() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 10}, {"pause": {"duration": "1m"}}]
    p = progress(rollout(analyzing_status(phase="Paused", step_started_at="2025-03-04T10:12:10Z"), steps=steps), NOW)
    assert p is not None
    assert p.fraction == pytest.approx(1 / 3)
    assert p.render() == "[######--------------]  33%  paused 20s of 1m"


def test_manual_pause_waits_for_promote_without_a_bar() -> None:
    ro = rollout(analyzing_status(phase="Paused", current_step=3, canary_weight=50))
    p = progress(ro, NOW)
    assert p == Progress(None, "waiting for promote")
    assert p.render() == "waiting for promote"


def test_set_weight_progress_counts_ready_canary_pods() -> None:
    ro = rollout(analyzing_status(current_step=2, canary_weight=50))
    # 4 target pods: 50% needs 4 canary pods; 2 are ready, i.e. 2 of 6 ready pods.
    p = progress(ro, NOW, Traffic(target_ready=4, target_replicas=4, canary_ready=2))
    assert p == Progress(0.5, "2/4 canary pods ready, 33% of ready pods (weight 50%)")
    done = progress(ro, NOW, Traffic(target_ready=4, target_replicas=4, canary_ready=4))
    assert done is not None and done.render() == (
        "[####################] 100%  4/4 canary pods ready, 50% of ready pods (weight 50%)"
    )


def test_set_weight_share_follows_the_replica_split() -> None:
    ro = rollout(analyzing_status(current_step=0))
    p = progress(ro, NOW, Traffic(target_ready=9, target_replicas=9, canary_ready=1))
    assert p == Progress(1.0, "1/1 canary pods ready, 10% of ready pods (weight 10%)")


def test_set_weight_without_pod_counts() -> None:
    p = progress(rollout(analyzing_status(current_step=2)), NOW)
    assert p == Progress(None, "setting weight 50%: waiting for canary pods")


def test_past_the_last_step_it_is_promoting() -> None:
    p = progress(rollout(analyzing_status(current_step=5)), NOW)
    assert p == Progress(None, "promoting: waiting for the target to become Available")


def test_post_promotion_watch_progress() -> None:
    ro = rollout(promoted_status(post_promotion_until="2025-03-04T10:30:00Z"))
    p = progress(ro, NOW)
    assert p is not None and p.fraction == pytest.approx(750 / 1800)
    assert p.render() == "[########------------]  41%  post-promotion watch 12m30s of 30m, until 2025-03-04T10:30:00Z"


@pytest.mark.parametrize(
    "status",
    [None, promoted_status(), ModelRolloutStatus(phase="Idle", stable_checkpoint=V42, observed_generation=1)],
)
def test_no_progress_when_nothing_moves(status: ModelRolloutStatus | None) -> None:
    assert progress(rollout(status), NOW) is None


# ------------------------------------------------------------------------------------------------ views


def test_detail_of_a_rollout_mid_analysis() -> None:
    assert render_detail(rollout(analyzing_status()), NOW) == (
        "Name:         fraud-detector\n"
        "Namespace:    ml-prod\n"
        "Target:       Deployment fraud-serving, judged by ModelBaseline fraud-detector\n"
        "Phase:        Progressing\n"
        "Step:         2/5 analyze for 5m\n"
        "Progress:     [##########----------]  50%  analyzed 2m30s of 5m (2 analyses)\n"
        "Weight:       10%\n"
        "Stable:       s3://models/fraud/v42\n"
        "Canary:       s3://models/fraud/v43\n"
        "Desired:      s3://models/fraud/v43\n"
        "Last verdict: passed (analysis #2 of s3://models/fraud/v43, 1m30s ago)\n"
        "Message:      analyzing s3://models/fraud/v43 at step 2/5 (2 analyses)\n"
        "Steps:\n"
        "    1/5  setWeight 10          done\n"
        "  > 2/5  analyze for 5m        current\n"
        "    3/5  setWeight 50\n"
        "    4/5  pause until promoted\n"
        "    5/5  analyze for 10m\n"
        "Conditions:\n"
        "  TYPE              STATUS   REASON               AGE     MESSAGE\n"
        "  Ready             True     ReferencesResolved   1h12m   target, checkpoint field and baseline resolve\n"
        "  Progressing       True     Analyzing            3m      "
        "analyzing s3://models/fraud/v43 at step 2/5 (2 analyses)\n"
        "  Paused            False    NotPaused            3m\n"
        "  AnalysisPassing   True     Passed               2m      3 passed, 0 failed\n"
    )


def test_detail_shows_a_pending_gate_and_rejected_checkpoints() -> None:
    gate = GateRequest(
        action="promote", checkpoint=V43, requested_at="2025-03-04T10:12:20Z", requested_by="alice", reason="LGTM"
    )
    status = analyzing_status(
        phase="Paused", current_step=3, canary_weight=50, gate=gate, rejected_checkpoints=[V41],
        message="paused at step 4/5: `modelratchet promote` to continue, `abort` to roll back",
    )
    lines = render_detail(rollout(status), NOW).splitlines()
    assert "Step:         4/5 pause until promoted" in lines
    assert "Progress:     waiting for promote" in lines
    assert "Weight:       50%" in lines
    assert "Gate:         promote of s3://models/fraud/v43 requested by alice 10s ago (LGTM), pending" in lines
    assert "Rejected:     s3://models/fraud/v41" in lines
    assert "  > 4/5  pause until promoted  current" in lines
    assert "    3/5  setWeight 50          done" in lines


def test_detail_of_a_promoted_rollout_has_no_step_and_no_marks() -> None:
    text = render_detail(rollout(promoted_status()), NOW)
    lines = text.splitlines()
    assert not any(line.startswith(("Step:", "Progress:")) for line in lines)
    assert "Phase:        Promoted" in lines
    assert "Stable:       s3://models/fraud/v43" in lines
    assert "Canary:       -" in lines
    assert "Last verdict: passed" in lines
    assert "    1/5  setWeight 10" in lines


def test_detail_before_the_first_reconcile() -> None:
    lines = render_detail(rollout(None), NOW).splitlines()
    assert "Phase:        (not reconciled yet)" in lines
    assert "Weight:       -" in lines
    assert "Last verdict: -" in lines
    assert lines[-1] == "  (none)"


def test_table_of_a_namespace() -> None:
    other = rollout(None, name="intent-classifier", checkpoint="gs://intent/v7")
    assert render_table([rollout(analyzing_status()), other], NOW) == (
        "NAME                PHASE         STEP                 WEIGHT   STABLE                  "
        "CANARY                  VERDICT   PROGRESS           MESSAGE\n"
        "fraud-detector      Progressing   2/5 analyze for 5m   10%      s3://models/fraud/v42   "
        "s3://models/fraud/v43   passed    [#####-----] 50%   "
        "analyzing s3://models/fraud/v43 at step 2/5 (2 analyses)\n"
        "intent-classifier   -             -                    -        -                       "
        "-                       -         -                  -\n"
    )


def test_table_of_all_namespaces_leads_with_the_namespace() -> None:
    paused = rollout(analyzing_status(phase="Paused", current_step=3, canary_weight=50), namespace="ml-staging")
    lines = render_table([rollout(promoted_status()), paused], NOW, all_namespaces=True).splitlines()
    assert lines[0].split() == [
        "NAMESPACE", "NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "VERDICT", "PROGRESS", "MESSAGE"
    ]
    assert lines[1].split()[:7] == ["ml-prod", "fraud-detector", "Promoted", "-", "0%", V43, "-"]
    assert lines[2].startswith("ml-staging  ")
    assert "4/5 pause until promoted   50%" in lines[2]
    assert "waiting for promote" in lines[2]


# ------------------------------------------------------------------------------------------------ outcome


@pytest.mark.parametrize(
    ("ro", "through", "expected"),
    [
        (rollout(analyzing_status()), False, None),
        (rollout(None), False, None),
        (rollout(promoted_status()), False, "promoted"),
        # The post-promotion watch may still revert: only ended when asked to stop at promotion.
        (rollout(promoted_status(post_promotion_until="2025-03-04T10:30:00Z")), False, "promoted"),
        (rollout(promoted_status(post_promotion_until="2025-03-04T10:30:00Z")), True, None),
        (rollout(promoted_status(), generation=4, checkpoint=V44), False, None),  # the operator has not seen v44
        (
            rollout(
                ModelRolloutStatus(
                    phase="RolledBack", observed_generation=3, stable_checkpoint=V42, rejected_checkpoints=[V43]
                )
            ),
            False,
            "rolledBack",
        ),
        (  # after a revert during the watch the bad checkpoint is rejected too
            rollout(
                promoted_status(phase="RolledBack", stable_checkpoint=V42, rejected_checkpoints=[V43]), watch="30m"
            ),
            True,
            "rolledBack",
        ),
        (  # v43 was rejected earlier; v44 waits out the cooldown
            rollout(
                ModelRolloutStatus(
                    phase="RolledBack", observed_generation=4, stable_checkpoint=V42, rejected_checkpoints=[V43]
                ),
                generation=4,
                checkpoint=V44,
            ),
            False,
            None,
        ),
        (
            rollout(ModelRolloutStatus(phase="Idle", observed_generation=3, stable_checkpoint=V43)),
            False,
            "serving",
        ),
        (
            rollout(ModelRolloutStatus(phase="Failed", observed_generation=3, message="spec.steps: bad")),
            False,
            "failed",
        ),
    ],
)
def test_outcome(ro: ModelRollout, through: bool, expected: str | None) -> None:
    assert outcome(ro, through_post_promotion=through) == expected
