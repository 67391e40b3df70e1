"""The operator as a real process (`modelratchet run`), which tests can SIGKILL and start again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from e2e.harness.cluster import free_port
from e2e.harness.procs import rss_kib


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        prometheus_url: str,
        *,
        namespaces: list[str] | None = None,
        tick_seconds: float = 1.0,
        log_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.prometheus_url = prometheus_url
        self.namespaces = namespaces or []
        self.tick_seconds = tick_seconds
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="modelratchet-operator-"))
        self.extra_env = extra_env or {}
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "MODELRATCHET_PROMETHEUS_URL": self.prometheus_url,
            "MODELRATCHET_PROMETHEUS_TIMEOUT": "3",
            "MODELRATCHET_TICK_SECONDS": str(self.tick_seconds),
            "MODELRATCHET_METRICS_PORT": str(self.metrics_port),
            # The tests' webhook receivers listen on loopback, which webhooks reach only when allowed.
            "MODELRATCHET_WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8,::1/128",
            **self.extra_env,
        }
        args = [sys.executable, "-m", "modelratchet.cli.main", "run"]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        # Never leave an operator behind that nobody holds: it would keep acting on the cluster.
        self.kill()
        raise TimeoutError(f"operator did not serve /metrics within {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye — as a node failure or OOM kill would do."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its state but runs nothing, as in a long GC pause or a paused VM."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def metrics(self) -> dict[str, float]:
        """The operator's own /metrics, flattened: 'name{a="b"}' -> value."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=3).read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def rss_mib(self) -> float:
        return rss_kib(self.proc.pid) / 1024 if self.proc else 0.0

    def peak_rss_mib(self) -> float:
        return rss_kib(self.proc.pid, "VmHWM") / 1024 if self.proc else 0.0
