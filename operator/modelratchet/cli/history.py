"""``modelratchet history NAME``: the validation history a rollout keeps in status.history."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def register(subparsers: Any) -> None:
    from .kubeapi import EXIT_CODES, add_cluster_args

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history",
        help="show a rollout's analyses: verdicts and every metric against its baseline",
        description="Show the validation history of a ModelRollout, newest first: time, analysis id, "
        "checkpoint, step, verdict and, per metric, value vs baseline and outcome.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("name", metavar="NAME", help="the ModelRollout")
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table", help="output format")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N", help="only the newest N analyses")
    add_cluster_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .kubeapi import guarded

    return guarded("history", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from .kubeapi import connect, get_rollout, parse_rollout
    from .render_history import render_json, render_markdown, render_table

    cluster = connect(args.kubeconfig, args.context)
    namespace = args.namespace or cluster.namespace
    ro = parse_rollout(get_rollout(cluster, namespace, args.name))
    entries = list((ro.status.history if ro.status else None) or [])[: args.limit]
    steps = len(ro.spec.steps)
    if args.format == "json":
        sys.stdout.write(render_json(entries))
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(entries, steps, title=f"Analyses of ModelRollout `{namespace}/{args.name}`"))
    else:
        sys.stdout.write(render_table(entries, steps))
    return 0
