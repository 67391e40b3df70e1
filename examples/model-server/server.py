"""A small, real model server for one checkpoint, with the Prometheus metrics ModelRatchet judges.

    python examples/model-server/server.py --checkpoint examples/model-server/checkpoints/v2-better.npz \
        --checkpoint-label s3://models/digits/v2 --model digits --port 8080

Endpoints (every answer carries the header `X-Model-Checkpoint: LABEL`, so a client behind a load balancer
or gateway sees which checkpoint answered):
    POST /predict   {"features": [64 numbers], "label": optional int} -> {"prediction": int, "checkpoint": LABEL}
    POST /feedback  {"prediction": int, "label": int}                 -> {"correct": bool}
    GET  /healthz   200 once the checkpoint is loaded
    GET  /metrics   Prometheus exposition (also on --metrics-port when given)

Every series carries `model` and `checkpoint` labels, so PromQL can compare the stable and the
canary checkpoint side by side. Standard library HTTP plus numpy and prometheus_client only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import prometheus_client
from model_io import Checkpoint, load_checkpoint, resolve_checkpoint
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("model-server")

# Fine buckets around tens of milliseconds, so a +40 ms regression is visible to histogram_quantile.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
MAX_BODY_BYTES = 64 * 1024
CHECKPOINT_HEADER = "X-Model-Checkpoint"
DEFAULT_CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


class BadRequest(ValueError):
    """The client sent something we cannot predict on; answered with 400."""


class Metrics:
    """The four series ModelRatchet's PromQL templates read, bound to one model and checkpoint."""

    def __init__(self, registry: CollectorRegistry, model: str, checkpoint: str) -> None:
        labels = ("model", "checkpoint")
        # prometheus_client appends `_total` to counters itself; these expose model_predictions_total etc.
        predictions = Counter("model_predictions", "Predictions served.", labels, registry=registry)
        correct = Counter("model_correct", "Labelled predictions that were correct.", labels, registry=registry)
        feedback = Counter("model_feedback", "Predictions whose true label was reported.", labels, registry=registry)
        latency = Histogram(
            "model_request_latency_seconds",
            "Time to answer /predict.",
            labels,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        # Creating the children now exports them at 0, so rate() has a starting point at the first scrape.
        self.predictions = predictions.labels(model, checkpoint)
        self.correct = correct.labels(model, checkpoint)
        self.feedback = feedback.labels(model, checkpoint)
        self.latency = latency.labels(model, checkpoint)

    def record_feedback(self, prediction: int, label: int) -> bool:
        self.feedback.inc()
        is_correct = prediction == label
        if is_correct:
            self.correct.inc()
        return is_correct


@dataclass(frozen=True)
class ModelService:
    """What the request handlers share: the model, its identity and its metrics."""

    model: str
    label: str
    checkpoint: Checkpoint
    metrics: Metrics
    registry: CollectorRegistry
    extra_latency: float

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        features = _features(body, self.checkpoint.n_features)
        label = _optional_int(body, "label")
        prediction = int(self.checkpoint.predict(features)[0])
        if self.extra_latency:
            time.sleep(self.extra_latency)
        self.metrics.predictions.inc()
        if label is not None:
            self.metrics.record_feedback(prediction, label)
        self.metrics.latency.observe(time.perf_counter() - started)
        return {"prediction": prediction, "checkpoint": self.label}

    def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        prediction, label = _optional_int(body, "prediction"), _optional_int(body, "label")
        if prediction is None or label is None:
            raise BadRequest('"prediction" and "label" are required')
        return {"correct": self.metrics.record_feedback(prediction, label), "checkpoint": self.label}

    def health(self) -> dict[str, Any]:
        meta = self.checkpoint.metadata
        return {"status": "ok", "model": self.model, "checkpoint": self.label, "description": meta.get("description")}


def _features(body: dict[str, Any], n_features: int) -> np.ndarray:
    raw = body.get("features")
    if not isinstance(raw, list) or len(raw) != n_features:
        raise BadRequest(f'"features" must be a list of {n_features} numbers')
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        raise BadRequest('"features" must contain only numbers')
    features = np.asarray(raw, dtype=np.float64)
    if not np.all(np.isfinite(features)):
        raise BadRequest('"features" must be finite')
    return features


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f'"{key}" must be an integer')
    return value


_URI_SAFE = ":/?#[]@!$&'()*+,;=%-._~"


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.0, one request per connection: shutdown only waits for requests already in flight."""

    service: ModelService
    metrics_only = False
    timeout = 10  # seconds a client may take to send its request
    server_version = "modelratchet-digits/1"

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send_metrics()
        elif self.path == "/healthz":
            self._send_json(HTTPStatus.OK, self.service.health())
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        routes = {"/predict": self.service.predict, "/feedback": self.service.feedback}
        route = None if self.metrics_only else routes.get(self.path)
        if route is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})
            return
        try:
            self._send_json(HTTPStatus.OK, route(self._read_json()))
        except BadRequest as exc:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception:
            log.exception("%s failed", self.path)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as exc:
            raise BadRequest("bad Content-Length") from exc
        if not 0 < length <= MAX_BODY_BYTES:
            raise BadRequest(f"body must be 1..{MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _send_metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._send(HTTPStatus.OK, encoder(self.service.registry), content_type)

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        # Header values are Latin-1 on the wire; a label is a URI, percent-encode anything beyond ASCII.
        self.send_header(CHECKPOINT_HEADER, urllib.parse.quote(self.service.label, safe=_URI_SAFE))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Hundreds of requests a second would drown the log; errors still go through log_error.
        log.debug("%s " + format, self.address_string(), *args)

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("%s " + format, self.address_string(), *args)


class Server(ThreadingHTTPServer):
    # Non-daemon handler threads, joined by server_close(): SIGTERM lets in-flight requests finish.
    daemon_threads = False
    block_on_close = True
    # One connection per request (HTTP/1.0): behind a proxy, bursts of connects overflow socketserver's
    # default listen backlog of 5, and the kernel drops them.
    request_queue_size = 128


def make_server(service: ModelService, host: str, port: int, metrics_only: bool = False) -> Server:
    handler = type("BoundHandler", (Handler,), {"service": service, "metrics_only": metrics_only})
    return Server((host, port), handler)


def build_service(
    checkpoint: str,
    label: str,
    model: str,
    checkpoint_dir: Path,
    extra_ms: float | None,
    model_store: Path | None = None,
) -> ModelService:
    path = resolve_checkpoint(checkpoint, checkpoint_dir, model_store)
    ckpt = load_checkpoint(path)
    registry = CollectorRegistry()
    extra = ckpt.extra_latency_seconds if extra_ms is None else extra_ms / 1000.0
    log.info("loaded %s as checkpoint %r (extra latency %.0f ms)", path, label, extra * 1000)
    return ModelService(model, label, ckpt, Metrics(registry, model, label), registry, extra)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Serve one digits checkpoint with Prometheus metrics.")
    p.add_argument(
        "--checkpoint",
        default=env("MODEL_CHECKPOINT"),
        help="checkpoint path, file:// URI, or URI resolved in --model-store or --checkpoint-dir "
        "(env MODEL_CHECKPOINT)",
    )
    p.add_argument(
        "--checkpoint-label",
        default=env("MODEL_CHECKPOINT_LABEL"),
        help="value of the `checkpoint` metric label (default: --checkpoint as given)",
    )
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=Path(env("MODEL_CHECKPOINT_DIR", DEFAULT_CHECKPOINT_DIR)),
        help="where non-file URIs are looked up by their last segment (env MODEL_CHECKPOINT_DIR)",
    )
    p.add_argument(
        "--model-store",
        type=Path,
        default=Path(env("MODEL_STORE")) if env("MODEL_STORE") else None,
        help="local mirror of the object store, searched first: s3://bucket/key is <store>/s3/bucket/key[.npz] "
        "(env MODEL_STORE)",
    )
    p.add_argument("--model", default=env("MODEL_NAME", "digits"), help="value of the `model` metric label")
    p.add_argument("--host", default=env("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("PORT", "8080")), help="0 picks a free port")
    p.add_argument("--metrics-port", type=int, default=None, help="also serve /metrics here (default: main port only)")
    p.add_argument("--extra-latency-ms", type=float, default=None, help="override the checkpoint's extra latency")
    p.add_argument("--ready-file", type=Path, help="write {host, port, pid} as JSON here once listening")
    p.add_argument("--parent-pid", type=int, help="exit when this process is no longer our parent")
    p.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    if not args.checkpoint:
        p.error("--checkpoint or MODEL_CHECKPOINT is required")
    args.checkpoint_label = args.checkpoint_label or args.checkpoint
    return args


def write_ready_file(path: Path, server: Server) -> None:
    host, port = server.server_address[:2]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
    tmp.replace(path)  # atomic: a reader never sees half a file


def watch_parent(parent_pid: int) -> None:
    """A harness that dies without cleaning up leaves us reparented: then stop, never linger."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    log.warning("parent %d is gone; shutting down", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)


def serve(servers: list[Server]) -> None:
    """Runs until SIGTERM/SIGINT, then stops accepting and waits for in-flight requests."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [threading.Thread(target=s.serve_forever, name=f"serve-{i}", daemon=True) for i, s in enumerate(servers)]
    for t in threads:
        t.start()
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # only the series PromQL reads
    service = build_service(
        args.checkpoint, args.checkpoint_label, args.model, args.checkpoint_dir, args.extra_latency_ms,
        args.model_store,
    )
    servers = [make_server(service, args.host, args.port)]
    if args.metrics_port is not None:
        servers.append(make_server(service, args.host, args.metrics_port, metrics_only=True))
    for s in servers:
        log.info("listening on http://%s:%d", *s.server_address[:2])
    if args.parent_pid is not None:
        threading.Thread(target=watch_parent, args=(args.parent_pid,), daemon=True).start()
    if args.ready_file is not None:
        write_ready_file(args.ready_file, servers[0])
    serve(servers)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
