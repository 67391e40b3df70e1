"""Runs the containers of pods that opt in as real local processes inside the pod network namespace.

    python -m e2e.harness.supervisor --kubeconfig K --pod-cidr 10.244.0.1/20 --run-dir D [--images images.json]

kwok plays every kubelet but runs nothing. For pods labelled `modelratchet.io/serve: "true"` this process plays
the container runtime: once kwok has given such a pod its IP and the Running phase, each container's `command`
and `args` (or, without a command, the entrypoint the image map gives for its image, standing in for the image's
ENTRYPOINT and ENV) run as a local process in the namespace of e2e/harness/netns.py, with the pod IP added to
the namespace interface. The environment is the image's, then POD_IP and HOST (the pod IP: pods share one
namespace here, so a wildcard bind would collide), then PORT (the first container port), then the container's
own env (literal values and the fieldRefs a kubelet resolves), with $(VAR) references expanded.

Readiness is real: kwok leaves these pods Ready=False (e2e/harness/kwok_stages.py) and this process patches the
pod's status to Ready once every container answers its readinessProbe (httpGet; without one, once its ports
accept connections), back to not ready when the probe fails failureThreshold times or the process exits. A
container that exits is started again with a backoff (1 s doubling to 30 s) and its restartCount goes up. When
the pod is deleted or terminating, its processes keep serving for 2 s (at most the grace period; the time the
EndpointSlice and the gateway take to let go of it, as a preStop sleep would), then get SIGTERM (SIGKILL after the
grace period, at most 10 s) and the address is removed. A new pod given the same IP stops them at once.

All processes are started from the main thread with PR_SET_PDEATHSIG, so they die with this process, which the
data plane itself starts with PR_SET_PDEATHSIG. State for tests and debugging goes to <run-dir>/supervisor.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from e2e.harness import netns
from e2e.harness.kwok_stages import SERVE_LABEL
from e2e.harness.procs import _die_with_parent, rss_kib

log = logging.getLogger("supervisor")

SELECTOR = f"{SERVE_LABEL}=true"
MAX_GRACE_SECONDS = 10.0
# A pod that goes away keeps serving this long before SIGTERM (at most its grace period), like a preStop sleep:
# the EndpointSlice controller and the gateway need that long to stop sending it requests, and kwok deletes a
# terminating pod at once.
DRAIN_SECONDS = 2.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STARTUP_PROBE_INTERVAL = 0.2  # until the first success; afterwards the probe's periodSeconds
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_REFS = {
    "metadata.name": lambda pod: pod["metadata"]["name"],
    "metadata.namespace": lambda pod: pod["metadata"]["namespace"],
    "metadata.uid": lambda pod: pod["metadata"]["uid"],
    "spec.nodeName": lambda pod: pod["spec"].get("nodeName", ""),
    "spec.serviceAccountName": lambda pod: pod["spec"].get("serviceAccountName", ""),
    "status.podIP": lambda pod: pod["status"].get("podIP", ""),
    "status.hostIP": lambda pod: pod["status"].get("hostIP", ""),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, others stay as written, $$ is a literal $."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(one, text)


@dataclass(frozen=True)
class Image:
    """The local stand-in for an image: its entrypoint and its ENV."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def image_key(image: str) -> str:
    """`registry/name:tag` or `name@sha256:...` -> `registry/name` (images are looked up without tag or digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


class NotRunnable(Exception):
    """The container cannot be run locally (no command and an image the map does not know)."""


@dataclass
class Probe:
    path: str | None  # None: TCP connect
    port: int
    period: float
    failure_threshold: int

    def check(self, ip: str, timeout: float = 1.0) -> bool:
        try:
            if self.path is None:
                with socket.create_connection((ip, self.port), timeout=timeout):
                    return True
            with urllib.request.urlopen(f"http://{ip}:{self.port}{self.path}", timeout=timeout) as resp:
                return bool(200 <= resp.status < 400)
        except (OSError, urllib.error.URLError):
            return False


@dataclass
class Container:
    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    probes: list[Probe]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    generation: int = 0  # bumped at every start, so a late probe result of an earlier process is ignored
    started_at: str | None = None
    ready: bool = False
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    next_start: float | None = None  # monotonic time of a pending restart
    error: str | None = None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    ip: str
    grace: float
    containers: list[Container]
    stop_probes: threading.Event = field(default_factory=threading.Event)
    reported: str = ""  # the last status patch sent, to send only changes
    drain_until: float | None = None  # going away: SIGTERM at this monotonic time
    retry_at: float | None = None  # a patch failed (API server down): send it again then

    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.containers)


def _port_number(port: Any, ports: Mapping[str, int]) -> int:
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    if port in ports:
        return ports[port]
    raise NotRunnable(f"probe port {port!r} is not a container port")


def build_container(
    pod: Mapping[str, Any], spec: Mapping[str, Any], images: Mapping[str, Image], base_env: Mapping[str, str],
    log_dir: Path,
) -> Container:
    """What to run for one container of a pod: argv, environment, probes."""
    ip = pod["status"]["podIP"]
    image = images.get(image_key(spec.get("image", "")))
    command = list(spec.get("command") or (image.command if image else []))
    if not command:
        raise NotRunnable(f"container {spec['name']!r} has no command and image {spec.get('image')!r} is not in "
                          "the supervisor's image map")
    ports = {p.get("name", ""): int(p["containerPort"]) for p in spec.get("ports") or []}
    env: dict[str, str] = {**base_env, **(image.env if image else {}), "POD_IP": ip, "HOST": ip}
    if spec.get("ports"):
        env["PORT"] = str(spec["ports"][0]["containerPort"])
    for var in spec.get("env") or []:
        if "value" in var:
            env[var["name"]] = expand(str(var["value"]), env)
        elif "valueFrom" in var:
            ref = (var["valueFrom"].get("fieldRef") or {}).get("fieldPath")
            if ref not in _FIELD_REFS:
                raise NotRunnable(f"env {var['name']!r}: only literal values and fieldRefs "
                                  f"{sorted(_FIELD_REFS)} are supported here")
            env[var["name"]] = str(_FIELD_REFS[ref](pod))
        else:
            env[var["name"]] = ""  # the API server drops empty values: a name alone is ""
    # Without args the image's own args would apply; the image map has none beyond its command.
    argv = [expand(a, env) for a in [*command, *(spec.get("args") or [])]]
    probes = []
    probe = spec.get("readinessProbe")
    if probe and "httpGet" in probe:
        get = probe["httpGet"]
        probes.append(Probe(get.get("path") or "/", _port_number(get.get("port"), ports),
                            float(probe.get("periodSeconds", 10)), int(probe.get("failureThreshold", 3))))
    elif probe and "tcpSocket" in probe:
        probes.append(Probe(None, _port_number(probe["tcpSocket"].get("port"), ports),
                            float(probe.get("periodSeconds", 10)), int(probe.get("failureThreshold", 3))))
    else:
        # No probe: a kubelet calls the container ready once it runs; waiting for its ports avoids
        # sending it traffic before it listens.
        probes = [Probe(None, port, 10.0, 3) for port in ports.values()]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{pod['metadata']['namespace']}_{pod['metadata']['name']}_{spec['name']}")
    return Container(spec["name"], spec.get("image", ""), argv, env, probes, log_dir / f"{safe}.log")


class Supervisor:
    def __init__(
        self, api: client.ApiClient, net: netns.PodNetwork, run_dir: Path, images: Mapping[str, Image]
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.net = net
        self.run_dir = run_dir
        self.log_dir = run_dir / "pods"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.images = dict(images)
        self.base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        self.runs: dict[str, PodRun] = {}
        self.draining: dict[str, PodRun] = {}  # pods gone from the API whose processes still drain
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        self.listed = False
        # Memory of the pod processes, sampled once a second: the largest sum at one time, the largest process.
        self.rss_peak_kib = 0
        self.process_peak_kib = 0
        self._sampled = 0.0

    # --- the watch (its own thread; it only queues what it sees) -----------------------------------------------

    def watch(self) -> None:
        version: str | None = None
        while not self.stop.is_set():
            try:
                resp: Any
                if version is None:
                    resp = self.core.list_pod_for_all_namespaces(
                        label_selector=SELECTOR, _preload_content=False, _request_timeout=30)
                    listing = json.loads(resp.data)
                    version = listing["metadata"]["resourceVersion"]
                    self.events.put(("SYNC", listing["items"]))
                resp = self.core.list_pod_for_all_namespaces(
                    label_selector=SELECTOR, watch=True, resource_version=version, timeout_seconds=60,
                    allow_watch_bookmarks=True, _preload_content=False, _request_timeout=(10, 90))
                try:
                    for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            version = None  # 410 Gone and friends: list again
                            break
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.events.put((event["type"], obj))
                        if self.stop.is_set():
                            break
                finally:
                    resp.release_conn()
            except Exception as exc:  # the API server restarts in chaos tests: list again after a pause
                log.warning("watch failed (%s); listing again", exc)
                version = None
                self.stop.wait(1.0)

    # --- the main loop: every process start, stop and status patch happens here ------------------------------

    def run(self) -> None:
        threading.Thread(target=self.watch, name="watch", daemon=True).start()
        while not self.stop.is_set():
            try:
                kind, payload = self.events.get(timeout=0.1)
            except queue.Empty:
                kind, payload = "", None
            try:
                if kind:
                    self.handle(kind, payload)
                self.tick()
            except Exception:
                log.exception("handling %s failed", kind or "tick")
        self.shutdown()

    def handle(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            present = {pod["metadata"]["uid"] for pod in payload}
            for uid in [u for u in self.runs if u not in present]:
                self.drain_pod(uid)
            for pod in payload:
                self.reconcile(pod)
            self.listed = True
            self.write_state()
        elif kind == "DELETED":
            self.drain_pod(payload["metadata"]["uid"])
        elif kind in ("ADDED", "MODIFIED"):
            self.reconcile(payload)
        elif kind == "PROBE":
            uid, name, generation, ok = payload
            run = self.runs.get(uid)
            container = next((c for c in run.containers if c.name == name), None) if run else None
            if run and container and container.generation == generation and container.ready != ok:
                container.ready = ok
                log.info("%s/%s container %s ready=%s", run.namespace, run.name, name, ok)
                self.report(run)

    def wants_to_run(self, pod: Mapping[str, Any]) -> bool:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        return bool(
            not meta.get("deletionTimestamp")
            and spec.get("nodeName")
            and status.get("phase") == "Running"
            and self.net.contains(status.get("podIP", ""))
        )

    def reconcile(self, pod: Mapping[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if not self.wants_to_run(pod):
            if uid in self.runs:
                self.drain_pod(uid)
            return
        if uid not in self.runs:
            self.start_pod(pod)

    def start_pod(self, pod: Mapping[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ip = pod["status"]["podIP"]
        for other in [r for r in (*self.runs.values(), *self.draining.values()) if r.ip == ip]:
            # kwok hands a deleted pod's IP to the next pod at once: the new pod wins.
            log.warning("%s is still held by %s/%s; stopping it first", ip, other.namespace, other.name)
            self.stop_pod(other.uid)
        grace = min(float(spec.get("terminationGracePeriodSeconds", 30)), MAX_GRACE_SECONDS)
        run = PodRun(meta["uid"], meta["namespace"], meta["name"], ip, grace, [])
        self.runs[run.uid] = run
        try:
            run.containers = [build_container(pod, c, self.images, self.base_env, self.log_dir)
                              for c in spec["containers"]]
        except NotRunnable as exc:
            log.error("%s/%s cannot run: %s", run.namespace, run.name, exc)
            run.containers = [Container(c["name"], c.get("image", ""), [], {}, [], self.log_dir / "unused",
                                        error=str(exc)) for c in spec["containers"]]
            self.report(run)
            return
        netns.add_address(self.net, ip)
        for container in run.containers:
            self.spawn(run, container)
        threading.Thread(target=self.probe_loop, args=(run,), name=f"probe-{run.name}", daemon=True).start()
        self.report(run)
        self.write_state()

    def spawn(self, run: PodRun, container: Container) -> None:
        container.generation += 1
        container.ready = False
        container.next_start = None
        with container.log_path.open("ab") as out:
            out.write(f"--- {_now()} start #{container.restarts}: {container.argv}\n".encode())
            out.flush()
            container.popen = subprocess.Popen(
                [*netns.exec_prefix(self.net), *container.argv], env=container.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
                cwd="/",
            )
        container.started_at = _now()
        log.info("%s/%s container %s started: pid %d on %s", run.namespace, run.name, container.name,
                 container.popen.pid, run.ip)

    def tick(self) -> None:
        """Notices exits, starts containers whose backoff is over, sends status patches that failed again."""
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.retry_at is not None and now >= run.retry_at:
                self.report(run)
        for run in list(self.draining.values()):
            if run.drain_until is not None and now >= run.drain_until:
                self.stop_pod(run.uid)
        if now - self._sampled >= 1.0:
            self._sampled = now
            runs = (*self.runs.values(), *self.draining.values())
            pids = [c.popen.pid for r in runs for c in r.containers if c.running() and c.popen]
            peaks = (self.rss_peak_kib, self.process_peak_kib)
            self.rss_peak_kib = max(self.rss_peak_kib, sum(rss_kib(pid) for pid in pids))
            self.process_peak_kib = max([self.process_peak_kib, *(rss_kib(pid, "VmHWM") for pid in pids)])
            if peaks != (self.rss_peak_kib, self.process_peak_kib):
                self.write_state()
        for run in list(self.runs.values()):
            changed = False
            for c in run.containers:
                if c.popen is not None and c.popen.poll() is not None:
                    code = c.popen.returncode
                    c.last_exit = {"exitCode": code if code >= 0 else 128 - code, "finishedAt": _now(),
                                   "startedAt": c.started_at, "reason": "Error" if code else "Completed"}
                    c.popen, c.ready = None, False
                    c.next_start = now + BACKOFF_SECONDS[min(c.restarts, len(BACKOFF_SECONDS) - 1)]
                    log.warning("%s/%s container %s exited with %s; restarting in %.0f s", run.namespace, run.name,
                                c.name, code, c.next_start - now)
                    changed = True
                elif c.next_start is not None and now >= c.next_start:
                    c.restarts += 1
                    self.spawn(run, c)
                    changed = True
            if changed:
                self.report(run)
                self.write_state()

    def probe_loop(self, run: PodRun) -> None:
        """Probes every container of one pod until the pod stops; queues each change of readiness.

        A new process starts unready and turns ready at its first success (probed every 0.2 s until then);
        a ready one turns unready after failureThreshold failures in a row, probed every periodSeconds.
        """
        state: dict[str, tuple[int, bool, int]] = {}  # container -> (generation, ready, failures in a row)
        while not run.stop_probes.is_set():
            all_ready = True
            period = 10.0
            for c in run.containers:
                generation = c.generation
                if not c.running():
                    all_ready = False
                    continue
                seen_generation, ready, failures = state.get(c.name, (-1, False, 0))
                if seen_generation != generation:
                    ready, failures = False, 0
                ok = all(p.check(run.ip) for p in c.probes)
                if not ready and ok:
                    ready, failures = True, 0
                    self.events.put(("PROBE", (run.uid, c.name, generation, True)))
                elif ready and not ok:
                    failures += 1
                    if failures >= min(p.failure_threshold for p in c.probes):
                        ready, failures = False, 0
                        self.events.put(("PROBE", (run.uid, c.name, generation, False)))
                elif ready:
                    failures = 0
                state[c.name] = (generation, ready, failures)
                all_ready &= ready
                period = min([period, *(p.period for p in c.probes)])
            run.stop_probes.wait(period if all_ready else STARTUP_PROBE_INTERVAL)

    def drain_pod(self, uid: str) -> None:
        """The pod is gone or terminating: its processes stop after the drain delay (tick() does it)."""
        run = self.runs.pop(uid, None)
        if run is None:
            return
        run.stop_probes.set()
        for c in run.containers:
            c.next_start, c.ready = None, False
        run.drain_until = time.monotonic() + min(DRAIN_SECONDS, run.grace)
        self.draining[uid] = run
        self.write_state()

    def stop_pod(self, uid: str) -> None:
        """SIGTERM now, SIGKILL after the grace period, then release the pod IP."""
        run = self.runs.pop(uid, None) or self.draining.pop(uid, None)
        if run is None:
            return
        run.stop_probes.set()
        for c in run.containers:
            c.next_start = None
            if c.popen is not None and c.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + run.grace
        for c in run.containers:
            if c.popen is None:
                continue
            try:
                c.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.popen.pid, signal.SIGKILL)
                c.popen.wait(5)
        if not any(r.ip == run.ip for r in (*self.runs.values(), *self.draining.values())):
            netns.remove_address(self.net, run.ip)
        log.info("%s/%s stopped, %s released", run.namespace, run.name, run.ip)
        self.write_state()

    def shutdown(self) -> None:
        for uid in [*self.runs, *self.draining]:
            self.stop_pod(uid)

    # --- what the API server and the tests see ---------------------------------------------------------------

    def report(self, run: PodRun) -> None:
        """Patches the pod's readiness and container statuses, when they changed since the last patch."""
        statuses = []
        for c in run.containers:
            status: dict[str, Any] = {"name": c.name, "image": c.image, "imageID": "", "ready": c.ready,
                                      "restartCount": c.restarts, "started": c.running()}
            if c.error:
                status["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": c.error[:1024]}}
            elif c.running():
                status["state"] = {"running": {"startedAt": c.started_at}}
            else:
                status["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
            if c.last_exit:
                status["lastState"] = {"terminated": c.last_exit}
            statuses.append(status)
        ready = "True" if run.ready and not any(c.error for c in run.containers) else "False"
        key = json.dumps([ready, statuses], sort_keys=True)
        if key == run.reported:
            return
        now = _now()
        body = {"status": {
            "conditions": [{"type": t, "status": ready, "lastTransitionTime": now, "lastProbeTime": None}
                           for t in ("Ready", "ContainersReady")],
            "containerStatuses": statuses,
        }}
        try:
            self.core.patch_namespaced_pod_status(run.name, run.namespace, body,
                                                  _content_type="application/strategic-merge-patch+json",
                                                  _request_timeout=10)
            run.reported, run.retry_at = key, None
        except ApiException as exc:
            if exc.status == 404:  # a deleted pod needs no status
                run.retry_at = None
            else:
                log.warning("status of %s/%s: %s; trying again", run.namespace, run.name, exc.reason)
                run.retry_at = time.monotonic() + 1.0
        except Exception as exc:  # connection refused while the API server restarts
            log.warning("status of %s/%s: %s; trying again", run.namespace, run.name, exc)
            run.retry_at = time.monotonic() + 1.0

    def write_state(self) -> None:
        state = {
            "listed": self.listed,
            "pid": os.getpid(),
            "pods_rss_peak_kib": self.rss_peak_kib,
            "pod_process_peak_kib": self.process_peak_kib,
            "pods": [
                {"namespace": r.namespace, "name": r.name, "uid": r.uid, "ip": r.ip, "ready": r.ready,
                 "terminating": r.drain_until is not None,
                 "containers": [{"name": c.name, "pid": c.popen.pid if c.popen else None, "ready": c.ready,
                                 "restarts": c.restarts, "log": str(c.log_path), "error": c.error}
                                for c in r.containers]}
                for r in (*self.runs.values(), *self.draining.values())
            ],
        }
        path = self.run_dir / "supervisor.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--pod-cidr", required=True, help="the cluster's kwok --cidr (names the pod network slot)")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--images", type=Path, help='JSON {"image": {"command": [...], "env": {...}}}')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    images = {image_key(k): Image(list(v["command"]), dict(v.get("env") or {}))
              for k, v in (json.loads(args.images.read_text()) if args.images else {}).items()}
    api = config.new_client_from_config(config_file=str(args.kubeconfig))  # type: ignore[no-untyped-call]
    supervisor = Supervisor(api, netns.PodNetwork.from_cidr(args.pod_cidr), args.run_dir, images)

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.write_state()
    supervisor.run()
    supervisor.write_state()
    return 0


if __name__ == "__main__":
    sys.exit(main())
