"""``modelratchet dashboard``: serve a local web UI of the ModelRollouts the user can see."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_PORT = 8484


def register(subparsers: Any) -> None:
    from .kubeapi import EXIT_CODES, add_cluster_args

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dashboard",
        help="serve a web UI of rollouts: live overview, steps, metric charts, verdicts; promote/abort/retry",
        description="Serve a web UI on 127.0.0.1: an overview of every ModelRollout you can see (updated live "
        "from a watch) and a page per rollout with its steps, a chart per metric of candidate, baseline and "
        "threshold per analysis, the judges' confidence intervals, verdicts, conditions, Events and its "
        "ModelBaseline. Promote, abort and retry write the same status.gate requests as the CLI, as you; they are "
        "hidden with --read-only, the default where you may not patch modelrollouts/status.",
        epilog=EXIT_CODES,
    )
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)"
    )
    parser.add_argument("--read-only", action="store_true", help="no actions, whatever your RBAC allows")
    parser.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="show every namespace (default: the namespace of -n or the context)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name the browser may use (e.g. an auth proxy's); loopback names are always allowed",
    )
    add_cluster_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .kubeapi import guarded

    return guarded("dashboard", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from modelratchet.dashboard.server import Dashboard, Settings, is_loopback, serve

    from .kubeapi import CliError, connect

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: must be 0 to 65535")
    cluster = connect(args.kubeconfig, args.context)
    namespace = None if args.all_namespaces else (args.namespace or cluster.namespace)
    settings = Settings(
        address=args.address,
        port=args.port,
        read_only=args.read_only,
        namespace=namespace,
        context=f"{args.context or 'current context'} · {cluster.server} · {namespace or 'all namespaces'}",
        allowed_hosts={h.lower() for h in args.allowed_host},
    )
    if not is_loopback(args.address):
        print(
            f"warning: listening on {args.address}: anyone who reaches it sees what your credentials see",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        mode = "read-only" if args.read_only else "actions where your RBAC allows them"
        print(f"ModelRatchet dashboard on {url} ({mode}); Ctrl-C stops it", flush=True)

    try:
        asyncio.run(serve(Dashboard(cluster, settings), ready))
    except OSError as e:
        raise CliError(f"cannot listen on {args.address}:{args.port}: {e.strerror or e}") from None
    return 0
