"""Fixtures of the end-to-end suite: the operator process and a serving scenario per test (on the data plane)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.mlflow import SESSION_TRACKING_URI
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import V1, Scenario


@pytest.fixture(scope="session")
def operator(
    local_cluster: Any,
    crds: Any,
    prometheus: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    # The MLflow server e2e/test_mlflow.py starts (on this address) is the operator's default tracking server.
    proc = OperatorProcess(
        Path(local_cluster.kubeconfig), prometheus.url, log_dir=tmp_path_factory.mktemp("operator"),
        # MLflow on two loaded cores takes seconds per request: a test timeout, not the 5 s default.
        extra_env={"MODELRATCHET_MLFLOW_TRACKING_URI": SESSION_TRACKING_URI, "MODELRATCHET_MLFLOW_TIMEOUT": "30"},
    )
    proc.start()
    yield proc
    print(f"\n[operator] rss {proc.rss_mib():.1f} MiB, peak {proc.peak_rss_mib():.1f} MiB (log {proc.log_path})")
    proc.stop()


@pytest.fixture
def scenario(
    kube_api: Any, namespace: str, prometheus: Any, operator: OperatorProcess, data_plane: Any, tmp_path: Path
) -> Iterator[Scenario]:
    """The target on V1 with pods that serve, its Services and HTTPRoute, and traffic through the gateway."""
    sc = Scenario(kube_api, namespace, prometheus, model=f"digits-{namespace}", log_dir=tmp_path,
                  data_plane=data_plane)
    sc.start_servers()
    sc.deploy_target(V1)
    sc.start_traffic()
    yield sc
    sc.close()
    if not operator.alive():
        pytest.fail(f"the operator died:\n{operator.log_tail()}")


@pytest.fixture(scope="session")
def argocd(local_cluster: Any, kube_api: Any, crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Argo CD (application-controller, repo-server, redis) on the cluster: the one `e2e/cluster.sh up
    --with-argocd` started, else one started here (e2e/harness/argocd.py)."""
    from e2e.harness.argocd import LocalArgoCD
    from e2e.harness.components import MissingBinaryError
    from e2e.harness.fixtures import _fail_missing

    argo = LocalArgoCD.running(local_cluster)
    owned = argo is None
    if argo is None:
        try:
            argo = LocalArgoCD(local_cluster, tmp_path_factory.mktemp("argocd"))
        except MissingBinaryError as exc:
            _fail_missing(exc)
        argo.start()
        print(f"\n[argocd] up in {argo.startup_seconds:.1f} s: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in argo.phases.items()))
    argo.api = kube_api
    try:
        yield argo
    finally:
        if owned:
            argo.stop()
