"""Argo CD on the local cluster: application-controller and repo-server (one multi-call binary) with redis, all on
loopback, syncing Applications from git repositories the tests write.

What `LocalArgoCD.start()` does, from pinned versions only:

- applies Argo CD's CRDs (Application, AppProject, ApplicationSet) from the pinned module's manifests/crds (the
  module cache or the Go module proxy, through `go mod download` in e2e/components/argocd, so go.sum checks them);
- creates namespace `argocd` with `argocd-cm` (the project's health checks and resource customizations from
  deploy/argocd/argocd-cm-patch.yaml), `argocd-rbac-cm`, `argocd-secret` and the AppProject `default` (the API
  server would create it; it is not run: the tests drive syncs through the Application's `operation` field, which
  is what `argocd app sync` sets through the API server);
- starts Debian's redis-server (no persistence), the repo-server (`--disable-tls`, helm from the pinned build on
  PATH) and the application-controller. The controller runs outside the cluster: ARGOCD_FAKE_IN_CLUSTER makes the
  in-cluster destination https://kubernetes.default.svc use $KUBECONFIG (how Argo CD's own local development runs).

Git: each `GitRepo` is a plain repository on local disk that the repo-server fetches as a `file://` URL (Argo CD's
own e2e tests serve their fixtures the same way), so nothing listens for git at all.

CLI: python -m e2e.harness.argocd up|down [--name NAME | --dir DIR] (what `e2e/cluster.sh up --with-argocd` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from e2e.build import go_env
from e2e.harness import procs
from e2e.harness.cluster import LocalCluster, default_run_dir, free_port
from e2e.harness.components import COMPONENTS, REPO_ROOT, MissingBinaryError, bin_path
from e2e.harness.wait import wait_for

LOOPBACK = "127.0.0.1"
NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
CM_PATCH = REPO_ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml"
FIELD_MANAGER = "modelratchet-e2e"
_HTTP_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)
# Order matters for startup; teardown runs in reverse.
PROCESSES = ("redis", "repo-server", "application-controller")


def module_dir() -> Path:
    """Source of the pinned argo-cd module (module cache, else the proxy), checked against the wrapper's go.sum."""
    comp = COMPONENTS["argocd"]
    proc = subprocess.run(["go", "mod", "download", "-json", f"{comp.module}@{comp.version}"], cwd=comp.dir,
                          env=go_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"go mod download {comp.module}@{comp.version}: {proc.stdout.strip()} {proc.stderr.strip()}")
    return Path(json.loads(proc.stdout)["Dir"])


def crd_files() -> list[Path]:
    files = sorted((module_dir() / "manifests" / "crds").glob("*-crd.yaml"))
    if not files:
        raise RuntimeError("no CRDs in the argo-cd module's manifests/crds")
    return files


def settings_objects(extra_cm: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """argocd-cm (the project's patch merged in), argocd-rbac-cm, argocd-secret and the default AppProject."""
    patch = yaml.safe_load(CM_PATCH.read_text())
    labels = {"app.kubernetes.io/part-of": "argocd"}
    cm_data = {**patch["data"], **(extra_cm or {})}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "argocd-cm", "namespace": NAMESPACE,
                      "labels": {**labels, "app.kubernetes.io/name": "argocd-cm"}},
         "data": cm_data},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "argocd-rbac-cm", "namespace": NAMESPACE,
                      "labels": {**labels, "app.kubernetes.io/name": "argocd-rbac-cm"}},
         "data": {"policy.default": "role:readonly"}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "argocd-secret", "namespace": NAMESPACE,
                      "labels": {**labels, "app.kubernetes.io/name": "argocd-secret"}},
         "stringData": {"server.secretkey": secrets.token_urlsafe(32)}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
         "metadata": {"name": "default", "namespace": NAMESPACE},
         "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                  "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
    ]


class LocalArgoCD:
    """redis, repo-server and application-controller on loopback, reconciling Applications in namespace argocd."""

    def __init__(self, cluster: LocalCluster, run_dir: Path, *, owned: bool = True, resync_seconds: int = 10) -> None:
        self.cluster = cluster
        self.run_dir = run_dir.expanduser().resolve()
        self.owned = owned
        self.binary = bin_path("argocd")
        self.redis_binary = bin_path("redis-server")
        self.helm = bin_path("helm")
        bin_path("git")
        state = self.run_dir / "state.json"
        if state.exists():  # kept across restarts, and read by whoever attaches
            saved = json.loads(state.read_text())
            self.ports: dict[str, int] = saved["ports"]
            self.resync_seconds: int = saved["resync_seconds"]
        else:
            self.ports = {k: free_port() for k in ("redis", "repo-server", "repo-server-metrics", "controller-metrics")}
            self.resync_seconds = resync_seconds
        self.processes: dict[str, procs.ManagedProcess] = {}
        # A kubernetes.client.ApiClient, if set: reads go through it instead of a kubectl process each.
        self.api: Any = None
        self.startup_seconds: float | None = None
        self.phases: dict[str, float] = {}

    @classmethod
    def running(cls, cluster: LocalCluster) -> LocalArgoCD | None:
        """The Argo CD that `e2e/cluster.sh up --with-argocd` started for this cluster, if it runs."""
        if cluster.run_dir is None:
            return None
        run_dir = cluster.run_dir / "argocd"
        tracked = {n: procs.ManagedProcess(name=n, pidfile=run_dir / "pids" / f"{n}.pid") for n in PROCESSES}
        if not all(p.alive() for p in tracked.values()):
            return None
        argo = cls(cluster, run_dir, owned=False)
        argo.processes = tracked
        return argo

    @property
    def controller_metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['controller-metrics']}/metrics"

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> None:
        manifest = "\n---\n".join(json.dumps(o) for o in objects)
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}",
                             "-f", "-", input=manifest)

    def install(self) -> None:
        files = crd_files()
        args = [a for f in files for a in ("-f", str(f))]
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", *args)
        names = [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text())
                 if d and d.get("kind") == "CustomResourceDefinition"]
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
        self.apply(settings_objects({"timeout.reconciliation": f"{self.resync_seconds}s"}))

    def _env(self, component: str) -> dict[str, str]:
        data = self.run_dir / "data"
        for sub in ("tls", "ssh", "gpg", "tmp"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        return {
            "PATH": f"{self.helm.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(data),
            "TMPDIR": str(data / "tmp"),
            "ARGOCD_BINARY_NAME": f"argocd-{component}",
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "ARGOCD_TLS_DATA_PATH": str(data / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(data / "ssh"),
            "ARGOCD_GNUPGHOME": str(data / "gpg"),
            "ARGOCD_GPG_ENABLED": "false",
            # The controller's shard comes from its hostname's ordinal, as in its StatefulSet.
            "HOSTNAME": f"argocd-{component}-0",
        }

    def _argv(self, component: str) -> list[str]:
        redis = f"{LOOPBACK}:{self.ports['redis']}"
        if component == "redis":
            return [str(self.redis_binary), "--bind", LOOPBACK, "--port", str(self.ports["redis"]),
                    "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--dir", str(self.run_dir)]
        if component == "repo-server":
            return [str(self.binary), "--address", LOOPBACK, "--port", str(self.ports["repo-server"]),
                    "--metrics-address", LOOPBACK, "--metrics-port", str(self.ports["repo-server-metrics"]),
                    "--redis", redis, "--disable-tls", "--logformat", "text"]
        return [str(self.binary), f"--kubeconfig={self.cluster.kubeconfig}", "--namespace", NAMESPACE,
                "--redis", redis, "--repo-server", f"{LOOPBACK}:{self.ports['repo-server']}", "--repo-server-plaintext",
                "--metrics-port", str(self.ports["controller-metrics"]), "--logformat", "text",
                "--app-resync", str(self.resync_seconds), "--app-resync-jitter", "0",
                # Each resource's health in the Application's status (off by default since 3.0, where the API
                # server reads it from redis): the tests read what Argo CD computed from there.
                "--persist-resource-health",
                # Self-heal retries soon after a failed attempt (the default waits 2 s and grows by 3x).
                "--self-heal-backoff-timeout-seconds", "1", "--self-heal-backoff-factor", "2"]

    def start(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "state.json").write_text(json.dumps({"ports": self.ports,
                                                              "resync_seconds": self.resync_seconds}))
        self.install()
        self.phases["installed"] = time.monotonic() - started
        for name in PROCESSES:
            env = {**os.environ, **self._env(name)} if name != "redis" else None
            proc = procs.start(name, self._argv(name), log=self.run_dir / "logs" / f"{name}.log",
                               pidfile=self.run_dir / "pids" / f"{name}.pid", env=env, cwd=self.run_dir,
                               die_with_parent=self.owned)
            if self.owned:
                procs.stop_at_exit(proc)
            self.processes[name] = proc
            self._wait_ready(name, timeout)
            self.phases[name] = time.monotonic() - started
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, name: str, timeout: float) -> None:
        port = {"redis": self.ports["redis"], "repo-server": self.ports["repo-server-metrics"],
                "application-controller": self.ports["controller-metrics"]}[name]

        def ready() -> bool:
            self._check_running(name)
            if name == "redis":
                with socket.create_connection((LOOPBACK, port), timeout=2) as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(64).startswith(b"+PONG")
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)

        wait_for(ready, timeout, interval=0.2, message=f"argocd {name} ready", ignore=_HTTP_ERRORS)

    def _check_running(self, name: str) -> None:
        proc = self.processes.get(name)
        if proc is None or not proc.alive():
            log = self.run_dir / "logs" / f"{name}.log"
            raise RuntimeError(f"argocd {name} is not running; last lines of {log}:\n{procs.tail(log)}")

    def check_running(self) -> None:
        for name in PROCESSES:
            self._check_running(name)

    def stop(self, timeout: float = 15.0) -> None:
        running = [self.processes[n] for n in reversed(PROCESSES) if n in self.processes]
        procs.stop_all(running, timeout=timeout)
        for proc in running:
            procs.forget(proc)
        self.processes.clear()

    def pids(self) -> dict[str, int | None]:
        return {n: p.pid for n, p in self.processes.items()}

    # --- Applications ------------------------------------------------------------------------------------------

    def application(self, name: str) -> dict[str, Any]:
        if self.api is not None:
            from kubernetes import client

            resp = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                "argoproj.io", "v1alpha1", NAMESPACE, "applications", name, _preload_content=False)
            return dict(json.loads(resp.data))
        out = self.cluster.kubectl("get", "applications.argoproj.io", name, "-n", NAMESPACE, "-o", "json").stdout
        return dict(json.loads(out))

    def create_application(self, app: Mapping[str, Any]) -> None:
        self.apply([app])

    def delete_application(self, name: str) -> None:
        """Deletes the Application; its resources stay (no resources finalizer): the namespace takes them."""
        self.cluster.kubectl("delete", "applications.argoproj.io", name, "-n", NAMESPACE, "--ignore-not-found",
                             "--wait=false")

    def refresh(self, name: str, hard: bool = False) -> None:
        """What a git webhook (normal) or `argocd app get --hard-refresh` (hard) asks of the controller."""
        self.cluster.kubectl("annotate", "applications.argoproj.io", name, "-n", NAMESPACE, "--overwrite",
                             f"argocd.argoproj.io/refresh={'hard' if hard else 'normal'}")

    def sync(self, name: str, revision: str, *, who: str = "e2e") -> None:
        """Starts a sync of `revision` as `argocd app sync` does: the API server writes the Application's
        `operation` with the Application's source and sync options (server/application/application.go Sync)."""
        app = self.application(name)
        spec = app["spec"]
        sync: dict[str, Any] = {"revision": revision, "source": spec["source"],
                                "syncOptions": (spec.get("syncPolicy") or {}).get("syncOptions") or []}
        patch = {"operation": {"initiatedBy": {"username": who}, "sync": sync}}
        self.cluster.kubectl("patch", "applications.argoproj.io", name, "-n", NAMESPACE, "--type=merge",
                             "-p", json.dumps(patch))

    def wait_app(self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 90.0,
                 message: str = "") -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            self.check_running()
            app = self.application(name)
            return app if predicate(app) else None

        try:
            result: dict[str, Any] = wait_for(check, timeout, interval=0.3, message=message or f"Application {name}")
        except TimeoutError as e:
            status = dict(self.application(name).get("status") or {})
            status.pop("history", None)
            raise TimeoutError(f"{e}\nApplication status: {json.dumps(status, indent=1)[:6000]}") from None
        return result

    def metrics(self) -> str:
        with urllib.request.urlopen(self.controller_metrics_url, timeout=5) as resp:
            return str(resp.read().decode())


def sync_status(app: Mapping[str, Any]) -> str | None:
    return ((app.get("status") or {}).get("sync") or {}).get("status")


def health_status(app: Mapping[str, Any]) -> str | None:
    return ((app.get("status") or {}).get("health") or {}).get("status")


def synced_revision(app: Mapping[str, Any]) -> str | None:
    return ((app.get("status") or {}).get("sync") or {}).get("revision")


def resource(app: Mapping[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The Application's view of one of its resources: sync status, health (status, message)."""
    for r in (app.get("status") or {}).get("resources") or []:
        if r.get("kind") == kind and r.get("name") == name:
            return dict(r)
    return {}


# ---------------------------------------------------------------------------------------------- git


class GitRepo:
    """A git repository on local disk that the repo-server fetches as file://<path>."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().resolve()
        self.url = f"file://{self.path}"

    def git(self, *args: str) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@modelratchet.test",
               "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@modelratchet.test"}
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True, env=env,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def init(self) -> GitRepo:
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        return self

    def commit(self, files: Mapping[str, Any], message: str) -> str:
        """Writes each file (a manifest dict, a list of them, or text) and commits; returns the commit sha."""
        for rel, content in files.items():
            dest = self.path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                dest.write_text(content)
            else:
                docs = content if isinstance(content, list) else [content]
                dest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            self.git("add", rel)
        self.git("commit", "-q", "-m", message)
        return self.head()

    def revert(self, sha: str) -> str:
        self.git("revert", "--no-edit", sha)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def read(self, rel: str) -> list[Any]:
        return [d for d in yaml.safe_load_all((self.path / rel).read_text()) if d]


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.argocd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--name", default="default", help="run dir name under <cache>/run/ (default: default)")
    parser.add_argument("--dir", help="explicit run dir of the cluster (overrides --name)")
    args = parser.parse_args(argv)
    run_dir = Path(args.dir).expanduser().resolve() if args.dir else default_run_dir(args.name)
    argo_dir = run_dir / "argocd"
    if args.command == "down":
        for name in reversed(PROCESSES):
            pidfile = argo_dir / "pids" / f"{name}.pid"
            if pidfile.exists():
                procs.stop_all([procs.ManagedProcess(name=name, pidfile=pidfile)])
        print(f"argocd in {argo_dir} stopped", file=sys.stderr)
        return 0
    cluster = LocalCluster.attach(run_dir / "kubeconfig")
    (argo_dir / "state.json").unlink(missing_ok=True)  # fresh ports for a fresh start
    try:
        argo = LocalArgoCD(cluster, argo_dir, owned=False)
    except MissingBinaryError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    argo.start()
    print(f"argocd up in {argo.startup_seconds:.1f}s: " + ", ".join(f"{k} {v:.1f}s" for k, v in argo.phases.items()),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
