"""``modelratchet run``: the operator itself."""

from __future__ import annotations

import argparse
import ctypes
import os
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 4


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the operator",
        description="Run the ModelRatchet operator against the current kubeconfig context or in-cluster "
        "config. Settings come from MODELRATCHET_* environment variables (see docs/operator.md).",
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch only this namespace (repeatable; default: MODELRATCHET_NAMESPACES or all)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--liveness", default=None, help="serve a liveness probe, e.g. http://0.0.0.0:8081/healthz")
    parser.set_defaults(func=run)


def limit_malloc_arenas() -> bool:
    """At most MALLOC_ARENAS glibc malloc arenas, unless MALLOC_ARENA_MAX says otherwise; whether it was set.

    glibc gives threads that allocate at once arenas of their own, up to 8 per core, and each keeps memory its
    thread freed long ago: with 16 reconcile and 8 query threads that was about 50 MiB of the operator's peak at
    1,000 rollouts (268 MiB unlimited, 215 with 4 arenas; 2 arenas made the analyses late: docs/benchmarks.md).
    Called before any thread starts; a no-op without glibc."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS))


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    limit_malloc_arenas()
    import kopf

    from modelratchet import handlers  # noqa: F401  (registers the handlers)
    from modelratchet.settings import OperatorSettings

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kubernetes.client.rest", "urllib3", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    namespaces = args.namespace or OperatorSettings.from_env().namespaces
    asyncio.run(
        kopf.operator(
            standalone=True,  # replicas coordinate through a Lease, not Kopf peering priorities
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            liveness_endpoint=args.liveness,
        )
    )
    return 0
