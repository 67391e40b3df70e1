"""The local cluster's data plane: pods that serve, a real gateway, and Prometheus discovering the pods.

    pod network   e2e/harness/netns.py       the cluster's /20 of 10.244.0.0/16 in a network namespace
    supervisor    e2e/harness/supervisor.py  runs the containers of pods labelled modelratchet.io/serve=true
    gateway       e2e/harness/gateway.py     Traefik with the Gateway API and kubernetescrd providers
    discovery     e2e/harness/prometheus.py  kubernetes_sd_configs (role pod) for the serving pods

Service and EndpointSlice addresses are then real: Traefik sends an HTTPRoute's requests to the pod IPs in the
EndpointSlices of its backend Services, through the veth, to processes bound to those IPs.

`DataPlane.start()` needs root and a cluster started by this harness (its run dir names the pod network). Stop
it with `stop()`; it also stops at interpreter exit, and every process dies with the test process
(PR_SET_PDEATHSIG) should that be killed; a namespace left by a killed run is removed by the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from e2e.harness import netns, procs
from e2e.harness.cluster import LocalCluster
from e2e.harness.gateway import LocalGateway
from e2e.harness.kwok_stages import SERVE_LABEL
from e2e.harness.model_servers import (
    CHECKPOINT_DIR,
    SERVER_SCRIPT,
    Answer,
    Samples,
    allow_pod_network,
    forbid_pod_network,
    gateway_request,
)
from e2e.harness.wait import wait_for

DIGITS_IMAGE = "modelratchet/digits-server"


def default_images() -> dict[str, dict[str, Any]]:
    """The local stand-ins for images: the digits server's Dockerfile ENTRYPOINT and ENV, run from this checkout.

    HOST is left to the supervisor (the pod IP); the checkpoints the image ships are the repository's.
    """
    return {
        DIGITS_IMAGE: {
            "command": [sys.executable, str(SERVER_SCRIPT)],
            "env": {"MODEL_CHECKPOINT_DIR": str(CHECKPOINT_DIR), "MODEL_NAME": "digits", "PORT": "8080",
                    "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        }
    }


class DataPlane:
    def __init__(
        self,
        cluster: LocalCluster,
        run_dir: Path,
        *,
        prometheus: Any | None = None,
        images: Mapping[str, Mapping[str, Any]] | None = None,
        owned: bool = True,
    ) -> None:
        if cluster.pod_network is None:
            raise netns.PodNetworkError(
                "this cluster has no pod network slot (it was not started by e2e/harness/cluster.py, or by an older "
                "version of it): the data plane needs one; restart the cluster (`e2e/cluster.sh down && up`)")
        self.cluster = cluster
        self.net: netns.PodNetwork = cluster.pod_network
        self.run_dir = run_dir
        self.prometheus = prometheus
        self.images = dict(images or default_images())
        self.owned = owned
        self.gateway = LocalGateway(cluster, run_dir / "gateway", owned=owned)
        self.supervisor: procs.ManagedProcess | None = None
        self._lock: int | None = None
        self.startup_seconds: float | None = None
        self.phases: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        self._lock = netns.claim_data_plane(self.net)
        if self.owned:  # otherwise it outlives this process on purpose (e2e/demo.py --keep)
            atexit.register(self.stop)
        try:
            netns.create(self.net)
            allow_pod_network(self.net.subnet)
            self._mark("netns", started)
            # The supervisor takes seconds to import its client: install the gateway's objects meanwhile.
            self._start_supervisor()
            self.gateway.install()
            self._mark("gateway CRDs and RBAC", started)
            self._wait_supervisor(timeout)
            self._mark("supervisor", started)
            self.gateway.start(timeout)
            self._mark("gateway", started)
            if self.prometheus is not None:
                self.prometheus.discover_pods(self.cluster.kubeconfig, SERVE_LABEL)
                self.prometheus.add_target("traefik", self.gateway.metrics_target())
                self._mark("prometheus discovery", started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _mark(self, phase: str, started: float) -> None:
        self.phases[phase] = round(time.monotonic() - started, 2)

    def _start_supervisor(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        images = self.run_dir / "images.json"
        images.write_text(json.dumps(self.images, indent=2))
        (self.run_dir / "supervisor.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "e2e.harness.supervisor", f"--kubeconfig={self.cluster.kubeconfig}",
                f"--pod-cidr={self.net.kwok_cidr}", f"--run-dir={self.run_dir}", f"--images={images}"]
        repo = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
        self.supervisor = procs.start("supervisor", argv, log=self.run_dir / "supervisor.log",
                                      pidfile=self.run_dir / "supervisor.pid", env=env, cwd=repo,
                                      die_with_parent=self.owned)

    def _wait_supervisor(self, timeout: float) -> None:
        state = self.run_dir / "supervisor.json"

        def listed() -> bool:
            assert self.supervisor is not None
            if not self.supervisor.alive():
                log = self.run_dir / "supervisor.log"
                raise RuntimeError(f"the supervisor exited; last lines of {log}:\n{procs.tail(log)}")
            return bool(state.exists() and json.loads(state.read_text()).get("listed"))

        wait_for(listed, timeout, interval=0.1, message="the supervisor's first pod listing", ignore=(ValueError,))

    def stop(self) -> None:
        """Gateway, supervisor (which stops every pod process), namespace, lock; safe to call more than once."""
        self.gateway.stop()
        if self.supervisor is not None:
            procs.stop_all([self.supervisor], timeout=20.0)
            self.supervisor = None
        if self._lock is not None:
            netns.destroy(self.net)
            forbid_pod_network(self.net.subnet)
            os.close(self._lock)
            self._lock = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # --- what tests use ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The gateway's entrypoint, http://127.0.0.1:<port>; requests choose an HTTPRoute by Host header."""
        return self.gateway.url

    def parent_ref(self) -> dict[str, str]:
        return self.gateway.parent_ref

    def pods(self) -> list[dict[str, Any]]:
        """The pods the supervisor runs: namespace, name, uid, ip, ready, containers (pid, restarts, log)."""
        try:
            return list(json.loads((self.run_dir / "supervisor.json").read_text())["pods"])
        except (OSError, ValueError):
            return []

    def request(self, host: str, path: str = "/predict", body: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> Answer:
        return gateway_request(self.url, host, path, body, headers, timeout)

    def count_answers(self, host: str, n: int, *, headers: Mapping[str, str] | None = None,
                      concurrency: int = 4, samples: Samples | None = None) -> Counter[str]:
        """Sends `n` labelled /predict requests (at most `concurrency` at a time) and returns the answers per
        checkpoint that answered, '' counting requests no model server answered successfully."""
        samples = samples or Samples.load()

        def one(i: int) -> str:
            j = i % len(samples.labels)
            answer = self.request(host, body={"features": samples.features[j], "label": samples.labels[j]},
                                  headers=headers)
            return answer.checkpoint if answer.status == 200 and answer.checkpoint else ""

        with ThreadPoolExecutor(concurrency, thread_name_prefix="count") as pool:
            return Counter(pool.map(one, range(n)))

    def wait_routed(self, host: str, path: str = "/healthz", timeout: float = 60.0) -> Answer:
        """Waits until a request for `host` reaches a model server (Traefik applies route changes asynchronously)."""
        def answered() -> Answer | None:
            answer = self.request(host, path)
            return answer if answer.checkpoint is not None else None

        result = wait_for(answered, timeout, interval=0.2, message=f"requests for {host} answered by a model server")
        assert result is not None
        return result

    def rss(self, field: str = "VmRSS") -> dict[str, int]:
        """KiB per process: traefik, the supervisor, and every pod process (by namespace/pod/container)."""
        usage = {}
        if self.gateway.pid:
            usage["traefik"] = procs.rss_kib(self.gateway.pid, field)
        if self.supervisor is not None and self.supervisor.pid:
            usage["supervisor"] = procs.rss_kib(self.supervisor.pid, field)
        for pod in self.pods():
            for c in pod["containers"]:
                if c["pid"]:
                    usage[f"{pod['namespace']}/{pod['name']}/{c['name']}"] = procs.rss_kib(c["pid"], field)
        return usage
