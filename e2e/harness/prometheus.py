"""A real Prometheus (Debian's package) as a local process, scraping targets the tests register.

Targets live in file_sd JSON files (one per job) that Prometheus watches, so exporters can be
added and removed while it runs. Expect a few seconds between add_target() and the first sample:
Prometheus batches discovery updates (about 5 s) before scraping new targets.

discover_pods() adds what a real cluster's Prometheus does: Kubernetes service discovery (role pod, through a
kubeconfig) of the pods that serve (label modelratchet.io/serve=true), scraped at podIP:containerPort with
`namespace` and `pod` target labels; the `model` and `checkpoint` labels come from the servers themselves.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from e2e.harness import procs
from e2e.harness.cluster import free_port
from e2e.harness.components import bin_path
from e2e.harness.wait import wait_for

LOOPBACK = "127.0.0.1"
_JOB = re.compile(r"^[A-Za-z0-9_.:-]+$")


class LocalPrometheus:
    """Prometheus on 127.0.0.1:<port>; stop() and start() keep the port, URL and TSDB."""

    def __init__(self, run_dir: Path, port: int | None = None, *, owned: bool = True) -> None:
        self.run_dir = run_dir.expanduser().resolve()
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.owned = owned
        self.binary = bin_path("prometheus")
        self._targets: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self._pod_discovery: tuple[Path, str] | None = None
        self._proc: procs.ManagedProcess | None = None
        self.sd_dir = self.run_dir / "targets"
        self.config_file = self.run_dir / "prometheus.yml"
        self.log_file = self.run_dir / "prometheus.log"
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()

    # --- targets -----------------------------------------------------------------------------

    def add_target(self, job: str, address: str, labels: dict[str, str] | None = None) -> None:
        """Scrape `address` (host:port, loopback) as part of `job`, with extra target labels."""
        if not _JOB.match(job):
            raise ValueError(f"job name {job!r} must match {_JOB.pattern}")
        host = address.rsplit(":", 1)[0]
        if host not in (LOOPBACK, "localhost"):
            raise ValueError(f"target {address!r} is not on loopback")
        entries = [e for e in self._targets.get(job, []) if e[0] != address]
        entries.append((address, dict(labels or {})))
        self._targets[job] = entries
        self._write_job(job)

    def remove_target(self, job: str) -> None:
        """Stop scraping every target of `job`."""
        self._targets.pop(job, None)
        (self.sd_dir / f"{job}.json").unlink(missing_ok=True)

    def _write_job(self, job: str) -> None:
        groups = [{"targets": [address], "labels": {**labels, "job": job}} for address, labels in self._targets[job]]
        path = self.sd_dir / f"{job}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(groups, indent=2))
        # Atomic rename, so the file watcher never reads a half-written file.
        os.replace(tmp, path)

    def discover_pods(self, kubeconfig: Path, label: str = "modelratchet.io/serve") -> None:
        """Scrape every Running pod labelled `label=true` at each declared container port (job `pods`)."""
        self._pod_discovery = (kubeconfig, label)
        self._write_config()
        self.reload()

    def _write_config(self) -> None:
        # JSON is YAML; evaluation every 1s so recording/alerting rules (if added) keep up with tests.
        scrape_configs: list[dict[str, Any]] = [
            {
                "job_name": "file_sd",  # overridden per target by the `job` label in each file
                "file_sd_configs": [{"files": [str(self.sd_dir / "*.json")], "refresh_interval": "1s"}],
            }
        ]
        if self._pod_discovery is not None:
            kubeconfig, label = self._pod_discovery
            meta_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", label)
            scrape_configs.append({
                "job_name": "pods",
                "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig),
                                           "selectors": [{"role": "pod", "label": f"{label}=true"}]}],
                "relabel_configs": [
                    {"source_labels": [meta_label], "regex": "true", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
                    # One target per declared port; a pod without ports has nothing to scrape.
                    {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": ".+",
                     "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            })
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
        }
        self.config_file.write_text(json.dumps(config, indent=2))

    def reload(self) -> None:
        """Makes a running Prometheus read its configuration again (a stopped one reads it at start)."""
        if self.pid is None:
            return
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        if self._proc is not None and self._proc.alive():
            return
        argv = [
            str(self.binary),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.run_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        self._proc = procs.start("prometheus", argv, log=self.log_file, pidfile=self.run_dir / "prometheus.pid",
                                 die_with_parent=self.owned)
        if self.owned:
            procs.stop_at_exit(self._proc)
        self.wait_ready(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        procs.stop_one(self._proc, timeout)
        self._proc = None

    def teardown(self) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self._proc is None or not self._proc.alive():
                raise RuntimeError(f"prometheus is not running; last lines of {self.log_file}:\n"
                                   f"{procs.tail(self.log_file)}")
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)

        wait_for(ready, timeout, interval=0.1, message=f"prometheus ready at {self.url}",
                 ignore=(urllib.error.URLError, ConnectionError, TimeoutError))

    # --- queries -----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"prometheus {path} failed: {exc.read().decode(errors='replace')}") from exc
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} failed: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the `result` list (vector samples as {"metric": ..., "value": [t, v]})."""
        data = self._get("/api/v1/query", {"query": promql})
        result = data["result"]
        return result if isinstance(result, list) else [{"metric": {}, "value": result}]

    def active_targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets", {"state": "active"})["activeTargets"])
