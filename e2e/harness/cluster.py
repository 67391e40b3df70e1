"""A local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok (fake nodes whose pods become Ready without a container runtime), all on 127.0.0.1.

CLI: python -m e2e.harness.cluster up|down|env|status [--name NAME | --dir DIR] [--nodes N] [--with-argocd]
State lives in a run dir (default <cache>/run/<name>/): PKI, kubeconfigs, logs, one pidfile per
component and state.json. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.harness import kwok_stages, netns, pki, procs
from e2e.harness.components import bin_path, cache_root
from e2e.harness.wait import wait_for

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"  # only allocated from, never routed
NODE_IP = LOOPBACK
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Order matters: later components depend on earlier ones; teardown runs in reverse.
COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
_URL_ERRORS = (urllib.error.URLError, ConnectionError, http.client.HTTPException, TimeoutError, ssl.SSLError)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def default_run_dir(name: str = "default") -> Path:
    return cache_root() / "run" / name


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, client: pki.KeyPair, user: str) -> Path:
    """Self-contained kubeconfig (certs embedded) so it stays valid wherever it is copied."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modelratchet-e2e",
                      "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user,
                   "user": {"client-certificate-data": _b64(client.cert), "client-key-data": _b64(client.key)}}],
        "contexts": [{"name": "modelratchet-e2e", "context": {"cluster": "modelratchet-e2e", "user": user}}],
        "current-context": "modelratchet-e2e",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is valid YAML, so every kubeconfig reader accepts it.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def kubeconfig_server(kubeconfig: Path) -> str:
    """The server URL of the current context; works for JSON kubeconfigs and simple YAML ones."""
    text = kubeconfig.read_text()
    try:
        config = json.loads(text)
    except ValueError:
        for line in text.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "server":
                return value.strip().strip("'\"")
        raise ValueError(f"no server in {kubeconfig}") from None
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    cluster_name = contexts[config["current-context"]]["cluster"]
    return str(next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == cluster_name))


@dataclass
class LocalCluster:
    """Handle on a cluster: started here (owned), or attached to a running one via its kubeconfig."""

    run_dir: Path | None
    kubeconfig: Path
    server: str
    owned: bool = False
    processes: dict[str, procs.ManagedProcess] = field(default_factory=dict)
    startup_seconds: float | None = None
    # Seconds since the start of `up` at which each readiness milestone was reached.
    phases: dict[str, float] = field(default_factory=dict)
    # Pod IPs come from this slot of 10.244.0.0/16 (e2e/harness/netns.py); None for a cluster not started here.
    pod_network: netns.PodNetwork | None = None
    _podnet_lock: int | None = field(default=None, repr=False)
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)

    # --- contract used by tests -------------------------------------------------------------

    def bin(self, name: str) -> Path:
        """Pinned binary (kubectl, helm, kubeconform, kwok, ...) or a Debian one on PATH."""
        return bin_path(name)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def attach(cls, kubeconfig: Path) -> LocalCluster:
        kubeconfig = kubeconfig.expanduser().resolve()
        run_dir = kubeconfig.parent if (kubeconfig.parent / "state.json").exists() else None
        cluster = cls(run_dir=run_dir, kubeconfig=kubeconfig, server=kubeconfig_server(kubeconfig))
        if run_dir is not None:
            cluster.processes = _tracked(run_dir)
            pod_cidr = json.loads((run_dir / "state.json").read_text()).get("pod_cidr")
            cluster.pod_network = netns.PodNetwork.from_cidr(pod_cidr) if pod_cidr else None
        return cluster

    @classmethod
    def up(
        cls,
        run_dir: Path,
        *,
        nodes: int = 2,
        owned: bool = False,
        timeout: float = 120.0,
        disable_qps_limits: bool = False,
    ) -> LocalCluster:
        """Start a fresh cluster in `run_dir`. `owned` ties component lifetimes to this process.

        `disable_qps_limits` lifts the client-side rate limits of kube-controller-manager and kube-scheduler
        (20 and 50 requests/s by default), as `kwokctl create cluster --disable-qps-limits` does: at those limits
        a thousand Deployments take about half an hour to get their pods (kwok itself is not limited)."""
        started = time.monotonic()
        run_dir = run_dir.expanduser().resolve()
        if any(p.alive() for p in _tracked(run_dir).values()):
            raise RuntimeError(f"a cluster is already running in {run_dir}; run `e2e/cluster.sh down` first")
        # Missing binaries should fail before anything is started.
        binaries = {n: bin_path(n) for n in ("etcd", "kube-apiserver", "kube-controller-manager",
                                              "kube-scheduler", "kwok", "kubectl", "openssl")}
        # Keep the PKI (cheap to reuse), always start from empty etcd state.
        for sub in ("etcd", "logs", "pids", "kwok"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)

        ports = {k: free_port() for k in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")}
        server = f"https://{LOOPBACK}:{ports['apiserver']}"
        tls = _pki(run_dir / "pki")
        kubeconfigs = {
            user: write_kubeconfig(run_dir / "kubeconfigs" / f"{user}.kubeconfig", server, tls["ca"].cert,
                                   tls[user], user)
            for user in ("kube-controller-manager", "kube-scheduler", "kwok")
        }
        admin = write_kubeconfig(run_dir / "kubeconfig", server, tls["ca"].cert, tls["admin"], "admin")
        # Every component inherits the slot's lock: the slot stays claimed while any of them runs.
        pod_network, podnet_lock = netns.claim_slot(str(run_dir))
        cluster = cls(run_dir=run_dir, kubeconfig=admin, server=server, owned=owned, pod_network=pod_network,
                      _podnet_lock=podnet_lock)
        state = {"server": server, "kubeconfig": str(admin), "ports": ports, "nodes": nodes, "pid": os.getpid(),
                 "pod_cidr": pod_network.kwok_cidr}
        (run_dir / "state.json").write_text(json.dumps(state, indent=2))

        etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
        peer_url = f"http://{LOOPBACK}:{ports['etcd-peer']}"
        qps = ["--kube-api-qps=5000", "--kube-api-burst=10000"] if disable_qps_limits else []
        argv: dict[str, list[str]] = {
            "etcd": [
                str(binaries["etcd"]), "--name=e2e", f"--data-dir={run_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}", "--initial-cluster-state=new",
                # Disposable state: durability buys nothing and fsync dominates startup on slow disks.
                "--unsafe-no-fsync", "--log-level=warn",
            ],
            "kube-apiserver": [
                str(binaries["kube-apiserver"]), f"--etcd-servers={etcd_url}",
                f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}",
                f"--secure-port={ports['apiserver']}", f"--cert-dir={run_dir / 'pki'}",
                f"--tls-cert-file={tls['apiserver'].cert}", f"--tls-private-key-file={tls['apiserver'].key}",
                f"--client-ca-file={tls['ca'].cert}",
                "--authorization-mode=Node,RBAC",
                # Aggregation-layer identity; kube-controller-manager and kube-scheduler read this CA
                # for delegated authentication and complain without it.
                f"--requestheader-client-ca-file={tls['front-proxy-ca'].cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={tls['front-proxy-client'].cert}",
                f"--proxy-client-key-file={tls['front-proxy-client'].key}",
                f"--service-account-key-file={tls['sa'].cert}",
                f"--service-account-signing-key-file={tls['sa'].key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Endpoint validation rejects loopback addresses, so do not publish the apiserver
                # as endpoints of the `kubernetes` Service.
                "--endpoint-reconciler-type=none",
                "--profiling=false", "--v=1",
            ],
            "kube-controller-manager": [
                str(binaries["kube-controller-manager"]),
                *_delegated_auth(kubeconfigs["kube-controller-manager"]),
                f"--bind-address={LOOPBACK}", f"--secure-port={ports['kcm']}",
                f"--cert-dir={run_dir / 'pki' / 'kcm'}",
                "--leader-elect=false",
                f"--service-account-private-key-file={tls['sa'].key}",
                f"--root-ca-file={tls['ca'].cert}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={tls['ca'].cert}", f"--cluster-signing-key-file={tls['ca'].key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false", "--v=1", *qps,
            ],
            "kube-scheduler": [
                str(binaries["kube-scheduler"]), *_delegated_auth(kubeconfigs["kube-scheduler"]),
                f"--bind-address={LOOPBACK}", f"--secure-port={ports['scheduler']}",
                f"--cert-dir={run_dir / 'pki' / 'scheduler'}",
                "--leader-elect=false", "--profiling=false", "--v=1", *qps,
            ],
            "kwok": [
                str(binaries["kwok"]), f"--kubeconfig={kubeconfigs['kwok']}",
                # Its own config path, so a ~/.kwok/kwok.yaml of the user cannot change behaviour.
                f"--config={_kwok_config(run_dir / 'kwok')}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={pod_network.kwok_cidr}", f"--node-ip={NODE_IP}",
                "--node-lease-duration-seconds=40",
                f"--server-address={LOOPBACK}:{ports['kwok']}",
            ],
        }

        try:
            cluster._start("etcd", argv["etcd"])
            cluster._wait_http("etcd", f"{etcd_url}/health", timeout, ssl_ctx=None)
            cluster._mark("etcd", started)
            cluster._start("kube-apiserver", argv["kube-apiserver"])
            cluster._wait_http("kube-apiserver", f"{server}/readyz", timeout, ssl_ctx=cluster.ssl_context())
            cluster._mark("kube-apiserver", started)
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                cluster._start(name, argv[name])
            for i in range(nodes):
                cluster.api("POST", "/api/v1/nodes", _fake_node(f"kwok-node-{i}"))
            insecure = ssl._create_unverified_context()  # their serving certs are self-signed
            cluster._wait_http("kube-controller-manager", f"https://{LOOPBACK}:{ports['kcm']}/healthz", timeout,
                               ssl_ctx=insecure)
            cluster._wait_http("kube-scheduler", f"https://{LOOPBACK}:{ports['scheduler']}/healthz", timeout,
                               ssl_ctx=insecure)
            cluster._mark("controllers", started)
            cluster._wait(cluster._nodes_ready, timeout, f"{nodes} kwok nodes to be Ready")
            cluster._mark("nodes", started)
            cluster._wait(lambda: cluster._exists("/api/v1/namespaces/default/serviceaccounts/default"), timeout,
                          "the default ServiceAccount in namespace default")
            cluster._mark("default-serviceaccount", started)
        except BaseException:
            cluster.down()
            cluster.release_pod_network()
            raise
        cluster.startup_seconds = time.monotonic() - started
        state["startup_seconds"] = round(cluster.startup_seconds, 2)
        state["startup_phases"] = cluster.phases
        (run_dir / "state.json").write_text(json.dumps(state, indent=2))
        return cluster

    def down(self, timeout: float = 15.0) -> None:
        """Stop every component group (also ones started by another process, via pidfiles)."""
        if self.run_dir is None:
            return
        tracked = _tracked(self.run_dir)
        tracked.update(self.processes)
        ordered = [tracked[n] for n in reversed(COMPONENT_ORDER) if n in tracked]
        procs.stop_all(ordered, timeout=timeout)
        for proc in ordered:
            procs.forget(proc)
        self.processes.clear()
        self.release_pod_network()

    def release_pod_network(self) -> None:
        """Our own hold on the pod network slot; the claim ends when no component holds it either."""
        if self._podnet_lock is not None:
            os.close(self._podnet_lock)
            self._podnet_lock = None

    def restart(
        self,
        component: str,
        *,
        sig: signal.Signals = signal.SIGKILL,
        grace: float = 5.0,
        down_for: float = 0.0,
        timeout: float = 120.0,
    ) -> float:
        """Stop one component's process group and start the same argv again (same ports, same data dir), then
        wait until it serves again; returns the seconds from the signal to ready.

        SIGKILL (the default) is a crash; another signal (SIGTERM) is a graceful stop, turned into SIGKILL after
        ``grace`` seconds: kube-apiserver stops listening at once on SIGTERM but its process can linger for
        half a minute. ``down_for`` keeps the component stopped that long, so clients meet the outage rather
        than only a reconnect. Restarting etcd also waits for the API server's /readyz, which checks etcd.
        """
        if self.run_dir is None:
            raise RuntimeError(f"cannot restart {component}: this cluster was not started from a run dir here")
        proc = self.processes.get(component) or _tracked(self.run_dir).get(component)
        pgid = proc.pid if proc is not None else None
        if proc is None or pgid is None:
            raise RuntimeError(f"{component} is not running in {self.run_dir}")
        argv = [str(a) for a in json.loads(proc.pidfile.read_text())["argv"]]
        started = time.monotonic()

        def gone() -> bool:
            return not procs._group_alive(pgid)

        proc.signal_group(sig)
        with contextlib.suppress(TimeoutError):
            wait_for(gone, grace if sig != signal.SIGKILL else 10.0, interval=0.05)
        if not gone():
            proc.signal_group(signal.SIGKILL)
            wait_for(gone, 10.0, interval=0.05, message=f"{component} to exit")
        if proc.popen is not None:
            proc.popen.wait(10)  # reap it
        proc.pidfile.unlink(missing_ok=True)
        procs.forget(proc)
        time.sleep(down_for)  # the outage itself: nothing to wait for
        self._start(component, argv)
        self._wait_ready(component, argv, timeout)
        if component == "etcd" and "kube-apiserver" in self.processes:
            self._wait_ready("kube-apiserver", [], timeout)
        return time.monotonic() - started

    def _wait_ready(self, component: str, argv: list[str], timeout: float) -> None:
        """The readiness check `up` uses for that component."""
        flags = dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        if component == "etcd":
            self._wait_http(component, f"{flags['advertise-client-urls']}/health", timeout, ssl_ctx=None)
        elif component == "kube-apiserver":
            self._wait_http(component, f"{self.server}/readyz", timeout, ssl_ctx=self.ssl_context())
        elif component in ("kube-controller-manager", "kube-scheduler"):
            self._wait_http(component, f"https://{LOOPBACK}:{flags['secure-port']}/healthz", timeout,
                            ssl_ctx=ssl._create_unverified_context())
        else:
            self._wait(self._nodes_ready, timeout, "kwok nodes to be Ready")

    # --- helpers -----------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        assert self.run_dir is not None
        held = () if self._podnet_lock is None else (self._podnet_lock,)
        proc = procs.start(name, argv, log=self.run_dir / "logs" / f"{name}.log",
                           pidfile=self.run_dir / "pids" / f"{name}.pid", die_with_parent=self.owned, pass_fds=held)
        self.processes[name] = proc
        if self.owned:
            procs.stop_at_exit(proc)

    def _mark(self, phase: str, started: float) -> None:
        self.phases[phase] = round(time.monotonic() - started, 2)

    def _check_running(self) -> None:
        assert self.run_dir is not None
        for name, proc in self.processes.items():
            if not proc.alive():
                log = self.run_dir / "logs" / f"{name}.log"
                raise RuntimeError(f"{name} exited during startup; last lines of {log}:\n{procs.tail(log)}")

    def _wait(self, predicate: Any, timeout: float, message: str) -> None:
        def check() -> Any:
            self._check_running()
            return predicate()

        wait_for(check, timeout, interval=0.1, message=message, ignore=_URL_ERRORS)

    def _wait_http(self, name: str, url: str, timeout: float, ssl_ctx: ssl.SSLContext | None) -> None:
        def ok() -> bool:
            with urllib.request.urlopen(url, timeout=2, context=ssl_ctx) as resp:
                return bool(resp.status == 200)

        self._wait(ok, timeout, f"{name} at {url}")

    def ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the cluster CA and presenting the kubeconfig's client cert."""
        if self._ssl is None:
            config = json.loads(self.kubeconfig.read_text())
            cluster = config["clusters"][0]["cluster"]
            user = config["users"][0]["user"]
            ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
            # load_cert_chain only takes paths; keep the material in a private temp dir briefly.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                ctx.load_cert_chain(cert, key)
            self._ssl = ctx
        return self._ssl

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()) as resp:
            return json.loads(resp.read() or b"null")

    def _exists(self, path: str) -> bool:
        try:
            self.api("GET", path)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def _nodes_ready(self) -> bool:
        nodes = self.api("GET", "/api/v1/nodes")["items"]
        ready = [
            n for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        ]
        return bool(nodes) and len(ready) == len(nodes)

    def rss(self, field: str = "VmRSS") -> dict[str, int]:
        """KiB per running component (VmHWM for the peak)."""
        return {name: procs.rss_kib(p.pid, field) for name, p in self.processes.items() if p.pid is not None}


def _tracked(run_dir: Path) -> dict[str, procs.ManagedProcess]:
    pid_dir = run_dir / "pids"
    pidfiles = {n: pid_dir / f"{n}.pid" for n in COMPONENT_ORDER}
    return {n: procs.ManagedProcess(n, f) for n, f in pidfiles.items() if f.exists()}


def _delegated_auth(kubeconfig: Path) -> list[str]:
    return [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}"]


def _pki(directory: Path) -> dict[str, pki.KeyPair]:
    ca = pki.ca(directory)
    client = {
        "admin": ("modelratchet-admin", ("system:masters",)),
        "kube-controller-manager": ("system:kube-controller-manager", ()),
        "kube-scheduler": ("system:kube-scheduler", ()),
        # kwok plays the kubelet of every fake node, more than the Node authorizer allows one identity.
        "kwok": ("kwok-controller", ("system:masters",)),
    }
    pairs = {name: pki.leaf(directory, name, ca, common_name=cn, organizations=orgs)
             for name, (cn, orgs) in client.items()}
    pairs["apiserver"] = pki.leaf(
        directory, "apiserver", ca, common_name="kube-apiserver", server=True,
        dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"),
        ips=(LOOPBACK, "10.96.0.1"),
    )
    pairs["ca"] = ca
    pairs["front-proxy-ca"] = front_proxy = pki.ca(directory, "front-proxy-ca")
    pairs["front-proxy-client"] = pki.leaf(directory, "front-proxy-client", front_proxy,
                                           common_name="front-proxy-client")
    pairs["sa"] = pki.service_account_keys(directory)
    return pairs


def _kwok_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kwok.yaml"
    # Pod stages: pods labelled modelratchet.io/serve get their readiness from the supervisor, not from kwok.
    config = "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
    path.write_text(f"{config}---\n{kwok_stages.pod_stages()}")
    return path


def _fake_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "node-role.kubernetes.io/agent": ""},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }


# --- CLI --------------------------------------------------------------------------------------


def _run_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).expanduser().resolve() if args.dir else default_run_dir(args.name)


def _env_lines(kubeconfig: Path) -> list[str]:
    k = shlex.quote(str(kubeconfig))
    return [f"export KUBECONFIG={k}", f"export MODELRATCHET_KUBECONFIG={k}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2e/cluster.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    parser.add_argument("--name", default="default", help="run dir name under <cache>/run/ (default: default)")
    parser.add_argument("--dir", help="explicit run dir (overrides --name)")
    parser.add_argument("--nodes", type=int, default=2, help="number of kwok nodes (up only)")
    parser.add_argument("--disable-qps-limits", action="store_true",
                        help="up: no client-side rate limit in kube-controller-manager and kube-scheduler (scale runs)")
    parser.add_argument("--with-argocd", action="store_true",
                        help="up: also start Argo CD on the cluster (e2e/harness/argocd.py); down stops it anyway")
    args = parser.parse_args(argv)
    run_dir = _run_dir(args)
    kubeconfig = run_dir / "kubeconfig"

    if args.command == "up":
        cluster = LocalCluster.up(run_dir, nodes=args.nodes, disable_qps_limits=args.disable_qps_limits)
        print(f"cluster up in {cluster.startup_seconds:.1f}s: {cluster.server}", file=sys.stderr)
        print("ready at: " + ", ".join(f"{k} {v:.1f}s" for k, v in cluster.phases.items()), file=sys.stderr)
        print(f"run dir: {run_dir}", file=sys.stderr)
        if args.with_argocd:
            from e2e.harness import argocd  # needs PyYAML: the project's virtualenv

            if argocd.main(["up", "--dir", str(run_dir)]) != 0:
                return 1
        print("\n".join(_env_lines(kubeconfig)))
        return 0
    if args.command == "down":
        if (run_dir / "argocd" / "pids").is_dir():
            from e2e.harness import argocd

            argocd.main(["down", "--dir", str(run_dir)])
        if run_dir.exists():
            LocalCluster(run_dir=run_dir, kubeconfig=kubeconfig, server="").down()
        print(f"cluster in {run_dir} stopped", file=sys.stderr)
        return 0
    if args.command == "env":
        if not kubeconfig.exists():
            print(f"no cluster in {run_dir}", file=sys.stderr)
            return 1
        print("\n".join(_env_lines(kubeconfig)))
        return 0
    # status
    tracked = _tracked(run_dir)
    if not tracked:
        print(f"no cluster in {run_dir}")
        return 1
    healthy = True
    for name in COMPONENT_ORDER:
        proc = tracked.get(name)
        pid = proc.pid if proc else None
        rss = procs.rss_kib(pid) if pid else 0
        healthy &= pid is not None
        print(f"{name:24} {'running pid ' + str(pid) if pid else 'not running':20} {rss / 1024:7.1f} MiB")
    if healthy:
        cluster = LocalCluster.attach(kubeconfig)
        try:
            with urllib.request.urlopen(f"{cluster.server}/readyz", timeout=5, context=cluster.ssl_context()) as r:
                readyz = r.read().decode()
        except _URL_ERRORS as exc:
            readyz, healthy = f"unreachable ({exc})", False
        print(f"server: {cluster.server} /readyz: {readyz}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
