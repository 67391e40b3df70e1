"""The checkpoint field of a pod template, and the canary cloned from the target."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from modelratchet.api.rollout import CheckpointFrom
from modelratchet.kube.checkpoint import CheckpointFieldError, apply_patch, read_checkpoint, with_checkpoint
from modelratchet.kube.deployments import (
    CHECKPOINT_ANNOTATION,
    ROLE_LABEL,
    build_canary,
    canary_state,
    is_available,
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
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "digits", ROLE_LABEL: "canary"}
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
