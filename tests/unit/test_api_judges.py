"""The judge and baseline-evidence fields of a ModelBaseline: validation, CRD rules, and the evidence condition."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.crds import BASELINE_POLICY_RULES, model_baseline_crd
from modelratchet.baselines import EVIDENCE, baseline_status
from pydantic import ValidationError

BUCKETS = 'sum by (le) (clamp_min(x_bucket{checkpoint="{{ checkpoint }}"} - x_bucket offset {{ interval }}, 0))'


def latency(**changes: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": "latency",
        "direction": "lowerIsBetter",
        "baseline": "live",
        "threshold": {"type": "ratio", "value": 0.05},
        "judge": {"type": "histogram", "bucketQuery": BUCKETS},
    }
    metric.update(changes)
    return metric


def accuracy(**changes: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": "accuracy",
        "baseline": 0.92,
        "threshold": {"type": "delta", "value": 0.02},
        "judge": {"type": "sequential", "successQuery": "s", "totalQuery": "t"},
    }
    metric.update(changes)
    return metric


def spec(*metrics: dict[str, Any]) -> ModelBaselineSpec:
    return ModelBaselineSpec.model_validate({"model": "m", "metrics": list(metrics)})


def test_a_histogram_judge_is_accepted() -> None:
    judge = spec(latency()).metrics[0].judge
    assert judge is not None and judge.type == "histogram" and judge.bucket_query == BUCKETS


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (latency(judge={"type": "histogram"}), "a histogram judge needs bucketQuery"),
        (latency(judge={"type": "threshold", "bucketQuery": BUCKETS}), "bucketQuery is only read by a histogram judge"),
        (latency(baseline=0.1), 'a histogram judge compares with the stable checkpoint: it needs baseline: "live"'),
        (latency(query="histogram_quantile(0.5, x)"), "a histogram judge reads judge.bucketQuery; remove query"),
        (
            latency(judge={"type": "mannWhitney"}, query="histogram_quantile(0.5, x)"),
            "a mannWhitney judge ranks per-request samples given to `modelratchet check`",
        ),
        (accuracy(baselineEvidence={}), "set samples (what the baseline was measured on) or exact: true"),
        (accuracy(baselineEvidence={"samples": 10, "exact": True}), "set samples"),
        (accuracy(baselineEvidence={"samples": 0}), "greater than or equal to 1"),
        (accuracy(baseline="live", baselineEvidence={"samples": 10}), "describes a static baseline value"),
        (accuracy(baseline=3.5, baselineEvidence={"samples": 10}), "needs a rate in [0, 1]"),
    ],
)
def test_invalid_judges_and_evidence_are_refused(metric: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        spec(metric)


def test_a_mann_whitney_judge_is_for_offline_samples() -> None:
    metric = spec(latency(judge={"type": "mannWhitney", "minEffect": 0.1})).metrics[0]
    assert metric.judge is not None and metric.judge.min_effect == 0.1 and metric.query is None


def test_unevidenced_is_a_static_baseline_a_statistical_judge_takes_as_exact() -> None:
    s = spec(
        accuracy(),
        accuracy(name="a2", baselineEvidence={"samples": 2000}),
        accuracy(name="a3", baselineEvidence={"exact": True}),
        accuracy(name="a4", baseline="live"),
        {"name": "loss", "baseline": 0.4, "threshold": {"type": "max", "value": 0.5}},
    )
    assert [m.name for m in s.metrics if m.unevidenced] == ["accuracy"]


def test_the_crd_and_the_admission_policy_carry_the_rules() -> None:
    schema = model_baseline_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    metric = schema["properties"]["spec"]["properties"]["metrics"]["items"]
    judge_rules = {r["message"] for r in metric["properties"]["judge"]["x-kubernetes-validations"]}
    assert {"a histogram judge needs bucketQuery", "bucketQuery is only read by a histogram judge"} <= judge_rules
    metric_rules = {r["message"] for r in metric["x-kubernetes-validations"]}
    assert "a histogram judge reads judge.bucketQuery; remove query" in metric_rules
    evidence = metric["properties"]["baselineEvidence"]
    assert evidence["x-kubernetes-validations"][0]["rule"] == "has(self.samples) != (has(self.exact) && self.exact)"
    assert "step" not in metric["properties"]["judge"]["properties"]  # range queries of aggregates are gone
    policy = {message for _, message in BASELINE_POLICY_RULES}
    assert any('needs baseline: "live"' in m for m in policy)
    assert "spec.metrics: baselineEvidence describes a static baseline value, not a live one" in policy


def _evidence_condition(*metrics: dict[str, Any]) -> dict[str, Any]:
    obj = {"metadata": {"name": "m", "generation": 3}, "spec": {"model": "m", "metrics": list(metrics)}}
    status = baseline_status(obj, [], datetime(2025, 3, 1, tzinfo=UTC))
    return next(c for c in status["conditions"] if c["type"] == EVIDENCE)


def test_a_baseline_taken_as_exact_without_saying_so_is_a_condition() -> None:
    c = _evidence_condition(accuracy(), latency())
    assert (c["status"], c["reason"], c["observedGeneration"]) == ("False", "TakenAsExact", 3)
    assert c["message"].startswith("accuracy (0.92): judged as exact although nothing says so")
    assert "baselineEvidence.samples" in c["message"] and "exact: true" in c["message"]
    for fine in (accuracy(baselineEvidence={"samples": 2000}), accuracy(baselineEvidence={"exact": True})):
        c = _evidence_condition(fine, latency())
        assert (c["status"], c["reason"]) == ("True", "Complete")


def test_an_invalid_spec_gets_no_evidence_condition() -> None:
    obj = {"metadata": {"name": "m"}, "spec": {"model": "m", "metrics": [latency(judge={"type": "histogram"})]}}
    status = baseline_status(obj, [], datetime(2025, 3, 1, tzinfo=UTC))
    assert [c["type"] for c in status["conditions"]] == ["Ready"]
