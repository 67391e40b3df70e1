"""pytest fixtures for tests against real components (registered from the root conftest.py).

- local_cluster (session): LocalCluster; reuses a running one if MODELRATCHET_KUBECONFIG is set.
- kube_api (session): kubernetes.client.ApiClient for that cluster.
- crds (session): applies crds/*.yaml server-side, waits for Established, returns CRD names.
- prometheus (session): LocalPrometheus on a free loopback port.
- namespace (function): a fresh namespace name, deleted (without waiting) afterwards.
- data_plane (session): DataPlane: pod network namespace, pod supervisor, Traefik gateway with the Gateway API
  and traefik.io CRDs, and Prometheus discovering the serving pods (e2e/harness/dataplane.py).

Missing binaries fail the test with the command that builds them; nothing here skips.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import yaml

from e2e.harness.cluster import LocalCluster
from e2e.harness.components import REPO_ROOT, MissingBinaryError
from e2e.harness.netns import PodNetworkError
from e2e.harness.procs import rss_kib
from e2e.harness.prometheus import LocalPrometheus

if TYPE_CHECKING:
    from e2e.harness.dataplane import DataPlane

CRD_DIR = REPO_ROOT / "crds"
_usage: dict[str, dict[str, int]] = {}


def _fail_missing(exc: MissingBinaryError) -> NoReturn:
    hint = "run `make setup` (or e2e/setup.sh) first"
    pytest.fail(f"{exc}\n{hint}" + (" — CI must provision these, not skip" if os.environ.get("CI") else ""),
                pytrace=False)


def _record_usage(name: str, pids: dict[str, int | None]) -> None:
    live = {k: p for k, p in pids.items() if p}
    _usage[name] = {
        "rss_kib": sum(rss_kib(p) for p in live.values()),
        "peak_kib": sum(rss_kib(p, "VmHWM") for p in live.values()),
    }


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    previous = os.environ.get("KUBECONFIG")
    reuse = os.environ.get("MODELRATCHET_KUBECONFIG")
    try:
        if reuse:
            cluster = LocalCluster.attach(Path(reuse))
            cluster.bin("kubectl")
        else:
            cluster = LocalCluster.up(tmp_path_factory.mktemp("cluster"), owned=True)
    except MissingBinaryError as exc:
        _fail_missing(exc)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        if cluster.owned:
            _record_usage("cluster", {n: p.pid for n, p in cluster.processes.items()})
            cluster.down()


@pytest.fixture(scope="session")
def kube_api(local_cluster: LocalCluster) -> Iterator[Any]:
    # Imported lazily: unit-only runs load this plugin too and need not pay for the client.
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def crds(local_cluster: LocalCluster) -> list[str]:
    files = sorted(CRD_DIR.glob("*.yaml"))
    if not files:
        pytest.fail(f"no CRD manifests in {CRD_DIR}", pytrace=False)
    names = [
        doc["metadata"]["name"]
        for f in files
        for doc in yaml.safe_load_all(f.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    args = [a for f in files for a in ("-f", str(f))]
    local_cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=modelratchet-e2e", *args)
    local_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return names


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    try:
        prom = LocalPrometheus(tmp_path_factory.mktemp("prometheus"))
    except MissingBinaryError as exc:
        _fail_missing(exc)
    prom.start()
    try:
        yield prom
    finally:
        _record_usage("prometheus", {"prometheus": prom.pid})
        prom.teardown()


@pytest.fixture(scope="session")
def data_plane(
    local_cluster: LocalCluster, prometheus: LocalPrometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DataPlane]:
    from e2e.harness.dataplane import DataPlane  # numpy and the Kubernetes client: only when needed

    try:
        plane = DataPlane(local_cluster, tmp_path_factory.mktemp("dataplane"), prometheus=prometheus)
        plane.start()
    except MissingBinaryError as exc:
        _fail_missing(exc)
    except PodNetworkError as exc:
        pytest.fail(f"the data plane cannot start: {exc}", pytrace=False)
    print(f"\n[data plane] up in {plane.startup_seconds:.1f} s: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in plane.phases.items()))
    try:
        yield plane
    finally:
        _record_usage("gateway (traefik)", {"traefik": plane.gateway.pid})
        _record_usage("pod supervisor", {"supervisor": plane.supervisor.pid if plane.supervisor else None})
        pods = json.loads((plane.run_dir / "supervisor.json").read_text()) if plane.supervisor else {}
        if pods.get("pods_rss_peak_kib"):
            _usage["pod processes"] = {"rss_kib": pods["pods_rss_peak_kib"],
                                       "peak_kib": pods["pods_rss_peak_kib"]}
        plane.stop()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, local_cluster: LocalCluster) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-") or "test"
    name = f"{base}-{secrets.token_hex(3)}"
    local_cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        # Finalization can take a while; nothing later depends on it.
        proc = local_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _usage:
        return
    terminalreporter.section("real components: memory")
    for name, usage in _usage.items():
        if name == "pod processes":  # they come and go: the supervisor samples their sum
            terminalreporter.write_line(f"{name}: at most {usage['peak_kib'] / 1024:.0f} MiB at once")
            continue
        terminalreporter.write_line(
            f"{name}: rss {usage['rss_kib'] / 1024:.0f} MiB at teardown, sum of per-process peaks "
            f"{usage['peak_kib'] / 1024:.0f} MiB"
        )
    if len(_usage) > 1:
        total = sum(u["peak_kib"] for u in _usage.values()) / 1024
        terminalreporter.write_line(f"total sum of peaks: {total:.0f} MiB")
