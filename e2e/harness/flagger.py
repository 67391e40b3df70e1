"""Flagger on the local cluster: its CRDs and RBAC from the pinned module, its controller as a local process.

What `LocalFlagger.install()` puts into the cluster, all from the module the flagger wrapper pins (read from the
module cache, else fetched through `go mod download`, so go.sum checks every file):

- the CRDs of the module's artifacts/flagger/crd.yaml (Canary, MetricTemplate, AlertProvider);
- a ServiceAccount `flagger` in namespace `flagger-system`, bound to a ClusterRole with exactly the rules of the
  module's kustomize/base/flagger/rbac.yaml, the role its install docs apply. Unlike the Argo Rollouts harness,
  nothing is trimmed: Flagger's config tracking reads the ConfigMaps and Secrets of every target it manages, and
  its router creates Services, Deployments and HTTPRoutes in the namespaces of its Canaries.

The controller runs outside the cluster with a kubeconfig holding a token of that ServiceAccount (a 0600 file, not
argv), watching all namespaces (no -namespace, as its docs install it), with the Gateway API router
(`-mesh-provider=gatewayapi:v1`), the given Prometheus as its metrics server, leader election off (one replica),
and its HTTP server (/healthz, /metrics) on a free port.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.build import module_source
from e2e.harness import procs
from e2e.harness.argo_rollouts import cpu_seconds
from e2e.harness.cluster import LocalCluster, free_port
from e2e.harness.components import COMPONENTS, Component, MissingBinaryError, bin_path
from e2e.harness.wait import wait_for

NAMESPACE = "flagger-system"
SERVICE_ACCOUNT = "flagger"
CLUSTER_ROLE = "modelratchet-flagger"
MESH_PROVIDER = "gatewayapi:v1"
LOOPBACK = "127.0.0.1"
_HTTP_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError)


def component() -> Component:
    return COMPONENTS["flagger"]


def _module_docs(relative: str) -> list[dict[str, Any]]:
    path = module_source(component()) / relative
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if not docs:
        raise RuntimeError(f"nothing in {component().module}@{component().version} {relative}")
    return docs


def crds() -> list[dict[str, Any]]:
    return [d for d in _module_docs("artifacts/flagger/crd.yaml") if d.get("kind") == "CustomResourceDefinition"]


def upstream_rules() -> list[dict[str, Any]]:
    """The rules of the ClusterRole that Flagger's install (kustomize/base/flagger) binds its ServiceAccount to."""
    roles = [d for d in _module_docs("kustomize/base/flagger/rbac.yaml") if d.get("kind") == "ClusterRole"]
    if len(roles) != 1:
        raise RuntimeError(f"expected one ClusterRole in kustomize/base/flagger/rbac.yaml, found {len(roles)}")
    return list(roles[0]["rules"])


def rbac() -> list[dict[str, Any]]:
    rbac_api = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        {"apiVersion": rbac_api, "kind": "ClusterRole", "metadata": {"name": CLUSTER_ROLE}, "rules": upstream_rules()},
        {"apiVersion": rbac_api, "kind": "ClusterRoleBinding", "metadata": {"name": CLUSTER_ROLE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]},
    ]


def service_account_kubeconfig(cluster: LocalCluster, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig holding a 24 h token of one ServiceAccount (0600: it holds the token)."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=24h").stdout.strip()
    ca = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": [{"name": "local", "cluster": {"server": cluster.server, "certificate-authority-data": ca}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "local", "user": account, "namespace": namespace}}],
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(config))
    return path


class LocalFlagger:
    """The Flagger controller as a local process under its own ServiceAccount, routing through the Gateway API."""

    def __init__(self, cluster: LocalCluster, run_dir: Path, metrics_server: str, *, owned: bool = True,
                 extra_args: Iterable[str] = ()) -> None:
        self.cluster = cluster
        self.run_dir = run_dir
        self.metrics_server = metrics_server
        self.owned = owned
        self.extra_args = list(extra_args)
        self.binary = bin_path("flagger")
        self.port = free_port()
        self.log_file = run_dir / "flagger.log"
        self._proc: procs.ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def install(self) -> None:
        """The module's CRDs, then the ServiceAccount with upstream's RBAC, in one server-side apply."""
        definitions = crds()
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=modelratchet-e2e",
                             "-f", "-", input="\n---\n".join(json.dumps(o) for o in [*definitions, *rbac()]))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             *[f"crd/{d['metadata']['name']}" for d in definitions])

    def start(self, timeout: float = 60.0) -> None:
        if self._proc is not None and self._proc.alive():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        kubeconfig = service_account_kubeconfig(self.cluster, SERVICE_ACCOUNT, NAMESPACE,
                                                self.run_dir / "flagger.kubeconfig")
        argv = [str(self.binary), f"-kubeconfig={kubeconfig}", f"-mesh-provider={MESH_PROVIDER}",
                f"-metrics-server={self.metrics_server}", f"-port={self.port}", "-log-level=info",
                "-zap-encoding=console", *self.extra_args]
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        self._proc = procs.start("flagger", argv, log=self.log_file, env=env, pidfile=self.run_dir / "flagger.pid",
                                 die_with_parent=self.owned)
        if self.owned:
            procs.stop_at_exit(self._proc)
        wait_for(self._healthy, timeout, interval=0.2, message=f"flagger /healthz on {self.port}",
                 ignore=_HTTP_ERRORS)

    def stop(self, timeout: float = 15.0) -> None:
        procs.stop_one(self._proc, timeout)
        self._proc = None

    def _healthy(self) -> bool:
        if self._proc is None or not self._proc.alive():
            raise RuntimeError(f"flagger is not running; last lines of {self.log_file}:\n{procs.tail(self.log_file)}")
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid) if self.pid else 0.0

    def peak_rss_mib(self) -> float:
        return procs.rss_kib(self.pid, "VmHWM") / 1024 if self.pid else 0.0

    def log_tail(self, lines: int = 60) -> str:
        return procs.tail(self.log_file, lines)


@pytest.fixture(scope="session")
def flagger(local_cluster: LocalCluster, prometheus: Any, data_plane: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFlagger]:
    """The controller with its CRDs and RBAC, after the data plane (whose Gateway API CRDs its router needs);
    a missing binary fails, never skips."""
    try:
        controller = LocalFlagger(local_cluster, tmp_path_factory.mktemp("flagger"), prometheus.url)
    except MissingBinaryError as exc:
        pytest.fail(f"{exc}\nrun `make setup` (or `python3 -m e2e.build flagger`) first", pytrace=False)
    controller.install()
    controller.start()
    try:
        yield controller
    finally:
        print(f"\n[flagger] cpu {controller.cpu_seconds():.1f} s, peak rss {controller.peak_rss_mib():.0f} MiB "
              f"(log {controller.log_file})")
        controller.stop()
