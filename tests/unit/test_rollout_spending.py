"""What the state machine tells the judges about a look: its place in the rollout, the data still planned in its
window, and the window's share of the rollout's false-rollback budget."""

from __future__ import annotations

import pytest
from modelratchet.rollout import AnalysisRequest, analysis_due
from modelratchet.rollout.machine import _window_budget
from rollout_sim import Sim, at, make_spec, report


def requests(sim: Sim) -> list[AnalysisRequest]:
    return [t.request for t in sim.ticks if t.request is not None]


def test_the_look_counter_spans_steps_and_holds_and_restarts_after_promotion() -> None:
    spec = make_spec(
        [{"setWeight": 20}, {"analyze": {"duration": "60s"}}, {"setWeight": 50}, {"analyze": {"duration": "90s"}}],
        analysis={"interval": "30s", "inconclusiveLimit": 5, "onInconclusive": "hold"},
        postPromotion={"watch": "60s"},
    )
    # One inconclusive look in the first step (a hold's look counts too), then passes.
    sim = Sim(spec, script=[report("passed"), report("inconclusive"), report("passed")])
    sim.start()
    sim.run(12, dt=30)
    canary = [r for r in requests(sim) if r.stage == "canary"]
    assert [r.look for r in canary] == list(range(1, len(canary) + 1))
    assert {r.max_looks for r in canary} == {2 + 3}  # every analyze step's planned looks
    # The step's own last look is final (an undecided judge passes there), the rollout's budget goes on.
    assert [r.final for r in canary][-1] is True
    watch = [r for r in requests(sim) if r.stage == "postPromotion"]
    assert [(r.look, r.max_looks) for r in watch] == [(1, 2), (2, 2)]
    assert [r.final for r in watch] == [False, True]
    assert watch[0].share == (0.0, 1.0) and watch[0].ahead_seconds == pytest.approx(30.0)


def test_a_windows_share_is_its_planned_information() -> None:
    # 1 minute at 10% then 2 minutes at 50%: information 60 * 0.1 * 0.9 and 120 * 0.5 * 0.5 (c s / (c + s)).
    spec = make_spec(
        [
            {"setWeight": 10},
            {"analyze": {"duration": "60s"}},
            {"setWeight": 50},
            {"pause": {"duration": "30s"}},
            {"analyze": {"duration": "90s"}},
            {"pause": {"duration": "10m"}},  # after the last look: no part of the budget
        ]
    )
    first, second = 60 * 0.1 * 0.9, 120 * 0.5 * 0.5
    share, ahead = _window_budget(spec, 1, 40.0)
    assert share == pytest.approx((0.0, first / (first + second))) and ahead == 40.0
    share, ahead = _window_budget(spec, 3, 30.0)  # the pause opens the second window: its data counts
    assert share == pytest.approx((first / (first + second), 1.0))
    assert ahead == pytest.approx(30.0 + 90.0)


def test_a_mirrored_window_learns_from_the_copies() -> None:
    # Shadow first (all requests copied to the candidate: c = 1, s = 1, c s / (c + s) = 1/2), then 5% live.
    spec = make_spec(
        [
            {"setMirror": {"percent": 100}},
            {"analyze": {"duration": "60s"}},
            {"setMirror": {"percent": 0}},
            {"setWeight": 5},
            {"analyze": {"duration": "60s"}},
        ],
        trafficRouting={"gatewayAPI": {"httpRoute": "r", "stableService": "s", "canaryService": "c"}},
    )
    shadow, live = 0.5, 0.05 * 0.95
    assert _window_budget(spec, 1, 60.0)[0] == pytest.approx((0.0, shadow / (shadow + live)))


def test_analyze_steps_without_a_traffic_step_between_them_share_one_window() -> None:
    spec = make_spec([{"setWeight": 20}, {"analyze": {"duration": "60s"}}, {"analyze": {"duration": "60s"}}])
    assert _window_budget(spec, 1, 60.0) == ((0.0, 1.0), 120.0)
    assert _window_budget(spec, 2, 10.0) == ((0.0, 1.0), 10.0)


def test_the_request_carries_the_budget_and_what_is_ahead() -> None:
    spec = make_spec(
        [{"setWeight": 10}, {"analyze": {"duration": "2m"}}, {"setWeight": 50}, {"analyze": {"duration": "2m"}}],
        analysis={"interval": "30s"},
    )
    sim = Sim(spec)
    sim.start()
    request = analysis_due(spec, sim.current_status(), at(31))
    assert request is not None and request.look == 1 and not request.final
    assert request.share[0] == 0.0 and request.share[1] == pytest.approx(0.09 / (0.09 + 0.25))
    assert request.ahead_seconds == pytest.approx(121 - 31)  # the step began at t=1, once the pods were ready
