"""``modelratchet watch NAME``: follow a rollout until it ends; exit 0 promoted, 1 rolled back or failed.

On a terminal the view is redrawn in place every interval (so time-based progress moves); otherwise a new block
is printed whenever the rollout changes, which keeps CI logs short.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

CLEAR = "\x1b[H\x1b[2J"
# A cluster blip must not end a long watch; an outage longer than this does.
UNREACHABLE_GRACE = 60.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    from .kubeapi import EXIT_CODES, add_cluster_args

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "watch",
        help="follow a rollout until it ends (exit 0 promoted, 1 rolled back or failed)",
        description="Follow a ModelRollout until the rollout toward spec.checkpoint ends: promoted (exit 0), "
        "rolled back or failed (exit 1). A rollout that has not started yet (the operator has not seen the new "
        "spec, or a cooldown runs) is waited for.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("name", metavar="NAME", help="the ModelRollout")
    parser.add_argument("--interval", type=_seconds, default=2.0, metavar="S", help="seconds between looks (2)")
    parser.add_argument("--timeout", type=_seconds, default=0.0, metavar="S", help="give up after S seconds (0: never)")
    parser.add_argument(
        "--post-promotion",
        action="store_true",
        help="after promotion, keep watching until the post-promotion watch passes (or reverts)",
    )
    add_cluster_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .kubeapi import guarded

    return guarded("watch", lambda: _run(args))


def _final(name: str, result: str, ro: Any) -> str:
    from .render_status import sanitize, status_of

    s = status_of(ro)
    text = {
        "promoted": f"promoted {s.stable_checkpoint}",
        "serving": f"serving {s.stable_checkpoint} as desired, nothing to roll out",
        # The operator's message already says what was rolled back or reverted, and why.
        "rolledBack": s.message or f"{ro.spec.checkpoint} was rolled back",
        "failed": f"failed: {s.message or 'see the conditions'}",
    }[result]
    return sanitize(f'modelrollout "{name}": {text}')


def _run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from .kubeapi import EXIT_NO, EXIT_TIMEOUT, CliError, connect, get_rollout, parse_rollout
    from .render_status import outcome, render_detail, rfc3339
    from .status import observe_traffic

    cluster = connect(args.kubeconfig, args.context)
    namespace = args.namespace or cluster.namespace
    tty = sys.stdout.isatty()
    started = time.monotonic()
    unreachable_since: float | None = None
    last_seen: str | None = None
    last_phase: str | None = None
    while True:
        try:
            obj = get_rollout(cluster, namespace, args.name)
            unreachable_since = None
        except CliError as e:
            if not e.message.startswith("cannot reach the cluster"):
                raise
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_GRACE:
                raise
            obj = None
        if obj is not None:
            ro = parse_rollout(obj)
            now = datetime.now(UTC)
            seen = json.dumps([obj.get("spec"), obj.get("status")], sort_keys=True)
            if tty:
                sys.stdout.write(CLEAR + render_detail(ro, now, observe_traffic(cluster, ro)))
                sys.stdout.write(f"\nwatching every {args.interval:g}s; Ctrl-C to stop\n")
            elif seen != last_seen:
                sys.stdout.write(f"--- {rfc3339(now)} ---\n" + render_detail(ro, now, observe_traffic(cluster, ro)))
            sys.stdout.flush()
            last_seen = seen
            last_phase = ro.status.phase if ro.status else None
            result = outcome(ro, through_post_promotion=args.post_promotion)
            if result is not None:
                print(_final(args.name, result, ro))
                return 0 if result in ("promoted", "serving") else EXIT_NO
        if args.timeout and time.monotonic() - started >= args.timeout:
            phase = f" (phase {last_phase})" if last_phase else ""
            raise CliError(f'modelrollout "{args.name}" has not finished after {args.timeout:g}s{phase}', EXIT_TIMEOUT)
        time.sleep(max(args.interval, 0.1))
