"""A synthetic exporter: every checkpoint of the scale benchmark has its own series, scraped by the real Prometheus.

    python -m bench.scale.exporter --port 9400 --checkpoints checkpoints.json

``checkpoints.json`` is a list of ``{"model": ..., "checkpoint": ..., "accuracy": ...}``. Each checkpoint gets
``model_feedback_total`` growing at ``--rate`` labelled requests per second from the exporter's start, and
``model_correct_total`` = floor(accuracy x feedback), both whole counters, as a model server's would be. The
series are a pure function of time, so a restart of the exporter is a counter reset Prometheus handles.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HELP = (
    "# HELP model_feedback_total Labelled requests per checkpoint.\n# TYPE model_feedback_total counter\n"
    "# HELP model_correct_total Correct answers per checkpoint.\n# TYPE model_correct_total counter\n"
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(checkpoints: list[dict[str, Any]], elapsed: float, rate: float) -> bytes:
    """The exposition text at ``elapsed`` seconds after the start."""
    feedback = math.floor(rate * max(0.0, elapsed))
    lines = [HELP]
    for c in checkpoints:
        labels = f'model="{_escape(c["model"])}",checkpoint="{_escape(c["checkpoint"])}"'
        correct = math.floor(float(c["accuracy"]) * feedback)
        lines.append(f"model_feedback_total{{{labels}}} {feedback}\nmodel_correct_total{{{labels}}} {correct}\n")
    return "".join(lines).encode()


def serve(port: int, checkpoints: list[dict[str, Any]], rate: float) -> ThreadingHTTPServer:
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(checkpoints, time.monotonic() - started, rate)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape each second is noise

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=5.0, help="labelled requests per second per checkpoint")
    args = parser.parse_args(argv)
    server = serve(args.port, json.loads(args.checkpoints.read_text()), args.rate)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
