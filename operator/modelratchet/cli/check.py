"""``modelratchet check``: the offline gate for CI pipelines (no cluster needed).

Exit codes: 0 passed or warning, 1 failed (or warning with --fail-on-warning; inconclusive counts as
failed), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelratchet.gates.observation import Observation

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="judge a metrics file against a ModelBaseline manifest (offline, for CI)",
        description="Judge a metrics file against a ModelBaseline manifest, offline. "
        "Exit 0 passed or warning, 1 failed, 2 bad input.",
    )
    parser.add_argument(
        "--baseline", required=True, metavar="MODELBASELINE.yaml", help="manifest holding a ModelBaseline"
    )
    parser.add_argument(
        "--metrics", required=True, metavar="METRICS.json", help='JSON object of metric name to number ("-": stdin)'
    )
    parser.add_argument(
        "--baseline-metrics",
        metavar="BASELINE.json",
        help='values for "baseline: live" metrics (e.g. the previous run); also overrides static baselines',
    )
    parser.add_argument("--format", choices=["text", "json", "markdown"], default="text", help="output format")
    parser.add_argument("--fail-on-warning", action="store_true", help="exit 1 on a warning verdict too")
    parser.add_argument(
        "--on-missing",
        choices=["fail", "ignore"],
        default=None,
        help="a metric without a value: fail (inconclusive fails its severity) or ignore; default: the manifest's",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .inputs import STDIN, BadInput, label, load_baseline, load_json_object, metric_values

    try:
        paths = [p for p in (args.baseline, args.metrics, args.baseline_metrics) if p is not None]
        if paths.count(STDIN) > 1:
            raise BadInput(["only one input can be read from stdin (-)"])
        problems: list[str] = []
        manifest = None
        try:
            manifest = load_baseline(args.baseline)
        except BadInput as e:
            problems += e.problems
        files: dict[str, dict[str, Any]] = {}
        for path in (args.metrics, args.baseline_metrics):
            if path is None:
                continue
            try:
                files[path] = load_json_object(path)
            except BadInput as e:
                problems += e.problems
        if problems or manifest is None:
            raise BadInput(problems)
        spec = manifest.spec
        candidate, found = metric_values(files[args.metrics], spec, label(args.metrics))
        problems += found
        baseline: dict[str, float | Observation | None] = {}
        if args.baseline_metrics is not None:
            baseline, found = metric_values(
                files[args.baseline_metrics], spec, label(args.baseline_metrics), baseline=True
            )
            problems += found
        if problems:
            raise BadInput(problems)
    except BadInput as e:
        for problem in e.problems:
            print(f"modelratchet check: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT

    from modelratchet.gates import evaluate
    from modelratchet.gates.report import render_markdown, render_text

    result = evaluate(spec, dict(candidate), dict(baseline), on_missing=args.on_missing)
    checked = {m.name for m in spec.metrics}
    ignored = [name for name in files[args.metrics] if name not in checked]
    if args.format == "json":
        import json

        print(json.dumps(result.to_json(), indent=2))
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(result, ignored))
    else:
        sys.stdout.write(render_text(result, ignored))

    if result.status == "failed" or (result.status == "warning" and args.fail_on_warning):
        return EXIT_FAILED
    return EXIT_OK
