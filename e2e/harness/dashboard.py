"""`modelratchet dashboard` as a process, as a user starts it: the URL it prints, its log, stop()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from e2e.harness.browser import terminate
from e2e.harness.components import REPO_ROOT
from e2e.harness.wait import wait_for


class DashboardProcess:
    def __init__(self, kubeconfig: Path, *args: str, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "dashboard.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - open for the process's lifetime
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "operator"), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelratchet.cli.main", "dashboard", "--port", "0",
             "--kubeconfig", str(kubeconfig), *args],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=env,
        )
        assert self.proc.stdout is not None
        first: list[str] = []

        def started() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited {self.proc.returncode}: {self.log_path.read_text()}")
            first.append(self.proc.stdout.readline())  # type: ignore[union-attr]
            return "http://" in first[-1]

        wait_for(started, timeout=60, message="the dashboard's URL")
        self.url = first[-1].split(" on ", 1)[1].split(" ", 1)[0].rstrip("/")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()
