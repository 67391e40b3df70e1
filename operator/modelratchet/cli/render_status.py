"""The ``modelratchet status`` views, and the formatting the other cluster views share.

Pure: takes ModelRollout models (and what was seen of the canary's pods) plus the current time, returns text.
Steps are numbered from 1 here (``step 2/5`` is the second of five), while ``status.currentStep`` and
``history[].step`` are 0-based indexes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from modelratchet.api.common import parse_duration
from modelratchet.api.rollout import ModelRollout, ModelRolloutStatus, Step
from modelratchet.rollout.replicas import canary_replicas, effective_weight

BAR_WIDTH = 20
RUNNING = ("Progressing", "Paused")

# ------------------------------------------------------------------------------------------- shared helpers

# Status text is written by the operator from what users and Prometheus said: a checkpoint name or a query error
# could carry escape sequences that retitle, clear or rewrite the reader's terminal. Whole sequences go first
# (so no "[2J" or "0;title" is left behind), then every remaining control character.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI, e.g. ESC [ 2 J
    r"|\x9b[0-?]*[ -/]*[@-~]"  # CSI, 8-bit
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC, DCS, SOS, PM, APC up to BEL or ST
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # the same, 8-bit
    r"|\x1b[ -/]*[0-~]"  # any other escape sequence
)
# C0 but newline and tab, DEL, C1, and the bidirectional overrides that reorder what a terminal shows.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (newline and tab stay)."""
    return _CONTROL_CHARACTERS.sub("", _ESCAPE_SEQUENCES.sub("", text))


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None for a missing or unreadable one."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float) -> str:
    """Two units at most, like kubectl's ages: ``45s``, ``2m15s``, ``1h5m``, ``3d4h``."""
    s = max(0, math.floor(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def age(text: str | None, now: datetime) -> str:
    t = parse_time(text)
    return "-" if t is None else human_duration((now - t).total_seconds())


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """``[#####---------------]``: the filled share rounds down, so a bar is full only when done."""
    f = min(max(fraction, 0.0), 1.0)
    filled = math.floor(f * width + 1e-9)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell; the last column is left ragged."""
    all_rows = [list(headers), *([sanitize(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers) - 1)]
    lines = []
    for r in all_rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)]
        lines.append((indent + "   ".join([*cells, r[-1]])).rstrip())
    return "\n".join(lines) + "\n"


def describe_step(step: Step) -> str:
    return step.describe()


def step_label(steps: Sequence[Step], index: int | None) -> str:
    """``3/5 setWeight 50``; past the last step the rollout is promoting."""
    if index is None:
        return "-"
    if index >= len(steps):
        return f"{len(steps)}/{len(steps)} done, promoting"
    return f"{index + 1}/{len(steps)} {describe_step(steps[index])}"


def status_of(ro: ModelRollout) -> ModelRolloutStatus:
    return ro.status or ModelRolloutStatus()


def running(ro: ModelRollout) -> bool:
    s = status_of(ro)
    return s.phase in RUNNING and s.canary_checkpoint is not None


def watching(ro: ModelRollout) -> bool:
    """Promoted and still judged by the post-promotion watch."""
    s = status_of(ro)
    return s.phase == "Promoted" and bool(s.post_promotion_until)


# ------------------------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class Traffic:
    """Ready pods seen behind the target's Service: the target's and the candidate's canary pods."""

    target_ready: int
    target_replicas: int
    canary_ready: int


@dataclass(frozen=True)
class Progress:
    fraction: float | None  # None: nothing to measure (a manual gate)
    label: str

    def render(self, width: int = BAR_WIDTH) -> str:
        if self.fraction is None:
            return self.label
        percent = math.floor(min(max(self.fraction, 0.0), 1.0) * 100 + 1e-9)
        return f"{bar(self.fraction, width)} {percent:>3}%  {self.label}"


def _timed(started: datetime | None, seconds: float, now: datetime, verb: str) -> Progress:
    elapsed = 0.0 if started is None else max((now - started).total_seconds(), 0.0)
    fraction = 1.0 if seconds <= 0 else elapsed / seconds
    return Progress(min(fraction, 1.0), f"{verb} {human_duration(elapsed)} of {human_duration(seconds)}")


def progress(ro: ModelRollout, now: datetime, traffic: Traffic | None = None) -> Progress | None:
    """How far the current step (or the post-promotion watch) has come."""
    s = status_of(ro)
    if watching(ro):
        start, end = parse_time(s.promoted_at), parse_time(s.post_promotion_until)
        if start is None or end is None:
            return None
        p = _timed(start, (end - start).total_seconds(), now, "post-promotion watch")
        return Progress(p.fraction, f"{p.label}, until {rfc3339(end)}")
    if not running(ro) or s.current_step is None:
        return None
    steps = ro.spec.steps
    if s.current_step >= len(steps):
        return Progress(None, "promoting: waiting for the target to become Available")
    step = steps[s.current_step]
    started = parse_time(s.step_started_at)
    if step.analyze is not None:
        p = _timed(started, parse_duration(step.analyze.duration), now, "analyzed")
        return Progress(p.fraction, f"{p.label} ({s.analysis_count or 0} analyses)")
    if step.pause is not None:
        if step.pause.duration is None:
            return Progress(None, "waiting for promote")
        return _timed(started, parse_duration(step.pause.duration), now, "paused")
    assert step.set_weight is not None
    weight = step.set_weight
    if traffic is None:
        return Progress(None, f"setting weight {weight}%: waiting for canary pods")
    wanted = canary_replicas(weight, traffic.target_replicas)
    ready = min(traffic.canary_ready, wanted)
    share = effective_weight(traffic.canary_ready, traffic.target_ready)
    fraction = 1.0 if wanted == 0 else ready / wanted
    return Progress(fraction, f"{ready}/{wanted} canary pods ready, {share}% of ready pods (weight {weight}%)")


# ------------------------------------------------------------------------------------------------ outcome

Outcome = Literal["promoted", "serving", "rolledBack", "failed"]


def outcome(ro: ModelRollout, *, through_post_promotion: bool = False) -> Outcome | None:
    """Whether the rollout toward spec.checkpoint has ended, and how; None while it is still under way.

    Only a status that has seen the latest spec counts (right after spec.checkpoint changed, the old phase is
    stale). ``serving``: the desired checkpoint is the stable one without a promotion (nothing to roll out, or
    the spec went back to the stable checkpoint mid-rollout).
    """
    s = status_of(ro)
    generation = ro.metadata.get("generation")
    if s.observed_generation is None or (isinstance(generation, int) and s.observed_generation < generation):
        return None
    if s.phase == "Failed":
        return "failed"
    desired = desired_checkpoint(ro)
    if desired in (s.rejected_checkpoints or []):
        return "rolledBack"
    if s.phase in RUNNING or desired != s.stable_checkpoint:
        return None  # under way, cooling down, or not started yet
    if through_post_promotion and watching(ro):
        return None
    return "promoted" if s.phase == "Promoted" else "serving"


def desired_checkpoint(ro: ModelRollout) -> str | None:
    """spec.checkpoint, or with spec.source the checkpoint its registry alias named when last resolved."""
    if ro.spec.checkpoint is not None:
        return ro.spec.checkpoint
    registry = status_of(ro).registry
    return registry.candidate.checkpoint if registry and registry.candidate else None


def registry_lines(ro: ModelRollout) -> list[tuple[str, str]]:
    """With spec.source: the registry version, its aliases and the verdict writes still pending."""
    if ro.spec.source is None:
        return []
    source = ro.spec.source.mlflow
    registry = status_of(ro).registry
    candidate = registry.candidate if registry else None
    if candidate is None:
        return [("Registry", f"MLflow {source.model}@{source.alias}, not resolved yet")]
    aliases = ", ".join(candidate.aliases or []) or "-"
    out = [
        ("Registry", f"MLflow {candidate.model}@{candidate.alias} = version {candidate.version} (aliases: {aliases})")
    ]
    pending = [w for w in (registry.writes if registry else None) or [] if w.written_at is None]
    if pending:
        errors = [w.last_error for w in pending if w.last_error]
        more = f"; last error: {errors[0]}" if errors else ""
        out.append(
            (
                "Registry writes",
                f"{len(pending)} pending ({', '.join(w.verdict + ' v' + w.version for w in pending)}){more}",
            )
        )
    return out


def training_lines(ro: ModelRollout) -> list[tuple[str, str]]:
    """Training workloads suspended after a rollback, and their state."""
    t = status_of(ro).training
    if t is None:
        return []
    names = ", ".join(f"{w.kind}/{w.name} ({w.state})" for w in t.workloads) or "-"
    verb = "suspended" if t.state == "Suspended" else "resuming"
    return [("Training", f"{verb} after rolling back {t.checkpoint}: {names}")]


# ------------------------------------------------------------------------------------------------ views


def _verdict(ro: ModelRollout, now: datetime) -> str:
    s = status_of(ro)
    if s.last_verdict is None:
        return "-"
    latest = s.history[0] if s.history else None
    if latest is None:
        return s.last_verdict
    return f"{s.last_verdict} (analysis #{latest.id} of {latest.checkpoint}, {age(latest.time, now)} ago)"


def _gate(ro: ModelRollout, now: datetime) -> str | None:
    g = status_of(ro).gate
    if g is None:
        return None
    text = g.action + (f" of {g.checkpoint}" if g.checkpoint else "")
    if g.requested_by:
        text += f" requested by {g.requested_by}"
    if g.requested_at:
        text += f" {age(g.requested_at, now)} ago"
    if g.reason:
        text += f" ({g.reason})"
    return text + ", pending"


def _steps(ro: ModelRollout) -> str:
    """The plan, with the steps behind the rollout marked done and the current one pointed at."""
    s = status_of(ro)
    current = s.current_step if running(ro) else None
    steps = ro.spec.steps
    labels = [describe_step(step) for step in steps]
    width = max(len(label) for label in labels)
    lines = []
    for i, label in enumerate(labels):
        mark = "" if current is None else "done" if i < current else "current" if i == current else ""
        pointer = ">" if i == current else " "
        lines.append(f"  {pointer} {i + 1}/{len(steps)}  {label.ljust(width)}  {mark}".rstrip())
    return "\n".join(lines) + "\n"


def _conditions(ro: ModelRollout, now: datetime) -> str:
    conditions = status_of(ro).conditions or []
    if not conditions:
        return "  (none)\n"
    rows = [[c.type, c.status, c.reason, age(c.last_transition_time, now), c.message] for c in conditions]
    return table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows, indent="  ")


def render_detail(ro: ModelRollout, now: datetime, traffic: Traffic | None = None) -> str:
    """One rollout in detail, as ``modelratchet status NAME`` prints it."""
    s = status_of(ro)
    spec = ro.spec
    fields: list[tuple[str, str]] = [
        ("Name", str(ro.metadata.get("name", "-"))),
        ("Namespace", str(ro.metadata.get("namespace", "-"))),
        ("Target", f"Deployment {spec.target_ref.name}, judged by ModelBaseline {spec.baseline_ref.name}"),
        ("Phase", s.phase or "(not reconciled yet)"),
    ]
    if running(ro):
        fields.append(("Step", step_label(spec.steps, s.current_step)))
    p = progress(ro, now, traffic)
    if p is not None:
        fields.append(("Progress", p.render()))
    fields += [
        ("Weight", "-" if s.canary_weight is None else f"{s.canary_weight}%"),
        ("Stable", s.stable_checkpoint or "-"),
        ("Canary", s.canary_checkpoint or "-"),
        ("Desired", desired_checkpoint(ro) or "-"),
        ("Last verdict", _verdict(ro, now)),
        ("Message", s.message or "-"),
    ]
    fields += registry_lines(ro) + training_lines(ro)
    gate = _gate(ro, now)
    if gate:
        fields.append(("Gate", gate))
    if s.rejected_checkpoints:
        fields.append(("Rejected", ", ".join(s.rejected_checkpoints)))
    width = max(len(k) for k, _ in fields) + 2
    out = "".join(f"{(k + ':').ljust(width)}{v}\n" for k, v in fields)
    out += "Steps:\n" + _steps(ro)
    out += "Conditions:\n" + _conditions(ro, now)
    return sanitize(out)


def _short_progress(ro: ModelRollout, now: datetime) -> str:
    p = progress(ro, now)
    if p is None:
        return "-"
    if p.fraction is None:
        return p.label
    return f"{bar(p.fraction, 10)} {math.floor(min(p.fraction, 1.0) * 100 + 1e-9)}%"


def render_table(rollouts: Sequence[ModelRollout], now: datetime, *, all_namespaces: bool = False) -> str:
    """All rollouts of a namespace (or of every namespace), one row each."""
    headers = ["NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "VERDICT", "PROGRESS", "MESSAGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for ro in rollouts:
        s = status_of(ro)
        row = [
            str(ro.metadata.get("name", "-")),
            s.phase or "-",
            step_label(ro.spec.steps, s.current_step) if running(ro) else "-",
            "-" if s.canary_weight is None else f"{s.canary_weight}%",
            s.stable_checkpoint or "-",
            s.canary_checkpoint or "-",
            s.last_verdict or "-",
            _short_progress(ro, now),
            s.message or "-",
        ]
        if all_namespaces:
            row.insert(0, str(ro.metadata.get("namespace", "-")))
        rows.append(row)
    return sanitize(table(headers, rows))
