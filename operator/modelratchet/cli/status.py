"""``modelratchet status [NAME]``: one rollout in detail, or a table of the namespace's rollouts."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelratchet.api.rollout import ModelRollout

    from .kubeapi import Cluster
    from .render_status import Traffic


def register(subparsers: Any) -> None:
    from .kubeapi import EXIT_CODES, add_cluster_args

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show a rollout (or all rollouts of a namespace): phase, step, weight, checkpoints, verdict",
        description="Show one ModelRollout in detail (phase, step and its progress, weight, stable and canary "
        "checkpoints, last verdict, conditions), or a table of all ModelRollouts of the namespace.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="the ModelRollout (default: all in the namespace)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="list the rollouts of every namespace")
    add_cluster_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .kubeapi import guarded

    return guarded("status", lambda: _run(args))


def observe_traffic(cluster: Cluster, ro: ModelRollout) -> Traffic | None:
    """Ready pods of the target and of the candidate's canary, while a setWeight step waits for them."""
    from modelratchet.kube.deployments import canary_name, canary_state

    from .kubeapi import CliError, read_deployment
    from .render_status import Traffic, running, status_of

    s = status_of(ro)
    steps = ro.spec.steps
    if not running(ro) or s.current_step is None or s.current_step >= len(steps):
        return None
    if steps[s.current_step].set_weight is None:
        return None
    namespace = str(ro.metadata["namespace"])
    target = ro.spec.target_ref.name
    try:
        target_dep = read_deployment(cluster, namespace, target)
        canary_dep = read_deployment(cluster, namespace, canary_name(target))
    except CliError:
        return None  # e.g. no RBAC for Deployments: the view does without the pod counts
    if target_dep is None:
        return None
    canary = canary_state(canary_dep) if canary_dep else None
    ready = canary.ready_replicas if canary and canary.checkpoint == s.canary_checkpoint else 0
    return Traffic(
        target_ready=int((target_dep.get("status") or {}).get("readyReplicas") or 0),
        target_replicas=int((target_dep.get("spec") or {}).get("replicas", 1)),
        canary_ready=ready,
    )


def _run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from .kubeapi import EXIT_ENV, CliError, connect, get_rollout, list_rollouts, parse_rollout
    from .render_status import render_detail, render_table

    if args.name and args.all_namespaces:
        raise CliError("NAME cannot be combined with --all-namespaces", EXIT_ENV)
    cluster = connect(args.kubeconfig, args.context)
    namespace = args.namespace or cluster.namespace
    now = datetime.now(UTC)
    if args.name:
        ro = parse_rollout(get_rollout(cluster, namespace, args.name))
        sys.stdout.write(render_detail(ro, now, observe_traffic(cluster, ro)))
        return 0
    objs = list_rollouts(cluster, None if args.all_namespaces else namespace)
    if not objs:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No modelrollouts found in {where}.", file=sys.stderr)
        return 0
    sys.stdout.write(render_table([parse_rollout(o) for o in objs], now, all_namespaces=args.all_namespaces))
    return 0
