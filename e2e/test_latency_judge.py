"""Latency judged from histogram buckets on the real Prometheus: the model servers export
model_request_latency_seconds as a histogram; the operator reads the exact bucket counts of each 2 s window
and the histogram judge decides. V4 is V2 plus 40 ms per request: rolled back; V2 serves as fast as V1: promoted."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.harness.scenario import V1, V2, V4, Scenario, rollout_spec

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SEL = '{model="{{ model }}",checkpoint="{{ checkpoint }}"}'
# Exact requests per window: x - x offset d counts what the scrapes saw, where increase() would extrapolate.
BUCKETS = (
    f"sum by (le) (clamp_min(model_request_latency_seconds_bucket{SEL}"
    f" - model_request_latency_seconds_bucket{SEL} offset {{{{ interval }}}}, 0))"
)


def latency_baseline(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "metrics": [
            {
                "name": "latency",
                "description": "A typical request or the p90 at most 50% slower than on the stable checkpoint",
                "direction": "lowerIsBetter",
                "baseline": "live",
                # Processes on a loaded machine differ by some percent; 40 ms on about 1 ms is far beyond this.
                "threshold": {"type": "ratio", "value": 0.5},
                "judge": {"type": "histogram", "bucketQuery": BUCKETS},
            }
        ],
    }


def _latency(entry: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in entry["metrics"] if m["metric"] == "latency")


def _start(scenario: Scenario, checkpoint: str) -> str:
    scenario.create("modelbaselines", "latency", latency_baseline(scenario.model))
    spec = rollout_spec(
        scenario.target,
        "latency",
        checkpoint,
        steps=[{"setWeight": 50}, {"analyze": {"duration": "20s"}}],
        analysis={"interval": "2s", "failureLimit": 0, "inconclusiveLimit": 5},
    )
    scenario.create("modelrollouts", "digits", spec)  # the target opted in to a rollout named digits
    return "digits"


def test_a_slower_candidate_is_rolled_back_by_the_histogram_judge(scenario: Scenario) -> None:
    name = _start(scenario, V4)
    status = scenario.wait_phase(name, "RolledBack", timeout=120)
    reason = next(c for c in status["conditions"] if c["type"] == "RolledBack")["reason"]
    assert reason == "AnalysisFailed"
    assert scenario.target_checkpoint() == V1 and V4 in status["rejectedCheckpoints"]
    failed = _latency(status["history"][0])
    print(f"\n  {failed['message']}")
    assert failed["outcome"] == "failed" and failed["judge"]["judge"] == "histogram"
    assert "Slower than the stable checkpoint" in failed["message"]
    # 40 ms on top of about a millisecond: a typical request several times slower, and the bounds say so.
    assert failed["judge"]["estimate"] > 1.0 and failed["judge"]["ciLow"] > 0.5
    assert failed["value"] > failed["baseline"] + 0.02  # the candidate's median, from the same buckets
    # The stable arm's bucket counts are recorded, for a judge to weigh later.
    evidence = failed["baselineEvidence"]
    assert len(evidence["counts"]) == len(evidence["bounds"]) + 1 and sum(evidence["counts"]) > 0
    assert all(float(c).is_integer() for c in evidence["counts"])


def test_a_candidate_as_fast_as_the_stable_one_is_promoted(scenario: Scenario) -> None:
    name = _start(scenario, V2)
    status = scenario.wait_phase(name, "Promoted", timeout=120)
    assert scenario.target_checkpoint() == V2
    judged = [_latency(h) for h in status["history"] if h["stage"] == "canary"]
    for m in judged:
        print(f"  {m['outcome']}: {m['message']}")
    assert judged and all(m["outcome"] != "failed" for m in judged)
    passed = [m for m in judged if m["outcome"] == "passed"]
    assert passed and all(m["judge"]["judge"] == "histogram" for m in passed)
    # The judge saw requests of both checkpoints and placed its looks in the rollout's information.
    assert passed[0]["judge"]["samples"] > 0 and 0.0 < passed[0]["judge"]["informationFraction"] <= 1.0
