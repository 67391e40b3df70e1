"""Which MLflow server the operator talks to for a ModelRollout, and with which token: its own, or an allowed
one (checked before any Secret is read), never its own token elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from modelratchet.api.rollout import ModelRolloutSpec
from modelratchet.effects import Effects
from modelratchet.registry.mlflow import RegistryError
from modelratchet.settings import OperatorSettings

OWN = "http://mlflow.ml:5000"


def spec(**mlflow: Any) -> ModelRolloutSpec:
    return ModelRolloutSpec.model_validate(
        {
            "targetRef": {"name": "t"},
            "source": {"mlflow": {"model": "digits", **mlflow}},
            "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
            "baselineRef": {"name": "b"},
            "steps": [{"setWeight": 10}],
        }
    )


def effects(**settings: Any) -> Effects:
    # An API client that is never used: nothing here may read a Secret.
    return Effects(OperatorSettings(**settings), client.ApiClient())


def test_the_operators_own_server_gets_its_token() -> None:
    conn = effects(mlflow_tracking_uri=OWN, mlflow_token="s3cret").connection(spec(), "ns")
    assert (conn.base, conn.token) == (OWN, "s3cret")
    same = effects(mlflow_tracking_uri=OWN, mlflow_token="s3cret").connection(spec(trackingURI=OWN + "/"), "ns")
    assert same.token == "s3cret"


def test_another_server_must_be_allowed_and_never_gets_the_operators_token() -> None:
    other = "https://mlflow.team-b.example/prefix"
    e = effects(
        mlflow_tracking_uri=OWN, mlflow_token="s3cret", mlflow_allowed_addresses=("https://mlflow.team-b.example",)
    )
    conn = e.connection(spec(trackingURI=other), "ns")
    assert (conn.base, conn.token) == (other, None)


def test_a_server_not_allowed_is_refused_before_any_secret_is_read() -> None:
    e = effects(mlflow_tracking_uri=OWN)
    with pytest.raises(RegistryError) as refused:
        e.connection(spec(trackingURI="http://evil.example:80", secretRef={"name": "token", "key": "t"}), "ns")
    assert refused.value.reason == "AddressNotAllowed"
    assert "spec.source.mlflow.trackingURI: 'http://evil.example:80' is not an allowed MLflow address" in str(
        refused.value
    )
    assert "MODELRATCHET_MLFLOW_ALLOWED_ADDRESSES" in str(refused.value)


def test_no_server_at_all_says_where_to_set_one() -> None:
    with pytest.raises(RegistryError) as missing:
        effects().connection(spec(), "ns")
    assert missing.value.reason == "RegistryNotConfigured" and "mlflow.trackingURI" in str(missing.value)
    seen = effects().resolve(spec(), "ns")
    assert seen is not None and seen.resolved is None and seen.reason == "RegistryNotConfigured"


def test_spec_needs_exactly_one_of_checkpoint_and_source() -> None:
    body = spec().model_dump(by_alias=True, exclude_none=True)
    with pytest.raises(ValueError, match="set exactly one of checkpoint or source"):
        ModelRolloutSpec.model_validate({**body, "checkpoint": "s3://m/v2"})
    del body["source"]
    with pytest.raises(ValueError, match="set exactly one of checkpoint or source"):
        ModelRolloutSpec.model_validate(body)
    with pytest.raises(ValueError, match="registry needs source"):
        ModelRolloutSpec.model_validate({**body, "checkpoint": "s3://m/v2", "registry": {}})
