"""Dashboard view models: rollouts to overview rows, steps to a progress line, history to chart series."""

from __future__ import annotations

import pytest
from modelratchet.api.rollout import JudgeFigures, MetricResult, ThresholdSummary
from modelratchet.dashboard.views import (
    baseline_directions,
    chart_series,
    overview_row,
    rollout_view,
    step_weights,
    steps_progress,
    threshold_bounds,
)
from test_cli_render_report import rolled_back
from test_cli_render_status import (
    NOW,
    V42,
    V43,
    analyzing_status,
    entry,
    good_metrics,
    metric,
    promoted_status,
    rollout,
)


def test_overview_row_of_a_rollout_mid_analysis() -> None:
    row = overview_row(rollout(analyzing_status()), NOW)
    assert (row.namespace, row.name, row.key) == ("ml-prod", "fraud-detector", "ml-prod/fraud-detector")
    assert (row.phase, row.step, row.step_fraction, row.weight) == ("Progressing", "2/5", 1 / 5, 10)
    assert (row.stable, row.candidate, row.last_verdict) == (V42, V43, "passed")


def test_overview_row_of_a_finished_and_a_new_rollout() -> None:
    done = overview_row(rollout(promoted_status()), NOW)
    assert (done.phase, done.step, done.step_fraction, done.weight) == ("Promoted", "5/5", 1.0, None)
    assert done.candidate == "-"
    new = overview_row(rollout(None), NOW)
    assert (new.phase, new.step, new.step_fraction, new.stable, new.last_verdict) == ("Pending", "-", None, "-", "-")


def test_step_weights_carry_the_last_set_weight_forward() -> None:
    ro = rollout(analyzing_status())  # setWeight 10, analyze, setWeight 50, pause, analyze
    assert step_weights(ro.spec.steps) == [10, 10, 50, 50, 50]


@pytest.mark.parametrize(
    ("current", "states"),
    [
        (0, ["current", "pending", "pending", "pending", "pending"]),
        (3, ["done", "done", "done", "current", "pending"]),
        (5, ["done"] * 5),  # past the last step: promoting
    ],
)
def test_steps_progress_marks_done_current_and_pending(current: int, states: list[str]) -> None:
    items = steps_progress(rollout(analyzing_status(current_step=current)))
    assert [i.state for i in items] == states
    assert [i.label for i in items][3] == "pause until promoted"


def test_steps_of_a_promoted_rollout_are_all_done_and_a_rollback_shows_where_it_stopped() -> None:
    assert {i.state for i in steps_progress(rollout(promoted_status()))} == {"done"}
    # rolled_back(): the candidate's last analysis failed at step 5/5.
    assert [i.state for i in steps_progress(rolled_back())] == ["done", "done", "done", "done", "stopped"]
    assert {i.state for i in steps_progress(rollout(None))} == {"pending"}


def test_chart_series_has_one_point_per_analysis_per_metric_oldest_first() -> None:
    ro = rolled_back()
    view = rollout_view(ro, NOW)  # the candidate's analyses: #2, #3, #4 (the older v42 one is not its)
    assert [c.metric for c in view.charts] == ["eval_loss", "accuracy", "elo"]
    for chart in view.charts:
        assert [p.history_id for p in chart.points] == [2, 3, 4]
    accuracy = view.charts[1]
    assert [p.value for p in accuracy.points] == [0.93, 0.93, 0.87]
    assert [p.baseline for p in accuracy.points] == [0.92, 0.92, 0.92]
    assert [p.mark for p in accuracy.points] == ["ok", "ok", "failed"]
    assert [p.weight for p in accuracy.points] == [10, 10, 50]  # steps 2, 2 and 5 of the spec
    assert accuracy.points[2].bounds == pytest.approx((0.92 * 0.95,))  # ratio 5% below the baseline
    assert [v.verdict for v in view.verdicts] == ["passed", "passed", "failed"]


def test_marks_follow_outcome_and_severity() -> None:
    metrics = [
        metric("a", 1.0, 1.0, outcome="failed", severity="warning"),
        metric("b", None, None, outcome="inconclusive"),
        metric("c", 1.0, 1.0, outcome="failed", severity="info"),
    ]
    charts = chart_series([entry(1, "2025-03-04T10:00:00Z", metrics)], rollout(None).spec.steps)
    assert [c.points[0].mark for c in charts] == ["warning", "inconclusive", "info"]
    assert charts[1].points[0].bounds == ()  # no baseline: a ratio has no bound to draw


def _with(kind: str, value: float, baseline: float | None, symmetric: bool | None = None) -> MetricResult:
    m = metric("m", 10.0, baseline)
    return m.model_copy(update={"threshold": ThresholdSummary(type=kind, value=value, symmetric=symmetric)})


@pytest.mark.parametrize(
    ("kind", "value", "symmetric", "direction", "bounds"),
    [
        ("min", 0.9, None, "higherIsBetter", (0.9,)),
        ("max", 0.5, None, "lowerIsBetter", (0.5,)),
        ("delta", 2.0, None, "higherIsBetter", (8.0,)),
        ("delta", 2.0, None, "lowerIsBetter", (12.0,)),
        ("delta", 2.0, True, "higherIsBetter", (8.0, 12.0)),
        ("ratio", 0.1, None, "higherIsBetter", (9.0,)),
        ("ratio", 0.5, None, "lowerIsBetter", (15.0,)),
    ],
)
def test_threshold_bounds_on_the_value_scale(
    kind: str, value: float, symmetric: bool | None, direction: str, bounds: tuple[float, ...]
) -> None:
    assert threshold_bounds(_with(kind, value, 10.0, symmetric), direction) == pytest.approx(bounds)  # type: ignore[arg-type]


def test_directions_come_from_the_baseline_definition() -> None:
    baseline = {"spec": {"metrics": [{"name": "latency", "direction": "lowerIsBetter"}, {"name": "accuracy"}]}}
    assert baseline_directions(baseline) == {"latency": "lowerIsBetter", "accuracy": "higherIsBetter"}
    assert baseline_directions(None) == {}


def test_confidence_intervals_only_for_statistical_judges() -> None:
    seq = JudgeFigures(judge="sequential", estimate=-0.01, ci_low=-0.03, ci_high=0.01, samples=400)
    thr = JudgeFigures(judge="threshold", estimate=-0.01, ci_low=-0.03, ci_high=0.01)
    metrics = [metric("rate", 0.9, 0.91, judge=seq), metric("acc", 0.9, 0.91, judge=thr)]
    charts = chart_series([entry(1, "2025-03-04T10:00:00Z", metrics)], rollout(None).spec.steps)
    assert charts[0].has_interval and (charts[0].points[0].ci_low, charts[0].points[0].samples) == (-0.03, 400)
    assert not charts[1].has_interval


def test_actions_offered_follow_the_phase() -> None:
    paused = rollout_view(rollout(analyzing_status(phase="Paused", current_step=3)), NOW)
    assert (paused.can_promote, paused.can_abort, paused.can_retry) == (True, True, False)
    back = rollout_view(rolled_back(), NOW)
    assert (back.can_promote, back.can_abort, back.can_retry) == (False, False, True)
    watching = rollout_view(rollout(promoted_status(post_promotion_until="2025-03-04T10:30:00Z")), NOW)
    assert (watching.can_promote, watching.can_abort) == (False, True)
    assert [e.history_id for e in rollout_view(rollout(analyzing_status(history=[])), NOW).verdicts] == []
    assert len(good_metrics()) == len(rollout_view(rollout(analyzing_status()), NOW).charts)
