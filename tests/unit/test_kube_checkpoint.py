"""The checkpoint field of a pod template, and the canary cloned from the target."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from modelratchet.api.rollout import CheckpointFrom
from modelratchet.kube.checkpoint import CheckpointFieldError, apply_patch, read_checkpoint, with_checkpoint
from modelratchet.kube.deployments import (
    CHECKPOINT_ANNOTATION,
    ROLE_LABEL,
    ROLLOUT_ANNOTATION,
    ROLLOUT_LABEL,
    build_canary,
    canary_state,
    is_available,
    rollout_label_value,
    rollout_of_canary,
    target_state,
)

ENV = CheckpointFrom(container="server", env="MODEL_CHECKPOINT")
IMAGE = CheckpointFrom(container="server", image=True)


def template() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "digits"}},
        "spec": {
            "containers": [
                {"name": "sidecar", "image": "proxy:1", "env": [{"name": "MODEL_CHECKPOINT", "value": "nope"}]},
                {
                    "name": "server",
                    "image": "registry.local/digits:v1",
                    "env": [{"name": "LOG", "value": "info"}, {"name": "MODEL_CHECKPOINT", "value": "s3://m/v1"}],
                },
            ]
        },
    }


def deployment(replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "digits", "namespace": "ml", "generation": 2, "labels": {"team": "ml"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "digits"}},
            "template": template(),
            "minReadySeconds": 1,
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3,
            "readyReplicas": 3,
        },
    }


def test_reads_env_of_the_named_container_only() -> None:
    assert read_checkpoint(template(), ENV) == "s3://m/v1"
    assert read_checkpoint(template(), IMAGE) == "registry.local/digits:v1"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (CheckpointFrom(container="model", env="MODEL_CHECKPOINT"), "container 'model' not found"),
        (CheckpointFrom(container="server", env="CKPT"), "env var 'CKPT' not found"),
    ],
)
def test_missing_field_names_what_is_missing(source: CheckpointFrom, fragment: str) -> None:
    with pytest.raises(CheckpointFieldError, match=fragment):
        read_checkpoint(template(), source)


def test_value_from_is_refused() -> None:
    t = template()
    t["spec"]["containers"][1]["env"][1] = {"name": "MODEL_CHECKPOINT", "valueFrom": {"configMapKeyRef": {}}}
    with pytest.raises(CheckpointFieldError, match="literal value"):
        read_checkpoint(t, ENV)


def test_with_checkpoint_changes_only_that_field() -> None:
    original = template()
    out = with_checkpoint(original, ENV, "s3://m/v2")
    assert original == template()  # not mutated
    assert read_checkpoint(out, ENV) == "s3://m/v2"
    expected = template()
    expected["spec"]["containers"][1]["env"][1]["value"] = "s3://m/v2"
    assert out == expected
    assert read_checkpoint(with_checkpoint(original, IMAGE, "digits:v2"), IMAGE) == "digits:v2"


def test_apply_patch_owns_just_the_field() -> None:
    assert apply_patch(ENV, "v9") == {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "server", "env": [{"name": "MODEL_CHECKPOINT", "value": "v9"}]}]}
            }
        }
    }
    assert apply_patch(IMAGE, "img:9") == {
        "spec": {"template": {"spec": {"containers": [{"name": "server", "image": "img:9"}]}}}
    }


def test_canary_is_selected_by_the_service_but_not_by_the_target() -> None:
    owner = {"metadata": {"name": "digits-rollout", "uid": "u-1"}}
    canary = build_canary(deployment(), ENV, "s3://m/v2", 2, owner)
    pod_labels = canary["spec"]["template"]["metadata"]["labels"]
    # The Service selects app=digits: canary pods carry it.
    assert pod_labels["app"] == "digits"
    # The canary's own selector is narrower, so the two Deployments never claim each other's pods.
    assert canary["spec"]["selector"]["matchLabels"] == {
        "app": "digits",
        ROLE_LABEL: "canary",
        ROLLOUT_LABEL: "digits-rollout",
    }
    assert canary["metadata"]["name"] == "digits-canary"
    assert canary["spec"]["replicas"] == 2
    assert canary["spec"]["minReadySeconds"] == 1
    assert read_checkpoint(canary["spec"]["template"], ENV) == "s3://m/v2"
    assert canary["metadata"]["annotations"][CHECKPOINT_ANNOTATION] == "s3://m/v2"
    ref = canary["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("ModelRollout", "u-1", True)


def test_target_state_and_availability() -> None:
    dep = deployment()
    state = target_state(dep, ENV)
    assert (state.checkpoint, state.replicas, state.ready_replicas, state.available, state.error) == (
        "s3://m/v1",
        3,
        3,
        True,
        None,
    )
    rolling = copy.deepcopy(dep)
    rolling["metadata"]["generation"] = 3
    assert not is_available(rolling)
    surge = copy.deepcopy(dep)
    surge["status"]["replicas"] = 4  # an old pod still around
    assert not is_available(surge)
    broken = target_state(dep, CheckpointFrom(container="nope", env="X"))
    assert broken.checkpoint is None and broken.error and "'nope' not found" in broken.error


def test_canary_ready_pods_of_an_old_template_do_not_count() -> None:
    owner = {"metadata": {"name": "r", "uid": "u"}}
    canary = build_canary(deployment(), ENV, "v2", 2, owner)
    canary["metadata"]["generation"] = 2
    canary["status"] = {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}
    assert canary_state(canary).ready_replicas == 0
    canary["status"]["observedGeneration"] = 2
    assert canary_state(canary).ready_replicas == 2
    assert canary_state(canary).checkpoint == "v2"


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics, for the operators a Deployment selector may use."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _with_expressions() -> dict[str, Any]:
    dep = deployment()
    dep["spec"]["selector"]["matchExpressions"] = [
        {"key": "tier", "operator": "In", "values": ["serving"]},
        {"key": "shadow", "operator": "DoesNotExist"},
        # A target may exclude canary pods from itself; the canary cannot keep that part.
        {"key": ROLE_LABEL, "operator": "DoesNotExist"},
    ]
    dep["spec"]["template"]["metadata"]["labels"]["tier"] = "serving"
    return dep


def test_canary_selector_keeps_the_target_match_expressions() -> None:
    target = _with_expressions()
    canary = build_canary(target, ENV, "v2", 1, {"metadata": {"name": "r", "uid": "u"}})
    selector = canary["spec"]["selector"]
    assert selector["matchExpressions"] == [
        {"key": "tier", "operator": "In", "values": ["serving"]},
        {"key": "shadow", "operator": "DoesNotExist"},
    ]
    pod_labels = canary["spec"]["template"]["metadata"]["labels"]
    assert _matches(selector, pod_labels), "a Deployment's template must match its own selector"
    # Pods the target would not select (another tier) are not the canary's either.
    assert not _matches(selector, {**pod_labels, "tier": "batch"})
    assert not _matches(target["spec"]["selector"], pod_labels), "the target does not claim canary pods"


def test_two_canaries_in_one_namespace_never_select_each_other() -> None:
    a = build_canary(_with_expressions(), ENV, "v2", 1, {"metadata": {"name": "digits-a", "uid": "ua"}})
    other = deployment()
    other["metadata"]["name"] = "digits-b"
    other["spec"]["template"]["metadata"]["labels"]["tier"] = "serving"
    b = build_canary(other, ENV, "v3", 1, {"metadata": {"name": "digits-b", "uid": "ub"}})
    a_pods, b_pods = (c["spec"]["template"]["metadata"]["labels"] for c in (a, b))
    assert _matches(a["spec"]["selector"], a_pods) and _matches(b["spec"]["selector"], b_pods)
    assert not _matches(a["spec"]["selector"], b_pods)
    assert not _matches(b["spec"]["selector"], a_pods)


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize("length", [1, 63, 64, 200, 253])
def test_rollout_label_values_are_valid_for_any_name_length(length: int) -> None:
    name = ("model-v1.fraud-" * 20)[: length - 1] + "x"
    value = rollout_label_value(name)
    assert len(value) <= 63 and LABEL_VALUE.match(value), value
    if length <= 63:
        assert value == name
    canary = build_canary(deployment(), ENV, "v2", 1, {"metadata": {"name": name, "uid": "u"}})
    assert canary["metadata"]["labels"][ROLLOUT_LABEL] == value
    assert canary["spec"]["selector"]["matchLabels"][ROLLOUT_LABEL] == value
    assert canary["metadata"]["annotations"][ROLLOUT_ANNOTATION] == name
    assert rollout_of_canary(canary["metadata"]) == name


def test_long_names_sharing_a_prefix_get_distinct_label_values() -> None:
    prefix = "a" * 100
    assert rollout_label_value(prefix + "-one") != rollout_label_value(prefix + "-two")


def test_rollout_of_canary_falls_back_to_the_controller_reference() -> None:
    """A canary made before the annotation existed still maps to its rollout."""
    meta = {
        "labels": {ROLE_LABEL: "canary", ROLLOUT_LABEL: "r"},
        "ownerReferences": [
            {"apiVersion": "modelratchet.io/v1alpha1", "kind": "ModelRollout", "name": "r", "controller": True}
        ],
    }
    assert rollout_of_canary(meta) == "r"
    assert rollout_of_canary({"labels": {ROLE_LABEL: "canary"}}) is None
