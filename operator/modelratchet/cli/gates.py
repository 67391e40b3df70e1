"""``modelratchet promote|abort|retry|resume-training NAME``: manual gates, written to status.gate.

The request goes through the status subresource, never the spec: the spec is what git holds (Argo CD would
revert an edit there, or report drift). The operator applies a request once and clears status.gate.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelratchet.api.rollout import GateRequest, ModelRollout

    from .kubeapi import Cluster

ACTIONS = {
    "promote": (
        "skip the current step of a rollout (a manual pause, an analysis, a blocked warning)",
        "Skip the current step of a rollout in progress: pass a manual pause, end an analysis early, accept a "
        "warning that blocks. After the last step the candidate is promoted.",
    ),
    "abort": (
        "roll the candidate back now (or revert it during the post-promotion watch)",
        "Roll the candidate back now; during the post-promotion watch, write the previous good checkpoint back. "
        "The checkpoint is rejected until retried.",
    ),
    "retry": (
        "allow a rejected checkpoint to be rolled out again (skips the cooldown)",
        "Remove a checkpoint from status.rejectedCheckpoints so that it is rolled out again, without waiting "
        "for the cooldown. Default checkpoint: spec.checkpoint.",
    ),
    "resume-training": (
        "resume the training workloads suspended after a rollback (spec.onRollback.suspend)",
        "Unsuspend the training workloads the operator suspended when it rolled a checkpoint back; workloads "
        "that were already suspended before stay suspended.",
    ),
}
# The CLI verb and the gate action it writes, where they differ.
GATE_ACTIONS = {"resume-training": "resumeTraining"}
CONFLICT_RETRIES = 5
POLL_SECONDS = 1.0
# Events the operator records when it applies (or ignores) a gate, and the transitions that follow at once.
_GATE_EVENTS = {
    "PromoteRequested",
    "RetryRequested",
    "GateIgnored",
    "StepReached",
    "Promoted",
    "RolledBack",
    "Reverted",
    "RolloutStarted",
    "Paused",
    "TrainingResumeRequested",
}


def register(subparsers: Any) -> None:
    from .kubeapi import EXIT_CODES, add_cluster_args

    for action, (short, long) in ACTIONS.items():
        parser: argparse.ArgumentParser = subparsers.add_parser(
            action, help=short, description=long + " The request is written to status.gate.", epilog=EXIT_CODES
        )
        parser.add_argument("name", metavar="NAME", help="the ModelRollout")
        if action == "retry":
            parser.add_argument("--checkpoint", metavar="CP", help="the rejected checkpoint (default: spec.checkpoint)")
        parser.add_argument(
            "--reason", metavar="TEXT", help="why; stored with the request (an abort's rollback message names it)"
        )
        parser.add_argument("--wait", action="store_true", help="wait until the operator has applied the request")
        parser.add_argument(
            "--timeout", type=float, default=60.0, metavar="S", help="seconds --wait waits (default: 60)"
        )
        parser.add_argument("--force", action="store_true", help="replace a request that is still pending")
        add_cluster_args(parser)
        parser.set_defaults(func=run, gate_action=GATE_ACTIONS.get(action, action))


def run(args: argparse.Namespace) -> int:
    from .kubeapi import guarded

    return guarded(args.gate_action, lambda: _run(args))


def plan(
    ro: ModelRollout,
    action: str,
    *,
    user: str,
    now: datetime,
    checkpoint: str | None = None,
    reason: str | None = None,
    force: bool = False,
) -> GateRequest:
    """The request to write; raises CliError (exit 1) when the operator could not act on it."""
    from modelratchet.api.rollout import GateRequest

    from .kubeapi import EXIT_NO, CliError
    from .render_status import desired_checkpoint, rfc3339, running, status_of, watching

    s = status_of(ro)
    name = ro.metadata.get("name")
    pending = s.gate
    if pending is not None and not force:
        who = f" by {pending.requested_by}" if pending.requested_by else ""
        at = f" at {pending.requested_at}" if pending.requested_at else ""
        article = "an" if pending.action[0] in "aeiou" else "a"
        raise CliError(
            f'{article} {pending.action} requested{who}{at} is still pending on modelrollout "{name}": '
            "the operator has not applied it yet (is it running?); --force replaces it",
            EXIT_NO,
        )
    serving = f"phase {s.phase or 'not reconciled yet'}, serving {s.stable_checkpoint or 'nothing yet'}"
    if action == "promote":
        if not running(ro):
            raise CliError(f'nothing to promote: modelrollout "{name}" has no rollout in progress ({serving})', EXIT_NO)
        if s.current_step is not None and s.current_step >= len(ro.spec.steps):
            raise CliError(f"{s.canary_checkpoint} is already being promoted", EXIT_NO)
        target = s.canary_checkpoint
    elif action == "abort":
        if running(ro):
            target = s.canary_checkpoint
        elif watching(ro):
            target = s.stable_checkpoint  # reverting a promoted checkpoint during its watch
        else:
            raise CliError(
                f'nothing to abort: modelrollout "{name}" has no rollout in progress and no post-promotion watch '
                f"({serving})",
                EXIT_NO,
            )
    elif action == "resumeTraining":
        training = s.training
        if training is None or training.state != "Suspended":
            raise CliError(f'nothing to resume: modelrollout "{name}" has no training suspended ({serving})', EXIT_NO)
        target = training.checkpoint
    else:
        target = checkpoint or desired_checkpoint(ro)
        rejected = s.rejected_checkpoints or []
        if target not in rejected:
            listed = ", ".join(rejected) if rejected else "none"
            raise CliError(
                f'{target} is not rejected on modelrollout "{name}", so there is nothing to retry (rejected: {listed})',
                EXIT_NO,
            )
    return GateRequest.model_validate(
        {"action": action, "checkpoint": target, "requestedAt": rfc3339(now), "requestedBy": user, "reason": reason}
    )


def gate_body(gate: GateRequest, resource_version: str | None) -> dict[str, Any]:
    """The merge patch: every gate key is sent (null clears a field left over from a replaced request), and the
    resourceVersion makes the write conditional on the state the request was checked against."""
    fields = gate.model_dump(by_alias=True, mode="json")
    body: dict[str, Any] = {"status": {"gate": fields}}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return body


def _describe(gate: GateRequest, name: str, namespace: str) -> str:
    text = f'{gate.action} of {gate.checkpoint} requested on modelrollout "{name}" in namespace "{namespace}"'
    text += f" by {gate.requested_by} at {gate.requested_at}"
    return text + (f": {gate.reason}" if gate.reason else "")


def _write(cluster: Cluster, args: argparse.Namespace, namespace: str) -> GateRequest:
    from .kubeapi import EXIT_NO, CliError, Conflict, get_rollout, parse_rollout, patch_rollout_status, whoami

    user = whoami(cluster)
    for _ in range(CONFLICT_RETRIES):
        obj = get_rollout(cluster, namespace, args.name)
        gate = plan(
            parse_rollout(obj),
            args.gate_action,
            user=user,
            now=datetime.now(UTC),
            checkpoint=getattr(args, "checkpoint", None),
            reason=args.reason,
            force=args.force,
        )
        try:
            patch_rollout_status(cluster, namespace, args.name, gate_body(gate, obj["metadata"].get("resourceVersion")))
        except Conflict:
            continue  # the operator wrote status meanwhile: check the request against the new state
        return gate
    raise CliError(f'modelrollout "{args.name}" keeps changing; try again', EXIT_NO)


def _run(args: argparse.Namespace) -> int:
    from .kubeapi import connect

    cluster = connect(args.kubeconfig, args.context)
    namespace = args.namespace or cluster.namespace
    gate = _write(cluster, args, namespace)
    print(_describe(gate, args.name, namespace))
    if not args.wait:
        print(f"the operator applies it at its next reconcile; `modelratchet status {args.name}` shows the result")
        return 0
    return _wait(cluster, args, namespace, gate)


def _same(a: GateRequest, b: GateRequest) -> bool:
    return (a.action, a.checkpoint, a.requested_at, a.requested_by) == (
        b.action,
        b.checkpoint,
        b.requested_at,
        b.requested_by,
    )


def _wait(cluster: Cluster, args: argparse.Namespace, namespace: str, gate: GateRequest) -> int:
    from .kubeapi import EXIT_NO, EXIT_TIMEOUT, CliError, event_time, get_rollout, list_events, parse_rollout
    from .render_status import parse_time, status_of

    deadline = time.monotonic() + max(args.timeout, 0.0)
    while True:
        obj = get_rollout(cluster, namespace, args.name)
        ro = parse_rollout(obj)
        s = status_of(ro)
        if s.gate is None or not _same(s.gate, gate):
            break
        if time.monotonic() >= deadline:
            raise CliError(
                f"the operator did not apply the request within {args.timeout:g}s (is it running?); "
                "it stays pending in status.gate",
                EXIT_TIMEOUT,
            )
        time.sleep(POLL_SECONDS)
    if s.gate is not None:
        print(f"replaced by another request: {s.gate.action} by {s.gate.requested_by or 'someone else'}")
        return EXIT_NO
    ignored = False
    since = parse_time(gate.requested_at)
    try:
        events = list_events(cluster, namespace, args.name, obj["metadata"].get("uid"))
    except CliError:
        events = []  # Events are a courtesy here; the phase below is the answer
    for ev in events:
        when = parse_time(event_time(ev))
        if ev.get("reason") in _GATE_EVENTS and since is not None and when is not None and when >= since:
            print(f"operator: {ev['reason']}: {ev.get('message', '')}")
            ignored = ignored or ev["reason"] == "GateIgnored"
    print(f"phase: {s.phase or '-'}" + (f" ({s.message})" if s.message else ""))
    return EXIT_NO if ignored else 0
