"""The CRDs install on a real API server, which applies their schema and CEL rules itself.

`baseline` is a number or "live", which a CRD schema cannot type, so CRD CEL rules cannot refer to it;
the rules about it ("ratio needs a non-zero baseline") come from a ValidatingAdmissionPolicy in crds/.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP, VERSION = "modelratchet.io", "v1alpha1"

BASELINE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ModelBaseline",
    "metadata": {"name": "fraud-detector"},
    "spec": {
        "model": "fraud-detector",
        "neutralBand": 0.01,
        "metrics": [
            {
                "name": "eval_loss",
                "direction": "lowerIsBetter",
                "baseline": 0.45,
                "threshold": {"type": "max", "value": 0.50},
                "severity": "critical",
                "description": "Eval loss must stay below 0.50",
            },
            {
                "name": "accuracy",
                "baseline": 0.92,
                "threshold": {"type": "ratio", "value": 0.05},
                "query": 'sum(rate(model_correct_total{model="{{ model }}",checkpoint="{{ checkpoint }}"}[2m]))\n'
                '/ sum(rate(model_predictions_total{model="{{ model }}",checkpoint="{{ checkpoint }}"}[2m]))\n',
                "minSamples": 200,
                "samplesQuery": 'sum(increase(model_predictions_total{checkpoint="{{ checkpoint }}"}[10m]))',
            },
            {
                "name": "elo",
                "baseline": "live",
                "threshold": {
                    "type": "delta",
                    "tiers": [{"value": 20, "severity": "info"}, {"value": 30, "severity": "critical"}],
                },
            },
        ],
    },
}

ROLLOUT: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ModelRollout",
    "metadata": {"name": "fraud-detector"},
    "spec": {
        "targetRef": {"name": "fraud-serving"},
        "checkpoint": "s3://models/fraud/v43",
        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
        "baselineRef": {"name": "fraud-detector"},
        "steps": [
            {"setWeight": 10},
            {"analyze": {"duration": "5m"}},
            {"setWeight": 50},
            {"pause": {}},
            {"analyze": {"duration": "10m"}},
        ],
        "analysis": {
            "interval": "30s",
            "failureLimit": 0,
            "inconclusiveLimit": 3,
            "onInconclusive": "rollback",
            "warningPolicy": "proceed",
        },
        "postPromotion": {"watch": "30m"},
        "notifications": [{"webhook": {"secretRef": {"name": "slack-hook", "key": "url"}}}],
    },
}

PLURALS = {"ModelBaseline": "modelbaselines", "ModelRollout": "modelrollouts"}


def _create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    result = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[body["kind"]], body
    )
    assert isinstance(result, dict)
    return result


def _rejected(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> str:
    """Create `body`, expecting the API server's 422; returns its message."""
    with pytest.raises(ApiException) as info:
        _create(api, namespace, body)
    assert info.value.status == 422, info.value.body
    status = json.loads(info.value.body or "{}")
    assert status["reason"] == "Invalid"
    return str(status["message"])


def _mutated(base: dict[str, Any], mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(base)
    mutate(body["spec"])
    return body


def test_crds_are_established(crds: list[str], kube_api: client.ApiClient) -> None:
    assert {"modelbaselines.modelratchet.io", "modelrollouts.modelratchet.io"} <= set(crds)
    ext = client.ApiextensionsV1Api(kube_api)
    for name in crds:
        crd = kube_api.sanitize_for_serialization(ext.read_custom_resource_definition(name))  # type: ignore[no-untyped-call]
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NamesAccepted") == "True", (name, conditions)


def test_valid_resources_are_accepted_with_defaults(crds: list[str], kube_api: client.ApiClient,
                                                    namespace: str) -> None:
    baseline = _create(kube_api, namespace, BASELINE)
    accuracy = next(m for m in baseline["spec"]["metrics"] if m["name"] == "accuracy")
    # Structural-schema defaults come from the API server, not the operator.
    assert accuracy["direction"] == "higherIsBetter"
    assert accuracy["severity"] == "critical"

    rollout = _create(kube_api, namespace, ROLLOUT)
    assert rollout["spec"]["steps"][3] == {"pause": {}}
    assert rollout["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "expected"),
    [
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][0]["threshold"].update(type="bogus"),
            "spec.metrics[0].threshold.type",
            'Unsupported value: "bogus"',
            id="threshold-type-enum",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][0]["threshold"].update(tiers=[{"value": 0.6, "severity": "warning"}]),
            "spec.metrics[0].threshold",
            "exactly one of value or tiers must be set",
            id="threshold-value-and-tiers",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][0].update(threshold={"type": "max", "tiers": [{"value": 1, "severity": "info"}]}),
            "spec.metrics[0].threshold",
            "tiers are only allowed for delta and ratio thresholds",
            id="tiers-on-max-threshold",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][1].pop("samplesQuery"),
            "spec.metrics[1].samplesQuery",
            "minSamples needs samplesQuery",
            id="min-samples-without-query",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][2]["threshold"]["tiers"].reverse(),
            "spec.metrics[2].threshold",
            "tiers must be in strictly increasing order of value",
            id="tiers-out-of-order",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][2].update(judge={"type": "histogram"}),
            "spec.metrics[2].judge",
            "a histogram judge needs bucketQuery",
            id="histogram-without-bucket-query",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][1].update(judge={"type": "mannWhitney"}),
            "spec.metrics[1].query",
            "a mannWhitney judge ranks per-request samples given to `modelratchet check`",
            id="mann-whitney-on-a-query",
        ),
        pytest.param(
            "ModelBaseline",
            lambda s: s["metrics"][1].update(baselineEvidence={"samples": 2000, "exact": True}),
            "spec.metrics[1].baselineEvidence",
            "set samples (what the baseline was measured on) or exact: true",
            id="evidence-samples-and-exact",
        ),
        pytest.param(
            "ModelRollout",
            lambda s: s["steps"][0].update(pause={}),
            "spec.steps[0]",
            "each step needs exactly one of setWeight, analyze, pause, setHeaderRoute, setMirror",
            id="step-setweight-and-pause",
        ),
        pytest.param(
            "ModelRollout",
            lambda s: s["steps"][2].update(setWeight=150),
            "spec.steps[2].setWeight",
            "should be less than or equal to 100",
            id="setweight-out-of-bounds",
        ),
    ],
)
def test_invalid_resources_are_rejected_by_the_api_server(
    crds: list[str],
    kube_api: client.ApiClient,
    namespace: str,
    kind: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
    expected: str,
) -> None:
    base = BASELINE if kind == "ModelBaseline" else ROLLOUT
    message = _rejected(kube_api, namespace, _mutated(base, mutate))
    assert field in message, message
    assert expected in message, message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda s: s["metrics"][1].update(baseline=0), "a ratio threshold needs a non-zero baseline",
                     id="ratio-baseline-zero"),
        pytest.param(lambda s: s["metrics"][2].pop("baseline"), "delta and ratio thresholds need a baseline",
                     id="delta-without-baseline"),
        pytest.param(lambda s: s["metrics"][0].update(baseline="yesterday"), 'baseline must be a number or "live"',
                     id="baseline-not-number-or-live"),
        pytest.param(lambda s: _judge_from_buckets(s["metrics"][1]),
                     'a histogram or mannWhitney judge compares with the stable checkpoint', id="histogram-static"),
        pytest.param(lambda s: s["metrics"][2].update(baselineEvidence={"exact": True}),
                     "baselineEvidence describes a static baseline value", id="evidence-on-live"),
    ],
)
def test_baseline_rules_are_enforced_by_the_admission_policy(
    crds: list[str], kube_api: client.ApiClient, namespace: str, mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    body = _mutated(BASELINE, mutate)
    # A new policy is enforced once the API server has compiled it: allow it a few seconds.
    message = wait_for(lambda: _try_reject(kube_api, namespace, body), timeout=30, message="policy enforced")
    assert "ValidatingAdmissionPolicy" in message and expected in message, message


def _judge_from_buckets(metric: dict[str, Any]) -> None:
    metric.pop("query")
    metric["judge"] = {"type": "histogram", "bucketQuery": "sum by (le) (x_bucket)"}


def _try_reject(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> str | None:
    try:
        return _rejected(api, namespace, body)
    except pytest.fail.Exception:
        # Accepted: the policy is not active yet; remove the object and try again.
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            "modelratchet.io", "v1alpha1", namespace, "modelbaselines", body["metadata"]["name"]
        )
        return None
