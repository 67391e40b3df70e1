"""The API server itself refuses a ModelBaseline whose Prometheus address carries credentials, a query or a
fragment (the CRD's pattern), before the operator ever sees it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _baseline(name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelratchet.io/v1alpha1",
        "kind": "ModelBaseline",
        "metadata": {"name": name},
        "spec": {
            "model": "m",
            "prometheus": {"address": address},
            "metrics": [{"name": "a", "threshold": {"type": "max", "value": 1}}],
        },
    }


def _create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "modelratchet.io", "v1alpha1", namespace, "modelbaselines", body
    )


@pytest.mark.parametrize(
    "address",
    [
        "http://user:secret@prometheus.monitoring:9090",
        "http://prometheus.monitoring:9090/?token=x",
        "http://prometheus.monitoring:9090/#x",
        "http://prometheus.monitoring:9090/a b",
    ],
    ids=["userinfo", "query", "fragment", "space"],
)
def test_unsafe_addresses_are_rejected(
    crds: list[str], kube_api: client.ApiClient, namespace: str, address: str
) -> None:
    with pytest.raises(ApiException) as info:
        _create(kube_api, namespace, _baseline("bad", address))
    assert info.value.status == 422, info.value.body
    message = json.loads(info.value.body or "{}")["message"]
    assert "spec.prometheus.address" in message and "should match" in message, message


@pytest.mark.parametrize(
    "address",
    ["http://prometheus.monitoring:9090", "https://thanos.monitoring/select/team-a/", "http://[fd00::1]:9090"],
)
def test_plain_addresses_are_accepted(
    crds: list[str], kube_api: client.ApiClient, namespace: str, address: str
) -> None:
    _create(kube_api, namespace, _baseline("good", address))
