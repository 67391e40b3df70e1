"""Real model-server processes per checkpoint, and labelled traffic to them.

`ModelServerFleet` runs `examples/model-server/server.py` once per checkpoint label on a free
127.0.0.1 port, so Prometheus scrapes real counters. `TrafficDriver` sends bounded, rate-limited
requests drawn from the held-out evaluation split (with their true labels, so the servers count
correct answers), choosing a server per request in proportion to `weights()`. `kube_weights`
derives those weights from ready replicas, the way a Service spreads connections over pods.

With the data plane (e2e/harness/dataplane.py) the servers are pods and `GatewayTrafficDriver` sends the
same requests to the gateway instead: the gateway picks the server, and the driver records which checkpoint
answered each request (the `X-Model-Checkpoint` response header).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import ipaddress
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from kubernetes.client import ApiClient, AppsV1Api, V1Deployment
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO_ROOT / "examples" / "model-server"
SERVER_SCRIPT = EXAMPLE_DIR / "server.py"
CHECKPOINT_DIR = EXAMPLE_DIR / "checkpoints"
EVAL_SPLIT = CHECKPOINT_DIR / "eval-split.npz"

Weights = Callable[[], Mapping[str, float]]
CHECKPOINT_HEADER = "X-Model-Checkpoint"
# Besides loopback, the pod networks this harness created itself (e2e/harness/netns.py) may be reached.
_POD_NETWORKS: list[ipaddress.IPv4Network] = []


def allow_pod_network(network: ipaddress.IPv4Network) -> None:
    """Lets traffic and scrapes reach a pod network that this process created (and only that)."""
    if network not in _POD_NETWORKS:
        _POD_NETWORKS.append(network)


def forbid_pod_network(network: ipaddress.IPv4Network) -> None:
    with contextlib.suppress(ValueError):
        _POD_NETWORKS.remove(network)


def checkpoint_file(name: str) -> Path:
    """Path of a shipped example checkpoint, e.g. checkpoint_file("v2-better")."""
    return CHECKPOINT_DIR / f"{name}.npz"


def _require_loopback(host: str, *, pods: bool = False) -> None:
    """Traffic and listeners stay on this machine: anything but loopback (or, with `pods`, a pod network this
    harness created) is a bug in the caller."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and (address.is_loopback or (pods and any(address in n for n in _POD_NETWORKS))):
        return
    raise ValueError(f"{host!r} is not a loopback address" + (" nor in a pod network of this harness" if pods else ""))


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------------------- fleet


@dataclass
class ModelServer:
    """One running server process (its pid is also its process group id)."""

    label: str
    checkpoint: Path
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self, timeout: float) -> None:
        """SIGTERM the group, wait, then SIGKILL: never leaves the process behind."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)


_LIVE_FLEETS: set[ModelServerFleet] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_live_fleets() -> None:
    with _LIVE_LOCK:
        fleets = list(_LIVE_FLEETS)
    for fleet in fleets:
        fleet.stop()


class ModelServerFleet:
    """One model-server process per checkpoint label, on free loopback ports.

    `checkpoints` maps the checkpoint label (the string the operator writes into the Deployment and
    the `checkpoint` metric label, e.g. "s3://models/digits/v2") to the checkpoint file to serve.
    Use as a context manager, or call start()/stop(); stragglers are stopped at interpreter exit,
    and each server also exits by itself when this process dies.
    """

    def __init__(
        self,
        checkpoints: Mapping[str, str | Path] | None = None,
        *,
        model: str = "digits",
        host: str = "127.0.0.1",
        python: str = sys.executable,
        log_dir: Path | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        _require_loopback(host)
        self.model = model
        self.host = host
        self.python = python
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="modelratchet-servers-"))
        self._wanted = {label: Path(path) for label, path in (checkpoints or {}).items()}
        self._servers: dict[str, ModelServer] = {}
        self._spawned = 0
        self._lock = threading.Lock()

    def __enter__(self) -> ModelServerFleet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> dict[str, str]:
        """Starts every configured checkpoint not yet running; returns label -> host:port."""
        for label, path in self._wanted.items():
            if label not in self._servers:
                self.add(label, path)
        return self.addresses()

    def add(self, label: str, checkpoint: str | Path) -> str:
        """Starts one more server (waits until it answers /healthz); returns its host:port."""
        with self._lock:
            if label in self._servers:
                raise ValueError(f"checkpoint label {label!r} is already served")
            with _LIVE_LOCK:
                _LIVE_FLEETS.add(self)
            server = self._spawn(label, Path(checkpoint))
            self._wanted[label] = Path(checkpoint)
            self._servers[label] = server
        return server.address

    def remove(self, label: str) -> None:
        """Stops the server of one label (no-op when absent)."""
        with self._lock:
            server = self._servers.pop(label, None)
            self._wanted.pop(label, None)
        if server is not None:
            server.stop(self.stop_timeout)

    def stop(self) -> None:
        """Stops every server; safe to call more than once."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.stop(self.stop_timeout)
        with _LIVE_LOCK:
            _LIVE_FLEETS.discard(self)

    def servers(self) -> dict[str, ModelServer]:
        with self._lock:
            return dict(self._servers)

    def address(self, label: str) -> str:
        return self.servers()[label].address

    def addresses(self) -> dict[str, str]:
        """label -> host:port of every running server."""
        return {label: s.address for label, s in self.servers().items()}

    def urls(self) -> dict[str, str]:
        """label -> http://host:port of every running server (what TrafficDriver takes)."""
        return {label: s.url for label, s in self.servers().items()}

    def file_sd(self) -> list[dict[str, Any]]:
        """Prometheus file_sd targets. No target labels: the servers already label model and checkpoint."""
        return [{"targets": sorted(self.addresses().values()), "labels": {}}]

    def write_file_sd(self, path: Path) -> Path:
        """Writes file_sd JSON atomically (Prometheus re-reads the file when it changes)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.file_sd(), indent=2))
        tmp.replace(path)
        return path

    def _spawn(self, label: str, checkpoint: Path) -> ModelServer:
        self._spawned += 1  # labels may sanitise to the same file name; the counter keeps files apart
        stem = f"{self._spawned:02d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:80]
        ready = self.log_dir / f"{stem}.ready.json"
        log_path = self.log_dir / f"{stem}.log"
        options = {
            "--checkpoint": str(checkpoint),
            "--checkpoint-label": label,
            "--model": self.model,
            "--host": self.host,
            "--port": "0",  # the server binds a free port itself: no race between picking and binding
            "--ready-file": str(ready),
            "--parent-pid": str(os.getpid()),
        }
        cmd = [self.python, str(SERVER_SCRIPT), *(part for pair in options.items() for part in pair)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = ModelServer(label, checkpoint, self.host, 0, process, log_path)
        try:
            server.port = self._await_ready(process, ready, log_path)
            self._await_healthy(server)
        except BaseException:
            server.stop(self.stop_timeout)
            raise
        return server

    def _await_ready(self, process: subprocess.Popen[bytes], ready: Path, log_path: Path) -> int:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if ready.exists():
                return int(json.loads(ready.read_text())["port"])
            if process.poll() is not None:
                raise RuntimeError(f"model server exited with {process.returncode}; log:\n{_tail(log_path)}")
            time.sleep(0.05)
        raise TimeoutError(f"model server not listening after {self.startup_timeout}s; log:\n{_tail(log_path)}")

    def _await_healthy(self, server: ModelServer) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{server.url}/healthz: {exc}") from exc
            time.sleep(0.05)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Samples:
    """Labelled inputs for traffic: rows of features with their true digit."""

    features: list[list[float]]
    labels: list[int]

    @classmethod
    def load(cls, path: Path = EVAL_SPLIT) -> Samples:
        """The held-out evaluation split written by train.py (no scikit-learn needed)."""
        with np.load(path, allow_pickle=False) as data:
            features = data["features"].astype(float).tolist()
            labels = [int(v) for v in data["labels"]]
        return cls(features, labels)


@dataclass
class LabelStats:
    sent: int = 0  # requests handed to a worker
    ok: int = 0  # answered 200
    failed: int = 0  # error status, connection error or timeout
    correct: int = 0  # answered with the true label


@dataclass
class TrafficStats:
    """Counts per checkpoint label: the one the driver chose (TrafficDriver) or the one that answered
    (GatewayTrafficDriver, whose per-label `sent` counts requests that label's servers answered)."""

    per_label: dict[str, LabelStats] = field(default_factory=dict)
    dropped: int = 0  # ticks skipped because every worker was busy (keeps the load bounded)
    unroutable: int = 0  # weight for a label that has no server address
    weight_errors: int = 0  # weights() raised; the previous weights were kept
    no_answer: int = 0  # gateway mode: no model server answered (connection error, timeout, gateway error)
    statuses: dict[int, int] = field(default_factory=dict)  # gateway mode: HTTP status -> count (0: no response)

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.per_label.values()) + self.no_answer

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.per_label.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.per_label.values()) + self.no_answer

    def answered(self) -> dict[str, int]:
        """Successful answers per checkpoint, as the client saw them."""
        return {label: s.ok for label, s in self.per_label.items() if s.ok}


class TrafficDriver(threading.Thread):
    """Sends labelled /predict requests at a fixed rate, split across servers by `weights()`.

    Bounded on every axis: at most `rate` requests per second, at most `concurrency` in flight
    (ticks beyond that are dropped and counted, never queued), at most `max_requests` in total and
    at most `max_duration` seconds; stop() ends it at once. Only loopback targets are accepted.

    `targets` maps label -> base URL (e.g. `fleet.urls`, or a callable returning it so servers
    added later are reached); `weights` returns label -> weight (any non-negative scale, normalised
    here) and is re-read every `weights_interval` seconds.
    """

    def __init__(
        self,
        targets: Mapping[str, str] | Callable[[], Mapping[str, str]],
        weights: Weights,
        *,
        samples: Samples | None = None,
        rate: float = 100.0,
        max_duration: float = 300.0,
        max_requests: int | None = None,
        concurrency: int = 16,
        weights_interval: float = 1.0,
        request_timeout: float = 5.0,
        send_labels: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(name="traffic-driver", daemon=True)
        if not 0 < rate <= 1000:
            raise ValueError("rate must be in (0, 1000] requests per second")
        if max_duration <= 0:
            raise ValueError("max_duration must be positive")
        self._targets = targets if callable(targets) else _fixed_targets(targets)
        self._weights = weights
        self._samples = samples or Samples.load()
        self.rate = rate
        self.max_duration = max_duration
        self.max_requests = max_requests
        self.concurrency = concurrency
        self.weights_interval = weights_interval
        self.request_timeout = request_timeout
        self.send_labels = send_labels
        self._rng = random.Random(seed)
        self._stop_event = threading.Event()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._stats = TrafficStats()
        self._current: tuple[list[str], list[float]] = ([], [])

    # public API

    def stop(self, timeout: float | None = None) -> None:
        """Ends the run and waits (up to `timeout`) for in-flight requests."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def stats(self) -> TrafficStats:
        """A consistent snapshot of the counts so far."""
        with self._lock:
            return TrafficStats(
                per_label={k: LabelStats(**vars(v)) for k, v in self._stats.per_label.items()},
                dropped=self._stats.dropped,
                unroutable=self._stats.unroutable,
                weight_errors=self._stats.weight_errors,
                no_answer=self._stats.no_answer,
                statuses=dict(self._stats.statuses),
            )

    def __enter__(self) -> TrafficDriver:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # the loop

    def run(self) -> None:
        interval = 1.0 / self.rate
        started = time.monotonic()
        deadline = started + self.max_duration
        next_tick = started
        weights_due = started
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="traffic") as pool:
            while not self._stop_event.is_set() and not self._exhausted(time.monotonic(), deadline):
                now = time.monotonic()
                if now >= weights_due:
                    self._refresh_weights()
                    weights_due = now + self.weights_interval
                self._tick(pool)
                # Never burst to catch up after a stall (e.g. a slow weights() call).
                next_tick = max(next_tick + interval, time.monotonic() - interval)
                self._stop_event.wait(max(0.0, next_tick - time.monotonic()))

    def _exhausted(self, now: float, deadline: float) -> bool:
        if now >= deadline:
            return True
        if self.max_requests is None:
            return False
        with self._lock:
            return self._stats.sent >= self.max_requests

    def _refresh_weights(self) -> None:
        try:
            raw = dict(self._weights())
        except Exception:
            with self._lock:
                self._stats.weight_errors += 1
            return
        labels = [label for label, w in raw.items() if w > 0]
        self._current = (labels, [float(raw[label]) for label in labels])

    def _tick(self, pool: ThreadPoolExecutor) -> None:
        labels, weights = self._current
        if not labels:
            return  # nothing is ready to serve: a Service would have no endpoints either
        label = self._rng.choices(labels, weights)[0]
        url = self._targets().get(label)
        if url is None:
            with self._lock:
                self._stats.unroutable += 1
            return
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self._stats.dropped += 1
            return
        index = self._rng.randrange(len(self._samples.labels))
        with self._lock:
            self._stats.per_label.setdefault(label, LabelStats()).sent += 1
        pool.submit(self._send, label, url, index)

    def _send(self, label: str, url: str, index: int) -> None:
        truth = self._samples.labels[index]
        body: dict[str, Any] = {"features": self._samples.features[index]}
        if self.send_labels:
            body["label"] = truth
        try:
            answer = _post_json(f"{url}/predict", body, self.request_timeout)
            ok, correct = True, answer.get("prediction") == truth
        except (OSError, ValueError):
            ok, correct = False, False
        finally:
            self._slots.release()
        with self._lock:
            stats = self._stats.per_label[label]
            stats.ok += int(ok)
            stats.failed += int(not ok)
            stats.correct += int(correct)


def _fixed_targets(targets: Mapping[str, str]) -> Callable[[], Mapping[str, str]]:
    fixed = dict(targets)
    for url in fixed.values():
        _require_loopback(urllib.parse.urlparse(url).hostname or "")
    return lambda: fixed


def _post_json(url: str, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    _require_loopback(urllib.parse.urlparse(url).hostname or "")
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        answer = json.loads(resp.read())
    if not isinstance(answer, dict):
        raise ValueError(f"unexpected answer from {url}: {answer!r}")
    return answer


@dataclass(frozen=True)
class Answer:
    """One request through the gateway: the HTTP status (0: no response) and the checkpoint that answered."""

    status: int
    checkpoint: str | None
    body: dict[str, Any] | None = None


_connections = threading.local()


def _connection(netloc: str, timeout: float) -> http.client.HTTPConnection:
    """This thread's keep-alive connection to `netloc`.

    Clients of a gateway keep their connections open; one that closes right after each answer makes Traefik's
    mirroring skip the copy when the close is seen before the mirror is sent (its request context is canceled).
    """
    pool: dict[str, http.client.HTTPConnection] = _connections.__dict__.setdefault("pool", {})
    conn = pool.get(netloc)
    if conn is None:
        host, _, port = netloc.rpartition(":")
        conn = pool[netloc] = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.timeout = timeout
    return conn


def gateway_request(
    url: str,
    host: str,
    path: str = "/predict",
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    """POSTs `body` as JSON (GET without one) to the gateway at `url` for virtual host `host`, on a keep-alive
    connection of this thread."""
    parsed = urllib.parse.urlparse(url)
    _require_loopback(parsed.hostname or "")
    data = json.dumps(body).encode() if body is not None else None
    send = {"Host": host, "Content-Type": "application/json", **(headers or {})}
    for _ in range(2):
        conn = _connection(parsed.netloc, timeout)
        reused = conn.sock is not None
        try:
            conn.request("POST" if data is not None else "GET", path, body=data, headers=send)
            resp = conn.getresponse()
            raw = resp.read()
            break
        except (OSError, http.client.HTTPException) as exc:
            conn.close()  # the next request opens a new connection
            # Only a kept-alive connection that the gateway had closed meanwhile is retried (it fails before any
            # answer); any other failure may have reached a server, so it is not repeated.
            stale = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
            if not (reused and isinstance(exc, stale)):
                return Answer(0, None)
    else:
        return Answer(0, None)
    checkpoint = resp.headers.get(CHECKPOINT_HEADER)
    checkpoint = urllib.parse.unquote(checkpoint) if checkpoint is not None else None
    if resp.status != 200:  # the server's own errors carry its checkpoint, the gateway's do not
        return Answer(resp.status, checkpoint)
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    return Answer(resp.status, checkpoint, answer if isinstance(answer, dict) else None)


class GatewayTrafficDriver(TrafficDriver):
    """Sends labelled /predict requests to a gateway at a fixed rate; the gateway decides who answers.

    Same bounds as TrafficDriver. `url` is the gateway (loopback), `host` the HTTPRoute hostname the requests
    carry; `headers` are added to every request, or, as a callable, computed per request from its sequence
    number (e.g. a header on every 10th request). stats().per_label counts answers per checkpoint, read from
    the `X-Model-Checkpoint` response header, so a test sees the candidate's share at the client.
    """

    def __init__(
        self,
        url: str,
        host: str,
        *,
        path: str = "/predict",
        headers: Mapping[str, str] | Callable[[int], Mapping[str, str]] | None = None,
        **options: Any,
    ) -> None:
        _require_loopback(urllib.parse.urlparse(url).hostname or "")
        super().__init__({}, static_weights({}), **options)
        self.url = url
        self.host = host
        self.path = path
        self._headers = headers
        self._issued = 0

    def _refresh_weights(self) -> None:
        """The gateway splits the traffic; there is nothing to choose here."""

    def _exhausted(self, now: float, deadline: float) -> bool:
        if now >= deadline:
            return True
        return self.max_requests is not None and self._issued >= self.max_requests

    def _tick(self, pool: ThreadPoolExecutor) -> None:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self._stats.dropped += 1
            return
        sequence = self._issued
        self._issued += 1
        index = self._rng.randrange(len(self._samples.labels))
        headers = self._headers(sequence) if callable(self._headers) else self._headers
        pool.submit(self._send_through_gateway, index, dict(headers or {}))

    def _send_through_gateway(self, index: int, headers: dict[str, str]) -> None:
        truth = self._samples.labels[index]
        body: dict[str, Any] = {"features": self._samples.features[index]}
        if self.send_labels:
            body["label"] = truth
        try:
            answer = gateway_request(self.url, self.host, self.path, body, headers, self.request_timeout)
        finally:
            self._slots.release()
        with self._lock:
            self._stats.statuses[answer.status] = self._stats.statuses.get(answer.status, 0) + 1
            if answer.checkpoint is None:
                self._stats.no_answer += 1
                return
            stats = self._stats.per_label.setdefault(answer.checkpoint, LabelStats())
            ok = answer.status == 200 and answer.body is not None
            stats.sent += 1
            stats.ok += int(ok)
            stats.failed += int(not ok)
            stats.correct += int(ok and answer.body is not None and answer.body.get("prediction") == truth)


def scrape_metrics(url: str, timeout: float = 5.0) -> dict[str, float]:
    """One server's /metrics as {sample name: value}; histogram buckets as 'name{le="0.05"}'.

    Each server exports a single model/checkpoint label set, so the sample name is unique. Servers on
    loopback or (pods) in a pod network this harness created can be scraped.
    """
    _require_loopback(urllib.parse.urlparse(url).hostname or "", pods=True)
    with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            le = sample.labels.get("le")
            values[sample.name if le is None else f'{sample.name}{{le="{le}"}}'] = sample.value
    return values


def static_weights(weights: Mapping[str, float]) -> Weights:
    """A fixed split, e.g. static_weights({"v1": 3, "v2": 1})."""
    frozen = dict(weights)
    return lambda: frozen


# ---------------------------------------------------------------------------------- kubernetes


CheckpointOf = Callable[[V1Deployment], str | None]


def env_checkpoint(container: str = "server", env: str = "MODEL_CHECKPOINT") -> CheckpointOf:
    """Reads a Deployment's checkpoint from an env var of one container of its pod template."""

    def checkpoint_of(deployment: V1Deployment) -> str | None:
        pod = deployment.spec.template.spec if deployment.spec and deployment.spec.template else None
        for c in (pod.containers if pod else None) or []:
            if c.name == container:
                return next((str(v.value) for v in c.env or [] if v.name == env and v.value is not None), None)
        return None

    return checkpoint_of


def ready_weights(
    api: ApiClient | AppsV1Api,
    namespace: str,
    deployments: Iterable[str],
    checkpoint_of: CheckpointOf | None = None,
) -> dict[str, float]:
    """Ready replicas per checkpoint over the given Deployments, read once.

    A Service spreads connections evenly over ready endpoints, so a checkpoint's share of traffic
    is its ready pods over all ready pods. A missing Deployment (a canary not created yet, or
    already removed) contributes nothing. Pods are attributed to the checkpoint of the pod
    template, which is exact except while a Deployment itself rolls (old and new pods both ready).
    """
    apps = api if isinstance(api, AppsV1Api) else AppsV1Api(api)
    checkpoint_of = checkpoint_of or env_checkpoint()
    weights: dict[str, float] = {}
    for name in deployments:
        try:
            deployment = apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise
        ready = (deployment.status.ready_replicas if deployment.status else None) or 0
        checkpoint = checkpoint_of(deployment)
        if ready and checkpoint:
            weights[checkpoint] = weights.get(checkpoint, 0.0) + float(ready)
    return weights


def kube_weights(
    api: ApiClient | AppsV1Api,
    namespace: str,
    deployments: Sequence[str],
    checkpoint_of: CheckpointOf | None = None,
) -> Weights:
    """A `weights()` for TrafficDriver that follows the cluster: see ready_weights.

    `api` is a kubernetes.client.ApiClient (or an AppsV1Api); `checkpoint_of(V1Deployment)` defaults
    to the env var MODEL_CHECKPOINT of container `server`.
    """
    names = list(deployments)
    return lambda: ready_weights(api, namespace, names, checkpoint_of)
