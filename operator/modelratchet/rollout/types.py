"""Plain data passed into and out of the rollout state machine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from modelratchet.api.baseline import Verdict
from modelratchet.api.rollout import MetricResult
from modelratchet.registry.core import RegistryObservation

Stage = Literal["canary", "postPromotion"]


@dataclass(frozen=True)
class TargetState:
    """What the shell saw of the target Deployment."""

    checkpoint: str | None  # the checkpoint in its pod template; None when the field is missing
    replicas: int  # spec.replicas (left alone: an HPA or GitOps may own it)
    ready_replicas: int = 0
    available: bool = False  # the rollout of its current template is complete and Available
    error: str | None = None  # e.g. container "server" not found
    error_reason: str = "CheckpointFieldNotFound"  # CamelCase reason for error

    def broken(self, error: str, reason: str) -> TargetState:
        """The same observation with a problem that stops the rollout from touching it."""
        return replace(self, error=error, error_reason=reason)


@dataclass(frozen=True)
class CanaryState:
    """What the shell saw of the `<target>-canary` Deployment."""

    checkpoint: str | None
    replicas: int
    ready_replicas: int = 0


@dataclass(frozen=True)
class AnalysisRequest:
    """The core asks the shell to measure and judge a checkpoint."""

    stage: Stage
    checkpoint: str
    stable_checkpoint: str | None
    window_seconds: float  # since the canary started receiving traffic (or since promotion)
    interval_seconds: float
    look: int  # counted over the whole rollout (or post-promotion watch): its judges spend one error budget
    max_looks: int  # planned for the whole rollout (or watch)
    final: bool = True  # the last planned look of this step (or watch): undecided judges pass
    # Data still planned in this window after this look (the step's and later steps' time until traffic shifts).
    ahead_seconds: float = 0.0
    # The window's share of the rollout's error budget, as rollout-wide information fractions (from, to): each
    # traffic step starts a new window, and the windows' shares add up to the whole budget.
    share: tuple[float, float] = (0.0, 1.0)
    # Post-promotion: live baselines come from what the stable checkpoint measured during the canary.
    recorded_baselines: dict[str, MetricResult] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisReport:
    """The judged result of one analysis, as the shell hands it back."""

    verdict: Verdict
    metrics: list[MetricResult]
    summary: str
    pending: bool = False  # a statistical judge needs more samples
    decided: bool = False  # every metric reached a final pass/fail decision
    problems: list[str] = field(default_factory=list)  # query problems, for a condition


@dataclass(frozen=True)
class RouteState:
    """What a router does for the candidate: its weight, a header route, a mirror."""

    weight: int  # percent of requests answered by the candidate
    header_route: tuple[tuple[str, str, str], ...] = ()  # (header, value, Exact|RegularExpression)
    mirror_percent: int = 0  # percent of requests copied to the candidate, answers discarded


@dataclass(frozen=True)
class RouteObservation:
    """What the shell read back from the router."""

    state: RouteState
    accepted: bool  # the router accepted this generation of the route and resolved its references
    problem: str | None = None  # why not, in words


@dataclass(frozen=True)
class World:
    """Everything observed this tick."""

    target: TargetState | None  # None: the Deployment does not exist
    canary: CanaryState | None  # None: no canary Deployment
    baseline_error: str | None = None  # e.g. ModelBaseline "x" not found / invalid / a query that does not parse
    baseline_reason: str = "BaselineNotFound"  # CamelCase reason for baseline_error
    analysis: AnalysisReport | None = None  # present when the shell ran the requested analysis
    route: RouteObservation | None = None  # with a router: the route as read back
    registry: RegistryObservation | None = None  # with spec.source: what the alias named this look

    @property
    def references_ok(self) -> bool:
        return self.target is not None and not self.target.error and not self.baseline_error


# Actions that change the world. The shell applies them after the status is stored, derived from that status
# (plan.plan); each is idempotent, so repeating one after a crash is harmless.


@dataclass(frozen=True)
class EnsureCanary:
    checkpoint: str
    replicas: int


@dataclass(frozen=True)
class DeleteCanary:
    pass


@dataclass(frozen=True)
class SetTargetCheckpoint:
    checkpoint: str


@dataclass(frozen=True)
class SetRoute:
    """Make the router give the candidate this share (and nothing else); STABLE_ONLY removes what it manages."""

    state: RouteState


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


NotificationKind = Literal["started", "stepReached", "paused", "promoted", "rolledBack", "reverted", "analysis"]


@dataclass(frozen=True)
class Notify:
    kind: NotificationKind
    message: str
    checkpoint: str | None = None


Action = EnsureCanary | DeleteCanary | SetTargetCheckpoint | SetRoute
# What the decision announces once its status is stored: sent once, never repeated.
Announcement = EmitEvent | Notify
