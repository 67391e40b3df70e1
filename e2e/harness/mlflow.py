"""A real MLflow tracking server and model registry on loopback (SQLite backend, local artifact directory), and
MLflow's own Python client to register versions and read them back, both from the MLflow venv
(hack/install-mlflow.sh) so MLflow's dependencies never meet the operator's.

The client runs as one long-lived process answering JSON lines: importing MLflow takes seconds on a loaded
machine, once is enough.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from e2e.harness.cluster import free_port
from e2e.harness.components import MissingBinaryError

VENV = Path(os.environ.get("MODELRATCHET_MLFLOW_VENV") or Path.home() / ".cache/modelratchet/mlflow-venv")

# Runs inside the MLflow venv: one JSON request per line in, one JSON answer per line out.
_CLIENT = r"""
import json, sys
import mlflow
from mlflow import MlflowClient

mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()

def register(model, path, artifact_path="model"):
    try:
        client.get_registered_model(model)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(model)
    with mlflow.start_run(run_name=path.rsplit("/", 1)[-1]) as run:
        mlflow.log_artifact(path, artifact_path=artifact_path)
        source = f"{run.info.artifact_uri}/{artifact_path}/{path.rsplit('/', 1)[-1]}"
    mv = client.create_model_version(model, source, run_id=run.info.run_id)
    return {"version": mv.version, "source": mv.source}

def version(model, version):
    mv = client.get_model_version(model, version)
    return {"version": mv.version, "source": mv.source, "tags": dict(mv.tags), "aliases": list(mv.aliases)}

def alias(model, alias):
    return client.get_model_version_by_alias(model, alias).version

def set_alias(model, alias, version):
    client.set_registered_model_alias(model, alias, version)
    return None

ops = {"register": register, "version": version, "alias": alias, "set_alias": set_alias}
print(json.dumps({"ready": mlflow.__version__}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    try:
        answer = {"ok": ops[request["op"]](*request["args"])}
    except Exception as e:
        answer = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(answer), flush=True)
"""


def _require_venv() -> Path:
    if not (VENV / "bin" / "mlflow").exists():
        raise MissingBinaryError(f"MLflow venv not found at {VENV}: run hack/install-mlflow.sh")
    return VENV


class MlflowClientProcess:
    """MLflow's own client (MlflowClient), driven from the tests."""

    def __init__(self, tracking_uri: str, log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [str(_require_venv() / "bin" / "python"), "-c", _CLIENT, tracking_uri],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True,
        )
        ready = self._read(timeout=180)
        self.mlflow_version = str(ready["ready"])

    def _read(self, timeout: float) -> Any:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("{"):
                return json.loads(line)
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"the MLflow client exited with {self.proc.returncode} (log {self._log.name})")
        raise TimeoutError(f"the MLflow client did not answer within {timeout}s")

    def call(self, op: str, *args: Any, timeout: float = 120) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        answer = self._read(timeout)
        if "error" in answer:
            raise RuntimeError(f"MLflow client {op}{tuple(args)}: {answer['error']}")
        return answer["ok"]

    def register(self, model: str, path: Path) -> dict[str, str]:
        """Logs the checkpoint file as a run's artifact and registers it as a new version of ``model``."""
        return dict(self.call("register", model, str(path)))

    def version(self, model: str, version: str) -> dict[str, Any]:
        return dict(self.call("version", model, version))

    def alias(self, model: str, alias: str) -> str:
        return str(self.call("alias", model, alias))

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.call("set_alias", model, alias, version)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


class LocalMlflow:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and a local artifact directory; stop and start it again
    (same port, same data) to make an outage."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = workdir / "artifacts"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.startup_seconds: list[float] = []

    def start(self, timeout: float = 300) -> None:
        venv = _require_venv()
        self.starts += 1
        self.artifacts.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"mlflow-{self.starts}.log").open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--default-artifact-root", self.artifacts.as_uri(), "--workers", "1",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2).read()
                self.startup_seconds.append(time.monotonic() - started)
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer /health within {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        """The whole process group (the server and its workers) goes; the port refuses connections after."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / f"mlflow-{self.starts}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# One address per test session, known before the server runs: the session's operator (e2e/conftest.py) takes it as
# its default tracking server, and e2e/test_mlflow.py starts MLflow on it.
SESSION_PORT = free_port()
SESSION_TRACKING_URI = f"http://127.0.0.1:{SESSION_PORT}"
