"""How long ``WebhookNotifier.submit`` takes while every receiver hangs.

    python -m bench.notify_submit [--submits N] [--json]

A figure, not a test: wall-clock numbers depend on the machine and its load, so the unit tests assert only
that submit does not wait for the receiver (tests/unit/test_notify.py); this prints what it costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelratchet.api.common import SecretKeySelector
from modelratchet.api.rollout import Notification
from modelratchet.notify import WebhookNotifier
from modelratchet.rollout.types import Notify

ROLLOUT: dict[str, Any] = {
    "apiVersion": "modelratchet.io/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "bench", "namespace": "bench", "uid": "bench-uid", "generation": 1},
    "spec": {"checkpoint": "s3://models/bench/v2", "steps": [{"setWeight": 10}]},
}
CONTEXT: dict[str, Any] = {"phase": "Progressing", "stable": "s3://models/bench/v1", "step": 1, "weight": 10}
TARGETS = [
    Notification.model_validate({"webhook": {"secretRef": {"name": "hook", "key": "url"}}}),
    Notification.model_validate({"slack": {"secretRef": {"name": "hook", "key": "url"}}}),
]


class HangingReceiver:
    """Accepts POSTs and answers none of them until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = threading.Semaphore(0)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.release()
                receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def measure(submits: int) -> dict[str, Any]:
    # Where the notifier restricts receiver addresses, the benchmark's receiver is on loopback.
    os.environ.setdefault("MODELRATCHET_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    receiver = HangingReceiver()

    def lookup(_namespace: str, _ref: SecretKeySelector) -> str:
        return receiver.url

    notifier = WebhookNotifier(secret_lookup=lookup, timeout=60.0, max_queue=2 * submits + 10)
    try:
        notifier.submit(ROLLOUT, TARGETS[:1], Notify("started", "warm-up"), CONTEXT)
        if not receiver.received.acquire(timeout=30):
            raise RuntimeError("the receiver never saw the warm-up notification")
        latencies = []
        for i in range(submits):
            started = time.perf_counter()
            notifier.submit(ROLLOUT, TARGETS, Notify("stepReached", f"step {i}"), CONTEXT)
            latencies.append(time.perf_counter() - started)
        pending = notifier.pending()
    finally:
        # What is still queued is dropped when the receiver goes away; that is the benchmark ending, not news.
        logging.getLogger("modelratchet.notify").setLevel(logging.CRITICAL)
        notifier.close(timeout=0)
        receiver.close()
    latencies.sort()
    ms = [x * 1e3 for x in latencies]
    return {
        "submits": submits,
        "pending_while_hanging": pending,
        "median_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "max_ms": ms[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=2000, help="submits to time (two targets each)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.submits < 1:
        parser.error("--submits must be at least 1")
    result = measure(args.submits)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"submit while the receiver hangs, {result['submits']} submits: median {result['median_ms']:.3f} ms, "
            f"p95 {result['p95_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, max {result['max_ms']:.3f} ms "
            f"({result['pending_while_hanging']} deliveries queued)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
