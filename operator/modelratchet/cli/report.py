"""``modelratchet report NAME``: a Markdown report of one rollout for a pull request or an incident."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .render_report import TimelineEvent


def register(subparsers: Any) -> None:
    from .kubeapi import EXIT_CODES, add_cluster_args

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write a Markdown report of a rollout (summary, timeline, metrics over time)",
        description="Write a Markdown report of a ModelRollout: summary, timeline of Events and conditions, "
        "steps, every analysis with its verdict, and per metric its value against baseline and threshold "
        "over time (with the estimate, confidence interval and samples of statistical judges).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("name", metavar="NAME", help="the ModelRollout")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--all-checkpoints",
        action="store_true",
        help="cover every analysis kept in the history, not only those of the latest candidate",
    )
    add_cluster_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .kubeapi import guarded

    return guarded("report", lambda: _run(args))


def timeline_events(raw: list[dict[str, Any]]) -> list[TimelineEvent]:
    """core/v1 Events as timeline lines (times normalized to RFC 3339 seconds)."""
    from .kubeapi import event_time
    from .render_report import TimelineEvent
    from .render_status import parse_time, rfc3339

    out = []
    for ev in raw:
        text = event_time(ev)
        when = parse_time(text)
        count = ev.get("count") or (ev.get("series") or {}).get("count") or 1
        out.append(
            TimelineEvent(
                time=rfc3339(when) if when else str(text or "-"),
                source=str(ev.get("type") or "Normal"),
                reason=str(ev.get("reason") or "-"),
                message=str(ev.get("message") or ""),
                count=int(count),
            )
        )
    return out


def _baseline_yaml(cluster: Any, namespace: str, name: str) -> str:
    """The ModelBaseline's definition as the dashboard shows it, or why it is missing."""
    from modelratchet.dashboard.kube import baseline_definition, get_baseline

    from .kubeapi import CliError

    try:
        obj = get_baseline(cluster, namespace, name)
    except CliError as e:
        return f"# cannot read ModelBaseline {name}: {e.message}\n"
    return baseline_definition(obj) if obj is not None else f"# ModelBaseline {name} not found\n"


def _run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from .kubeapi import CliError, connect, get_rollout, list_events, parse_rollout
    from .render_report import render_report

    cluster = connect(args.kubeconfig, args.context)
    namespace = args.namespace or cluster.namespace
    obj = get_rollout(cluster, namespace, args.name)
    ro = parse_rollout(obj)
    note = "Kubernetes keeps Events for a limited time (1h by default); older transitions show as conditions only."
    try:
        events = timeline_events(list_events(cluster, namespace, args.name, obj["metadata"].get("uid")))
    except CliError as e:
        events, note = [], f"Events could not be read ({e.message}); the timeline shows conditions only."
    baseline_yaml = _baseline_yaml(cluster, namespace, ro.spec.baseline_ref.name)
    text = render_report(
        ro, events, datetime.now(UTC), all_checkpoints=args.all_checkpoints, events_note=note,
        baseline_yaml=baseline_yaml,
    )
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise CliError(f"cannot write {args.output}: {e.strerror or e}") from None
        print(f"wrote the report of modelrollout {namespace}/{args.name} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
