"""The submit benchmark's smoke run: it runs and reports every figure (their values are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_reports_submit_latency_while_the_receiver_hangs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.notify_submit", "--submits", "50", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # Every delivery (two targets per submit) was still queued when the last submit returned.
    assert result["submits"] == 50 and result["pending_while_hanging"] == 100
    assert 0 < result["median_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
