"""What a notification says: one snapshot of a transition, rendered for generic webhooks and for Slack."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from modelratchet.api.rollout import Notification
from modelratchet.rollout.types import NotificationKind, Notify

ALL_KINDS: frozenset[str] = frozenset(get_args(NotificationKind))
# Analyses happen every interval; announcing each one is opt-in.
DEFAULT_KINDS: frozenset[str] = ALL_KINDS - {"analysis"}

MARKERS: dict[str, str] = {
    "started": "[started]",
    "stepReached": "[step reached]",
    "paused": "[paused]",
    "promoted": "[promoted]",
    "rolledBack": "[rolled back]",
    "reverted": "[reverted]",
    "analysis": "[analysis]",
}

_COLORS: dict[str, str] = {
    "promoted": "good",
    "rolledBack": "danger",
    "reverted": "danger",
    "paused": "warning",
}
_VERDICT_COLORS: dict[str, str] = {"passed": "good", "warning": "warning", "failed": "danger"}
_NEUTRAL_COLOR = "#439FE0"
_SLACK_MESSAGE_LIMIT = 1000


def wants(target: Notification, kind: str) -> bool:
    """Whether a target asked to hear about this kind of transition."""
    return kind in (DEFAULT_KINDS if target.events is None else target.events)


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Message:
    """One transition of one rollout, frozen when it was submitted."""

    id: str  # unique per notification: receivers can drop duplicates of a retried delivery
    kind: str
    rollout: str
    namespace: str
    uid: str | None
    checkpoint: str | None
    stable_checkpoint: str | None
    phase: str | None
    step: int | None  # status.currentStep: the index of the step, from 0
    steps: int | None  # how many steps the rollout has
    weight: int | None
    verdict: str | None
    message: str
    time: datetime


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def message_from(
    rollout: dict[str, Any], event: Notify, context: dict[str, Any], now: datetime | None = None
) -> Message:
    meta = rollout.get("metadata") or {}
    steps = (rollout.get("spec") or {}).get("steps")
    return Message(
        id=uuid.uuid4().hex,
        kind=event.kind,
        rollout=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=_str(meta.get("uid")),
        checkpoint=event.checkpoint,
        stable_checkpoint=_str(context.get("stable")),
        phase=_str(context.get("phase")),
        step=_int(context.get("step")),
        steps=len(steps) if isinstance(steps, list) else None,
        weight=_int(context.get("weight")),
        verdict=_str(context.get("verdict")),
        message=event.message,
        time=now or datetime.now(UTC),
    )


def webhook_payload(m: Message) -> dict[str, Any]:
    """The generic JSON body; absent values are null so receivers see a fixed set of keys."""
    return {
        "kind": m.kind,
        "rollout": m.rollout,
        "namespace": m.namespace,
        "checkpoint": m.checkpoint,
        "stableCheckpoint": m.stable_checkpoint,
        "phase": m.phase,
        "step": m.step,
        "weight": m.weight,
        "verdict": m.verdict,
        "message": m.message,
        "time": rfc3339(m.time),
        "uid": m.uid,
        "id": m.id,
    }


def _escape(text: str) -> str:
    # Slack's mrkdwn gives these three characters meaning; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _step_label(m: Message) -> str | None:
    if m.step is None:
        return None
    if m.steps is None:
        return str(m.step + 1)
    if m.step >= m.steps:
        return f"{m.steps}/{m.steps} done"
    return f"{m.step + 1}/{m.steps}"


def slack_text(m: Message) -> str:
    """The one-line summary Slack shows in notifications and clients without attachments."""
    text = f"{MARKERS.get(m.kind, '[' + m.kind + ']')} {m.namespace}/{m.rollout}: {m.message}"
    return _escape(_one_line(text, _SLACK_MESSAGE_LIMIT))


def slack_payload(m: Message) -> dict[str, Any]:
    """An incoming-webhook body: text plus one attachment with fields.

    Attachments rather than blocks: Mattermost, Rocket.Chat and Discord's Slack-compatible endpoints render
    attachments too, and Slack still accepts them.
    """
    fields: list[tuple[str, str | None]] = [
        ("Checkpoint", m.checkpoint),
        ("Stable", m.stable_checkpoint),
        ("Phase", m.phase),
        ("Step", _step_label(m)),
        ("Canary weight", f"{m.weight}%" if m.weight is not None else None),
        ("Verdict", m.verdict),
    ]
    color = _VERDICT_COLORS.get(m.verdict or "", _NEUTRAL_COLOR) if m.kind == "analysis" else _COLORS.get(m.kind)
    text = slack_text(m)
    return {
        "text": text,
        "attachments": [
            {
                "fallback": text,
                "color": color or _NEUTRAL_COLOR,
                "fields": [
                    {"title": title, "value": _escape(_one_line(value, 300)), "short": True}
                    for title, value in fields
                    if value
                ],
                "footer": f"modelratchet · {m.namespace}/{m.rollout}",
                "ts": int(m.time.timestamp()),
            }
        ],
    }
