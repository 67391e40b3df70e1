"""A small simulated world for driving the pure rollout state machine tick by tick.

The simulation plays the shell: it asks ``analysis_due``, hands back a scripted ``AnalysisReport``, calls
``reconcile``, stores the status the way the API server would (a JSON round trip), and only then applies what
``plan`` derives from the stored status to an in-memory target / canary Deployment pair. Pods become ready on
the next tick unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelratchet.api.baseline import Verdict
from modelratchet.api.common import Condition
from modelratchet.api.rollout import GateRequest, MetricResult, ModelRolloutSpec, ModelRolloutStatus
from modelratchet.rollout import (
    Action,
    AnalysisReport,
    AnalysisRequest,
    CanaryState,
    Decision,
    DeleteCanary,
    EmitEvent,
    EnsureCanary,
    Notify,
    RouteObservation,
    RouteState,
    SetRoute,
    SetTargetCheckpoint,
    TargetState,
    World,
    analysis_due,
    plan,
    reconcile,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_spec(steps: list[dict[str, Any]] | None = None, *, checkpoint: str = "v2", **extra: Any) -> ModelRolloutSpec:
    body: dict[str, Any] = {
        "targetRef": {"name": "serving"},
        "checkpoint": checkpoint,
        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
        "baselineRef": {"name": "model"},
        "steps": steps if steps is not None else [{"setWeight": 25}, {"analyze": {"duration": "1m"}}],
        **extra,
    }
    return ModelRolloutSpec.model_validate(body)


def metric(name: str = "accuracy", value: float = 0.93, baseline: float | None = 0.92) -> MetricResult:
    return MetricResult(metric=name, value=value, baseline=baseline, outcome="passed", severity="critical")


def report(
    verdict: Verdict = "passed",
    summary: str | None = None,
    *,
    pending: bool = False,
    decided: bool = False,
    problems: Iterable[str] = (),
    metrics: list[MetricResult] | None = None,
) -> AnalysisReport:
    return AnalysisReport(
        verdict=verdict,
        metrics=metrics if metrics is not None else [metric()],
        summary=summary if summary is not None else f"verdict {verdict}",
        pending=pending,
        decided=decided,
        problems=list(problems),
    )


def roundtrip(status: ModelRolloutStatus) -> ModelRolloutStatus:
    """What the API server stores and hands back (camelCase JSON, None fields dropped)."""
    return ModelRolloutStatus.model_validate(status.model_dump(by_alias=True, exclude_none=True, mode="json"))


def cond(status: ModelRolloutStatus | None, type_: str) -> Condition:
    found = [c for c in (status.conditions if status else None) or [] if c.type == type_]
    assert len(found) == 1, f"expected exactly one {type_} condition, got {found}"
    return found[0]


def events(actions: Iterable[object]) -> list[str]:
    return [a.reason for a in actions if isinstance(a, EmitEvent)]


def notifications(actions: Iterable[object]) -> list[str]:
    return [a.kind for a in actions if isinstance(a, Notify)]


def world_actions(actions: Iterable[object]) -> list[Action]:
    """The actions that change Deployments (not events or notifications)."""
    return [a for a in actions if isinstance(a, EnsureCanary | DeleteCanary | SetTargetCheckpoint | SetRoute)]


@dataclass
class Tick:
    now: datetime
    request: AnalysisRequest | None
    report: AnalysisReport | None
    world: World
    decision: Decision
    planned: list[Action] = field(default_factory=list)  # derived from the stored status, then applied

    @property
    def status(self) -> ModelRolloutStatus:
        return self.decision.status

    @property
    def actions(self) -> list[object]:
        return [*self.decision.actions, *self.planned]


Analyst = Callable[[AnalysisRequest], AnalysisReport]


@dataclass
class Sim:
    """The in-memory world plus the shell's loop."""

    spec: ModelRolloutSpec
    status: ModelRolloutStatus | None = None
    now: datetime = T0
    generation: int = 1
    # The target Deployment.
    target_exists: bool = True
    target_checkpoint: str | None = "v1"
    target_replicas: int = 4
    target_error: str | None = None
    target_unready_ticks: int = 0  # after a checkpoint change: ticks that still see it unavailable
    # The canary Deployment: (checkpoint, replicas), None when absent.
    canary: tuple[str, int] | None = None
    canary_unready_ticks: int = 0  # after a change: ticks that still see its pods unready
    canary_ready_override: int | None = None  # pin the ready pod count (e.g. pods that never start)
    baseline_error: str | None = None
    baseline_reason: str = "BaselineNotFound"
    # Analysis: scripted reports first, then the default.
    script: list[AnalysisReport] = field(default_factory=list)
    default_report: AnalysisReport | None = None
    analyst: Analyst | None = None
    # Delays configured per change.
    canary_delay: int = 0
    target_delay: int = 0
    # The router (spec.trafficRouting.gatewayAPI): what the route says, and ticks until it is accepted.
    route: RouteState | None = None
    route_unaccepted_ticks: int = 0
    route_delay: int = 0
    ticks: list[Tick] = field(default_factory=list)
    applied: list[Action] = field(default_factory=list)

    # -------------------------------------------------------------------------------------- observation

    def observe(self, analysis: AnalysisReport | None = None) -> World:
        """The world as the shell would see it now (does not consume unready ticks)."""
        target = None
        if self.target_exists:
            unready = self.target_unready_ticks > 0
            target = TargetState(
                checkpoint=self.target_checkpoint,
                replicas=self.target_replicas,
                ready_replicas=0 if unready else self.target_replicas,
                available=not unready,
                error=self.target_error,
            )
        canary = None
        if self.canary is not None:
            cp, n = self.canary
            ready = 0 if self.canary_unready_ticks > 0 else n
            if self.canary_ready_override is not None:
                ready = min(ready, self.canary_ready_override)
            canary = CanaryState(checkpoint=cp, replicas=n, ready_replicas=ready)
        route = None
        if self.spec.routed:
            state = self.route or RouteState(0)
            route = RouteObservation(state, accepted=self.route_unaccepted_ticks == 0)
        return World(
            target=target,
            canary=canary,
            baseline_error=self.baseline_error,
            baseline_reason=self.baseline_reason,
            analysis=analysis,
            route=route,
        )

    def current_status(self) -> ModelRolloutStatus:
        return self.status if self.status is not None else ModelRolloutStatus()

    def _report_for(self, request: AnalysisRequest) -> AnalysisReport:
        if self.script:
            return self.script.pop(0)
        if self.analyst is not None:
            return self.analyst(request)
        return self.default_report or report("passed")

    # -------------------------------------------------------------------------------------- one tick

    def decide(self, analysis: AnalysisReport | None = None) -> Decision:
        """Call reconcile on the current state without applying anything (for replay / idempotency checks)."""
        return reconcile(self.spec, self.status, generation=self.generation, world=self.observe(analysis), now=self.now)

    def tick(self, dt: float = 0.0, *, write: bool = True, apply: bool = True) -> Tick:
        """Advance the clock by dt, observe, analyze if due, reconcile, store the status, then act on it.

        ``write=False`` is a status write that was lost (a 409, a crash): nothing is acted on then.
        ``apply=False`` is a crash after the write and before acting."""
        self.now += timedelta(seconds=dt)
        request = analysis_due(self.spec, self.current_status(), self.now)
        rep = self._report_for(request) if request is not None else None
        world = self.observe(rep)
        decision = reconcile(self.spec, self.status, generation=self.generation, world=world, now=self.now)
        tick = Tick(self.now, request, rep, world, decision)
        self.ticks.append(tick)
        # Time passes for pods: one tick of unreadiness is used up by this observation.
        self.target_unready_ticks = max(0, self.target_unready_ticks - 1)
        self.canary_unready_ticks = max(0, self.canary_unready_ticks - 1)
        self.route_unaccepted_ticks = max(0, self.route_unaccepted_ticks - 1)
        if not write:
            return tick
        self.status = roundtrip(decision.status)
        tick.planned = plan(self.spec, self.status, world)
        if apply:
            for action in tick.planned:
                self.apply(action)
        return tick

    def apply(self, action: Action) -> None:
        self.applied.append(action)
        if isinstance(action, EnsureCanary):
            if self.canary != (action.checkpoint, action.replicas):
                self.canary = (action.checkpoint, action.replicas)
                self.canary_unready_ticks = self.canary_delay
        elif isinstance(action, DeleteCanary):
            self.canary = None
            self.canary_unready_ticks = 0
        elif isinstance(action, SetRoute):
            if self.route != action.state:
                self.route = action.state
                self.route_unaccepted_ticks = self.route_delay
        elif (
            isinstance(action, SetTargetCheckpoint)
            and self.target_exists
            and self.target_checkpoint != action.checkpoint
        ):
            self.target_checkpoint = action.checkpoint
            self.target_unready_ticks = self.target_delay

    # -------------------------------------------------------------------------------------- driving

    def start(self) -> Tick:
        """Tick at the current time, then a second later: the first step's canary is ready by then."""
        self.tick()
        return self.tick(1)

    def run(self, n: int, dt: float = 1.0) -> list[Tick]:
        return [self.tick(dt) for _ in range(n)]

    def follow(self, n: int) -> list[Tick]:
        """Tick n times, each after the previous decision's requeue_after (as the operator would)."""
        out = []
        for _ in range(n):
            dt = self.ticks[-1].decision.requeue_after if self.ticks else 0.0
            out.append(self.tick(dt))
        return out

    def run_until(self, pred: Callable[[Sim], bool], dt: float = 1.0, limit: int = 2000) -> Tick:
        for _ in range(limit):
            t = self.tick(dt)
            if pred(self):
                return t
        raise AssertionError(f"condition not reached in {limit} ticks; status: {self.status}")

    def gate(self, action: str, checkpoint: str | None = None, **kw: Any) -> None:
        """What `modelratchet promote|abort|retry` writes through the status subresource."""
        status = self.current_status().model_copy(deep=True)
        status.gate = GateRequest.model_validate({"action": action, "checkpoint": checkpoint, **kw})
        self.status = roundtrip(status)

    def set_spec(self, **changes: Any) -> None:
        """Edit the spec the way kubectl would: new generation."""
        body = self.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        body.update(changes)
        self.spec = ModelRolloutSpec.model_validate(body)
        self.generation += 1

    # -------------------------------------------------------------------------------------- shortcuts

    @property
    def phase(self) -> str | None:
        return self.status.phase if self.status else None

    @property
    def history_ids(self) -> list[int]:
        return [h.id for h in (self.status.history if self.status else None) or []]

    def all_events(self) -> list[str]:
        return [r for t in self.ticks for r in events(t.actions)]

    def all_notifications(self) -> list[str]:
        return [k for t in self.ticks for k in notifications(t.actions)]
