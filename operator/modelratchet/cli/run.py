"""``modelratchet run``: the operator itself."""

from __future__ import annotations

import argparse
from typing import Any


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


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

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
