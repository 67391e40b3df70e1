"""Argo Rollouts on the local cluster: its CRDs from the pinned module, its controller as a local process.

What `LocalArgoRollouts.install()` puts into the cluster, all from the module the argo-rollouts wrapper pins (read
from the module cache, else fetched through `go mod download`, so go.sum checks every file):

- the CRDs of the module's manifests/crds/ (Rollout, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate,
  Experiment);
- a ServiceAccount `argo-rollouts` in namespace `argo-rollouts`, bound to a ClusterRole with the least of the
  upstream rules that a replica-split canary with Prometheus analysis needs (below), and to a Role for the
  notification ConfigMap and Secret in its own namespace (the only Secrets it reads).

The controller runs outside the cluster with a kubeconfig holding a token of that ServiceAccount (a 0600 file, not
argv), leader election off (one replica), its metrics and healthz on free ports. The upstream ClusterRole also
grants Istio, SMI, Ambassador, App Mesh, ALB, APISIX and Traefik objects, Job creation (job metrics), Deployment
updates (workloadRef scale-down) and cluster-wide Secret reads (analysis templates with secretKeyRef): none of them
is needed here, so none is granted. The informers it starts anyway (Jobs, Ingresses) only list and watch.

`cpu_seconds()` and `peak_rss_mib()` read /proc of the controller process, for benchmarks.
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
from e2e.harness.cluster import LocalCluster, free_port
from e2e.harness.components import COMPONENTS, Component, MissingBinaryError, bin_path
from e2e.harness.wait import wait_for

NAMESPACE = "argo-rollouts"
SERVICE_ACCOUNT = "argo-rollouts"
CLUSTER_ROLE = "modelratchet-argo-rollouts"
LOOPBACK = "127.0.0.1"
_HTTP_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError)
_RW = ["get", "list", "watch", "create", "update", "patch", "delete"]
_READ = ["get", "list", "watch"]

# The least of upstream's manifests/role/argo-rollouts-clusterrole.yaml for a basic (replica-split) canary with
# analysis: its own kinds, the ReplicaSets it scales, the Services and Ingresses/Jobs/Pods its informers watch,
# evictions for `restartAt`, Events.
RULES: list[dict[str, Any]] = [
    {"apiGroups": ["argoproj.io"], "resources": ["rollouts", "rollouts/status", "rollouts/finalizers"],
     "verbs": ["get", "list", "watch", "update", "patch"]},
    {"apiGroups": ["argoproj.io"],
     "resources": ["analysisruns", "analysisruns/finalizers", "experiments", "experiments/finalizers"], "verbs": _RW},
    {"apiGroups": ["argoproj.io"], "resources": ["analysistemplates", "clusteranalysistemplates"], "verbs": _READ},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": _RW},
    {"apiGroups": ["", "apps"], "resources": ["deployments", "podtemplates"], "verbs": _READ},
    {"apiGroups": [""], "resources": ["services"], "verbs": [*_READ, "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "update"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "update", "patch"]},
    {"apiGroups": ["networking.k8s.io", "extensions"], "resources": ["ingresses"], "verbs": _READ},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": _READ},
]


def component() -> Component:
    return COMPONENTS["argo-rollouts"]


def crd_files() -> list[Path]:
    files = sorted((module_source(component()) / "manifests" / "crds").glob("*-crd.yaml"))
    if not files:
        raise RuntimeError(f"no CRDs in {component().module}@{component().version} manifests/crds")
    return files


def rbac() -> list[dict[str, Any]]:
    rbac_api = "rbac.authorization.k8s.io/v1"
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]
    notification = {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": _READ}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        {"apiVersion": rbac_api, "kind": "ClusterRole", "metadata": {"name": CLUSTER_ROLE}, "rules": RULES},
        {"apiVersion": rbac_api, "kind": "ClusterRoleBinding", "metadata": {"name": CLUSTER_ROLE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
         "subjects": subject},
        {"apiVersion": rbac_api, "kind": "Role", "metadata": {"name": CLUSTER_ROLE, "namespace": NAMESPACE},
         "rules": [notification]},
        {"apiVersion": rbac_api, "kind": "RoleBinding", "metadata": {"name": CLUSTER_ROLE, "namespace": NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CLUSTER_ROLE},
         "subjects": subject},
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LocalArgoRollouts:
    """The Argo Rollouts controller as a local process under its own ServiceAccount."""

    def __init__(self, cluster: LocalCluster, run_dir: Path, *, owned: bool = True,
                 extra_args: Iterable[str] = ()) -> None:
        self.cluster = cluster
        self.run_dir = run_dir
        self.owned = owned
        self.extra_args = list(extra_args)
        self.binary = bin_path("rollouts-controller")
        self.metrics_port = free_port()
        self.healthz_port = free_port()
        self.log_file = run_dir / "rollouts-controller.log"
        self._proc: procs.ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def install(self) -> None:
        """The module's CRDs, then the ServiceAccount with its RBAC, in one server-side apply."""
        files = crd_files()
        names = [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text())
                 if d and d.get("kind") == "CustomResourceDefinition"]
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=modelratchet-e2e",
                             *[a for f in files for a in ("-f", str(f))], "-f", "-",
                             input="\n---\n".join(json.dumps(o) for o in rbac()))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])

    def _kubeconfig(self) -> Path:
        """A kubeconfig with a token of the controller's ServiceAccount (0600: it holds the token)."""
        token = self.cluster.kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE,
                                     "--duration=24h").stdout.strip()
        admin = json.loads(self.cluster.kubeconfig.read_text())
        ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": SERVICE_ACCOUNT,
            "clusters": [{"name": "local", "cluster": {"server": self.cluster.server,
                                                       "certificate-authority-data": ca}}],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
            "contexts": [{"name": SERVICE_ACCOUNT,
                          "context": {"cluster": "local", "user": SERVICE_ACCOUNT, "namespace": NAMESPACE}}],
        }
        path = self.run_dir / "rollouts-controller.kubeconfig"
        path.touch(mode=0o600)
        path.write_text(json.dumps(config))
        return path

    def start(self, timeout: float = 60.0) -> None:
        if self._proc is not None and self._proc.alive():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(self.binary), f"--kubeconfig={self._kubeconfig()}", "--leader-elect=false",
                f"--metricsPort={self.metrics_port}", f"--healthzPort={self.healthz_port}", "--logformat=text",
                *self.extra_args]
        env = {**os.environ, "POD_NAMESPACE": NAMESPACE}
        env.pop("KUBECONFIG", None)
        self._proc = procs.start("rollouts-controller", argv, log=self.log_file, env=env,
                                 pidfile=self.run_dir / "rollouts-controller.pid", die_with_parent=self.owned)
        if self.owned:
            procs.stop_at_exit(self._proc)
        wait_for(self._healthy, timeout, interval=0.2, message=f"rollouts-controller healthz on {self.healthz_port}",
                 ignore=_HTTP_ERRORS)

    def stop(self, timeout: float = 15.0) -> None:
        procs.stop_one(self._proc, timeout)
        self._proc = None

    def _healthy(self) -> bool:
        if self._proc is None or not self._proc.alive():
            raise RuntimeError(f"rollouts-controller is not running; last lines of {self.log_file}:\n"
                               f"{procs.tail(self.log_file)}")
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.healthz_port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid) if self.pid else 0.0

    def peak_rss_mib(self) -> float:
        return procs.rss_kib(self.pid, "VmHWM") / 1024 if self.pid else 0.0

    def log_tail(self, lines: int = 60) -> str:
        return procs.tail(self.log_file, lines)


@pytest.fixture(scope="session")
def argo_rollouts(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalArgoRollouts]:
    """The controller with its CRDs and RBAC installed, for the session; a missing binary fails, never skips."""
    try:
        controller = LocalArgoRollouts(local_cluster, tmp_path_factory.mktemp("argo-rollouts"))
    except MissingBinaryError as exc:
        pytest.fail(f"{exc}\nrun `make setup` (or `python3 -m e2e.build argo-rollouts`) first", pytrace=False)
    controller.install()
    controller.start()
    try:
        yield controller
    finally:
        print(f"\n[argo-rollouts] cpu {controller.cpu_seconds():.1f} s, peak rss {controller.peak_rss_mib():.0f} MiB "
              f"(log {controller.log_file})")
        controller.stop()
