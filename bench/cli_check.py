"""How long ``modelratchet check`` takes, start to exit, on a ModelBaseline of many metrics.

    python -m bench.cli_check [--metrics N] [--runs N] [--json]

A figure, not a test: wall-clock numbers depend on the machine and its load, so the unit tests assert only what
keeps the command quick, that it imports no cluster or statistics code (tests/unit/test_cli_check.py); this
prints what a run costs, as CI runs it: a fresh interpreter each time, through the console script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).parent / "modelratchet"
# One of each threshold type in turn: (type, direction, threshold, baseline, candidate value, live stable value).
KINDS: list[tuple[str, str, str, str, float, float | None]] = [
    ("max", "lowerIsBetter", "{type: max, value: 0.5}", "baseline: 0.45", 0.43, None),
    ("min", "higherIsBetter", "{type: min, value: 0.8}", "baseline: 0.9", 0.91, None),
    (
        "delta",
        "higherIsBetter",
        "{type: delta, tiers: [{value: 20, severity: info}, {value: 30, severity: critical}]}",
        "baseline: live",
        1470.0,
        1485.0,
    ),
    ("ratio", "higherIsBetter", "{type: ratio, value: 0.05}", "baseline: 0.92", 0.9, None),
]


def write_inputs(directory: Path, n: int) -> list[str]:
    """A baseline of ``n`` metrics and the metrics files for it; returns the check's arguments."""
    lines, metrics, stable = [], {}, {}
    for i in range(n):
        kind, direction, threshold, baseline, value, stable_value = KINDS[i % len(KINDS)]
        name = f"m{i}_{kind}"
        lines.append(f"  - {{name: {name}, direction: {direction}, {baseline}, threshold: {threshold}}}\n")
        metrics[name] = value
        if stable_value is not None:
            stable[name] = stable_value
    manifest = directory / "baseline.yaml"
    manifest.write_text(
        "apiVersion: modelratchet.io/v1alpha1\nkind: ModelBaseline\nmetadata: {name: bench}\n"
        "spec:\n  model: bench\n  metrics:\n" + "".join(lines)
    )
    (directory / "candidate.json").write_text(json.dumps(metrics))
    (directory / "stable.json").write_text(json.dumps(stable))
    return [
        "check",
        "--baseline",
        str(manifest),
        "--metrics",
        str(directory / "candidate.json"),
        "--baseline-metrics",
        str(directory / "stable.json"),
        "--format",
        "json",
    ]


def measure(n: int, runs: int) -> dict[str, Any]:
    seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        argv = write_inputs(Path(tmp), n)
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, check=False)
            seconds.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise RuntimeError(f"check exited {done.returncode}: {done.stderr.strip()}")
            results = len(json.loads(done.stdout)["results"])
            if results != n:
                raise RuntimeError(f"check judged {results} metrics, expected {n}")
    return {
        "metrics": n,
        "runs": runs,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=48, help="metrics in the baseline (default: 48)")
    parser.add_argument("--runs", type=int, default=10, help="runs to time (default: 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.metrics < 1 or args.runs < 1:
        parser.error("--metrics and --runs must be at least 1")
    result = measure(args.metrics, args.runs)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"modelratchet check, {result['metrics']} metrics, {result['runs']} runs: "
            f"median {result['median_s']:.3f} s, min {result['min_s']:.3f} s, max {result['max_s']:.3f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
