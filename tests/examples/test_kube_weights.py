"""kube_weights: traffic share per checkpoint from ready replicas, as a Service spreads it."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1EnvVar,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)
from kubernetes.client.exceptions import ApiException

from e2e.harness.model_servers import kube_weights, ready_weights


def deployment(name: str, checkpoint: str, ready: int | None, image: str = "digits:dev") -> V1Deployment:
    containers = [
        V1Container(name="proxy", image="envoy", env=[V1EnvVar(name="MODEL_CHECKPOINT", value="decoy")]),
        V1Container(name="server", image=image, env=[V1EnvVar(name="MODEL_CHECKPOINT", value=checkpoint)]),
    ]
    return V1Deployment(
        metadata=V1ObjectMeta(name=name, namespace="ml"),
        spec=V1DeploymentSpec(
            selector=V1LabelSelector(match_labels={"app": "digits-serving"}),
            template=V1PodTemplateSpec(spec=V1PodSpec(containers=containers)),
        ),
        status=V1DeploymentStatus(ready_replicas=ready),
    )


class FakeApps(AppsV1Api):
    """Answers read_namespaced_deployment from a dict, like the API server would."""

    def __init__(self, deployments: dict[str, V1Deployment]) -> None:
        super().__init__(ApiClient())
        self.deployments = deployments

    def read_namespaced_deployment(self, name: str, namespace: str, **kwargs: Any) -> V1Deployment:
        assert namespace == "ml"
        if name not in self.deployments:
            raise ApiException(status=404, reason="Not Found")
        return self.deployments[name]


def test_weights_are_ready_replicas_per_checkpoint() -> None:
    apps = FakeApps(
        {
            "digits-serving": deployment("digits-serving", "s3://models/digits/v1", 3),
            "digits-serving-canary": deployment("digits-serving-canary", "s3://models/digits/v2", 1),
        }
    )
    weights = kube_weights(apps, "ml", ["digits-serving", "digits-serving-canary"])
    assert weights() == {"s3://models/digits/v1": 3.0, "s3://models/digits/v2": 1.0}

    # Re-read on every call: the canary scales up, then is removed.
    apps.deployments["digits-serving-canary"].status.ready_replicas = 3
    assert weights() == {"s3://models/digits/v1": 3.0, "s3://models/digits/v2": 3.0}
    del apps.deployments["digits-serving-canary"]
    assert weights() == {"s3://models/digits/v1": 3.0}


def test_unready_and_same_checkpoint_deployments() -> None:
    apps = FakeApps(
        {
            "a": deployment("a", "s3://models/digits/v1", 2),
            "b": deployment("b", "s3://models/digits/v1", 1),
            "c": deployment("c", "s3://models/digits/v3", None),  # no ready pods: the API omits the field
        }
    )
    assert ready_weights(apps, "ml", ["a", "b", "c"]) == {"s3://models/digits/v1": 3.0}


def test_custom_checkpoint_of() -> None:
    apps = FakeApps({"a": deployment("a", "ignored", 2, image="digits:v7")})

    def image_of(d: V1Deployment) -> str:
        return str(next(c.image for c in d.spec.template.spec.containers if c.name == "server"))

    assert ready_weights(apps, "ml", ["a"], checkpoint_of=image_of) == {"digits:v7": 2.0}


def test_other_api_errors_propagate() -> None:
    class Broken(FakeApps):
        def read_namespaced_deployment(self, name: str, namespace: str, **kwargs: Any) -> V1Deployment:
            raise ApiException(status=500, reason="boom")

    with pytest.raises(ApiException):
        ready_weights(Broken({}), "ml", ["a"])


def test_accepts_an_api_client() -> None:
    weights = kube_weights(ApiClient(), "ml", [])
    assert weights() == {}
