"""ModelRollout: move a serving Deployment from its checkpoint to a candidate in canary steps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .baseline import PROMETHEUS_ADDRESS_MAX_LENGTH, PROMETHEUS_ADDRESS_PATTERN, Verdict
from .common import (
    AnalysisDuration,
    AnalysisInterval,
    ApiModel,
    Condition,
    LocalObjectReference,
    LongDuration,
    SecretKeySelector,
    Severity,
    StatusModel,
    cel,
)

Phase = Literal["Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Failed"]
GateAction = Literal["promote", "abort", "retry", "resumeTraining"]
Outcome = Literal["passed", "failed", "inconclusive"]
Classification = Literal["improved", "neutral", "regressed"]


class CheckpointFrom(ApiModel):
    """Where the checkpoint lives in the target's pod template."""

    container: str = Field(min_length=1, max_length=63, description="Container name.")
    env: str | None = Field(default=None, min_length=1, max_length=253, description="Environment variable.")
    image: bool | None = Field(default=None, description="The checkpoint is the container image.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "has(self.env) != (has(self.image) && self.image)",
                    "set exactly one of env or image: true",
                )
            ]
        }
    }

    @model_validator(mode="after")
    def _one(self) -> CheckpointFrom:
        if (self.env is not None) == bool(self.image):
            raise ValueError("set exactly one of env or image: true")
        return self


class AnalyzeStep(ApiModel):
    """Judge the candidate against the baseline for a while."""

    duration: AnalysisDuration = Field(description="How long to analyze, e.g. 5m (1s to 168h).")


class PauseStep(ApiModel):
    """Hold the rollout: for a duration, or until promoted by hand when no duration is set."""

    duration: LongDuration | None = Field(
        default=None, description="Omit for a manual gate (promote / abort); at most 720h."
    )


class HeaderMatch(ApiModel):
    """One HTTP header a request must carry to be routed to the candidate."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$", description="Header.")
    value: str = Field(min_length=1, max_length=4096, description="Value to match.")
    type: Literal["Exact", "RegularExpression"] = Field(default="Exact", description="How value is matched.")


class HeaderRouteStep(ApiModel):
    """Send requests that match every header to the candidate (A/B tests, dog-fooding); no match removes it."""

    match: list[HeaderMatch] = Field(
        default_factory=list, max_length=16, description="Headers that must all match; empty removes the route."
    )


class MirrorStep(ApiModel):
    """Shadow traffic: copy this share of live requests to the candidate; its answers are discarded."""

    percent: int = Field(ge=0, le=100, description="Share of requests copied to the candidate; 0 stops mirroring.")


STEP_KINDS = ("setWeight", "analyze", "pause", "setHeaderRoute", "setMirror")


class Step(ApiModel):
    """One step of a rollout; exactly one action."""

    set_weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Percentage of traffic for the candidate (of ready pods with trafficRouting replicas).",
    )
    analyze: AnalyzeStep | None = Field(default=None, description="Judge the candidate for a duration.")
    pause: PauseStep | None = Field(default=None, description="Hold, for a duration or until promoted.")
    set_header_route: HeaderRouteStep | None = Field(
        default=None, description="Route requests with matching headers to the candidate (needs a router)."
    )
    set_mirror: MirrorStep | None = Field(
        default=None, description="Copy a share of requests to the candidate, answers discarded (needs a router)."
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    " + ".join(f"(has(self.{k}) ? 1 : 0)" for k in STEP_KINDS) + " == 1",
                    "each step needs exactly one of " + ", ".join(STEP_KINDS),
                )
            ]
        }
    }

    def describe(self) -> str:
        """The step in words, as messages and the CLI show it."""
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.analyze is not None:
            return f"analyze for {self.analyze.duration}"
        if self.set_header_route is not None:
            if not self.set_header_route.match:
                return "remove the header route"
            return "route " + " and ".join(f"{m.name}: {m.value}" for m in self.set_header_route.match)
        if self.set_mirror is not None:
            return f"mirror {self.set_mirror.percent}%" if self.set_mirror.percent else "stop mirroring"
        if self.pause is not None and self.pause.duration:
            return f"pause for {self.pause.duration}"
        return "pause until promoted"

    @property
    def shifts_traffic(self) -> bool:
        """The step changes what the candidate receives: it ends once the candidate serves that share."""
        return self.set_weight is not None or self.set_header_route is not None or self.set_mirror is not None

    @model_validator(mode="after")
    def _one(self) -> Step:
        actions = (self.set_weight, self.analyze, self.pause, self.set_header_route, self.set_mirror)
        if sum(x is not None for x in actions) != 1:
            raise ValueError("each step needs exactly one of " + ", ".join(STEP_KINDS))
        return self


class Analysis(ApiModel):
    """How often to judge and what to tolerate."""

    interval: AnalysisInterval = Field(default="30s", description="Time between analyses (1s to 1h).")
    failure_limit: int = Field(default=0, ge=0, le=100, description="Failed analyses tolerated before rolling back.")
    inconclusive_limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Consecutive inconclusive analyses (no data, unreachable) tolerated; a conclusive one resets it.",
    )
    on_inconclusive: Literal["rollback", "hold", "proceed"] = Field(
        default="rollback",
        description="Past inconclusiveLimit: rollback (fail closed), hold (wait until data returns) or "
        "proceed (fail open, recorded as a warning).",
    )
    warning_policy: Literal["proceed", "block"] = Field(
        default="proceed", description="A warning verdict proceeds (recorded, notified) or blocks the step."
    )
    escalate_after: int | None = Field(
        default=None, ge=1, le=100, description="This many consecutive warning verdicts count as failed."
    )


class PostPromotion(ApiModel):
    """Keep judging after promotion."""

    watch: LongDuration | None = Field(
        default=None,
        description="Judge the promoted checkpoint for this long (at most 720h); a failed analysis reverts the "
        "target to the previous good checkpoint.",
    )


class WebhookTarget(ApiModel):
    """A URL read from a Secret."""

    secret_ref: SecretKeySelector = Field(description="Secret key holding the URL.")


class Notification(ApiModel):
    """Where to announce rollout transitions."""

    webhook: WebhookTarget | None = Field(default=None, description="Generic JSON webhook.")
    slack: WebhookTarget | None = Field(default=None, description="Slack-compatible incoming webhook.")
    events: (
        list[Literal["started", "stepReached", "paused", "promoted", "rolledBack", "reverted", "analysis"]] | None
    ) = Field(default=None, description="Transitions to announce; default all but analysis.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("has(self.webhook) != has(self.slack)", "set exactly one of webhook or slack")
            ]
        }
    }


class GatewayAPIRouting(ApiModel):
    """Weights, header routes and mirrors on a Gateway API HTTPRoute in the rollout's namespace."""

    http_route: str = Field(min_length=1, max_length=253, description="The HTTPRoute that serves the model.")
    rule: str | None = Field(
        default=None,
        max_length=253,
        description="The rule to manage: its index (0-based) or its name; default: the rule whose backendRefs "
        "include stableService.",
    )
    stable_service: str = Field(
        min_length=1,
        max_length=63,
        description="The Service of the stable pods only (its selector must not match the canary's pods, which "
        "carry modelratchet.io/role: canary).",
    )
    canary_service: str | None = Field(
        default=None,
        max_length=63,
        description="The Service the operator creates for the candidate's pods; default <target>-canary.",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Service port; default: the stable backendRef's port."
    )
    mirror: Literal["requestMirror", "traefikService"] = Field(
        default="requestMirror",
        description="How setMirror is done: the standard RequestMirror filter, or a Traefik TraefikService with "
        "mirroring (Traefik's Gateway API provider has no RequestMirror).",
    )


# MLflow's own limits: registered model names and aliases are at most 256 / 255 characters; tag keys 250.
MLFLOW_ALIAS_PATTERN = r"^[A-Za-z0-9_-]+$"
MLFLOW_TAG_KEY_PATTERN = r"^[A-Za-z0-9_.\-/ ]+$"


class MlflowSource(ApiModel):
    """An MLflow registered model whose alias names the candidate: moving the alias starts a rollout."""

    model: str = Field(min_length=1, max_length=256, description="Registered model name.")
    alias: str = Field(
        default="challenger",
        min_length=1,
        max_length=255,
        pattern=MLFLOW_ALIAS_PATTERN,
        description="Alias whose model version is the candidate; its storage location becomes the checkpoint.",
    )
    tracking_uri: str | None = Field(
        default=None,
        alias="trackingURI",
        max_length=PROMETHEUS_ADDRESS_MAX_LENGTH,
        pattern=PROMETHEUS_ADDRESS_PATTERN,
        description="MLflow tracking server base URL; default: the operator's (MODELRATCHET_MLFLOW_TRACKING_URI). "
        "Only addresses the operator's settings allow are used.",
    )
    secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="Secret key holding a bearer token for the tracking server (its author must be allowed to "
        "get the Secret).",
    )


class CheckpointSource(ApiModel):
    """Where the candidate checkpoint comes from instead of a literal spec.checkpoint."""

    mlflow: MlflowSource = Field(description="An MLflow model registry alias.")


class RegistryWriteBack(ApiModel):
    """What the operator writes back into the registry once a candidate is judged."""

    promoted_alias: str = Field(
        default="champion",
        min_length=1,
        max_length=255,
        pattern=MLFLOW_ALIAS_PATTERN,
        description="Alias moved to a promoted version (and back to the serving version after a revert).",
    )
    rejected_tag: str = Field(
        default="modelratchet.rejected",
        min_length=1,
        max_length=250,
        pattern=MLFLOW_TAG_KEY_PATTERN,
        description="Tag set to \"true\" on a version that was rolled back or reverted.",
    )
    enabled: bool = Field(default=True, description="false: only read the alias, write nothing back.")


# A workload kind's resource is its lower-cased kind plus "s" (CronJob: cronjobs); the admission policy checks the
# author's right to patch exactly that resource, and the operator patches nothing else.
WORKLOAD_API_VERSION_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/v[0-9]+((alpha|beta)[0-9]+)?$"


class WorkloadReference(ApiModel):
    """A training workload in the rollout's namespace that has a boolean suspend field."""

    api_version: str = Field(
        alias="apiVersion",
        max_length=316,
        pattern=WORKLOAD_API_VERSION_PATTERN,
        description="group/version, e.g. batch/v1, jobset.x-k8s.io/v1alpha2, kubeflow.org/v1 (no core group).",
    )
    kind: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="Kind, e.g. CronJob, Job, JobSet, PyTorchJob; its resource is the lower-cased kind + s. "
        "kubeflow.org kinds are suspended by spec.runPolicy.suspend, all others by spec.suspend.",
    )
    name: str = Field(min_length=1, max_length=253, description="Name, in the rollout's namespace.")

    def describe(self) -> str:
        return f"{self.kind}/{self.name}"


class OnRollback(ApiModel):
    """What else happens when a candidate is rolled back (or reverted after promotion)."""

    suspend: list[WorkloadReference] = Field(
        default_factory=list,
        max_length=20,
        description="Training workloads to suspend, so nothing retrains on the rejected model.",
    )
    resume_on: Literal["promotion", "manual"] = Field(
        default="manual",
        description="manual: only `modelratchet resume-training` resumes them; promotion: also the promotion of "
        "a later checkpoint.",
    )


class ReplicasRouting(ApiModel):
    """The candidate's share of traffic is its share of the ready pods behind the target's Service."""


class TrafficRouting(ApiModel):
    """How traffic reaches the candidate: the share of pods (default) or a router with exact weights."""

    replicas: ReplicasRouting | None = Field(
        default=None,
        description="{}: the candidate's share is its share of ready pods behind the target's Service (default).",
    )
    gateway_api: GatewayAPIRouting | None = Field(
        default=None, alias="gatewayAPI", description="A Gateway API HTTPRoute."
    )
    canary_replicas: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="With a router: pods of the candidate, whatever its traffic share (default: its share of the "
        "target's replicas, at least 1).",
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!(has(self.replicas) && has(self.gatewayAPI))", "set at most one of replicas or gatewayAPI"),
                cel(
                    "!has(self.canaryReplicas) || has(self.gatewayAPI)",
                    "canaryReplicas needs a router (gatewayAPI): with replicas the share is the pod count",
                ),
            ]
        }
    }

    @property
    def router(self) -> bool:
        return self.gateway_api is not None


class ModelRolloutSpec(ApiModel):
    """The desired checkpoint of a serving Deployment and how to get there."""

    target_ref: LocalObjectReference = Field(description="The apps/v1 Deployment serving the model.")
    checkpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Desired checkpoint; changing it starts a rollout. Set this or source.",
    )
    source: CheckpointSource | None = Field(
        default=None, description="Take the desired checkpoint from a model registry instead (set this or checkpoint)."
    )
    registry: RegistryWriteBack | None = Field(
        default=None, description="With source: what is written back into the registry (default: champion alias)."
    )
    on_rollback: OnRollback | None = Field(default=None, description="What else a rollback does: suspend training.")
    checkpoint_from: CheckpointFrom = Field(description="Where the checkpoint lives in the pod template.")
    baseline_ref: LocalObjectReference = Field(description="The ModelBaseline that judges the candidate.")
    steps: list[Step] = Field(min_length=1, max_length=50, description="Canary steps, in order.")
    traffic_routing: TrafficRouting | None = Field(
        default=None, description="How traffic reaches the candidate; default: replicas (share of pods)."
    )
    analysis: Analysis = Field(default_factory=Analysis, description="Analysis cadence and tolerances.")
    post_promotion: PostPromotion | None = Field(default=None, description="Judging after promotion.")
    cooldown: LongDuration | None = Field(
        default=None,
        description="After a rollback, wait this long before starting another rollout (at most 720h).",
    )
    progress_deadline: LongDuration = Field(
        default="10m",
        description="How long a traffic step may wait for the candidate to serve its share (its canary pods ready, "
        "the route accepted) before the rollout rolls back and rejects the checkpoint, as Flagger does; 0s waits "
        "forever (at most 720h).",
    )
    history_limit: int = Field(default=50, ge=1, le=500, description="Entries kept in status.history.")
    notifications: list[Notification] | None = Field(
        default=None, max_length=10, description="Webhooks told about transitions."
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!self.steps.exists(s, has(s.setHeaderRoute) || has(s.setMirror)) || "
                    "(has(self.trafficRouting) && has(self.trafficRouting.gatewayAPI))",
                    "setHeaderRoute and setMirror steps need a router: set trafficRouting.gatewayAPI",
                    field_path=".steps",
                ),
                cel("has(self.checkpoint) != has(self.source)", "set exactly one of checkpoint or source"),
                cel("!has(self.registry) || has(self.source)", "registry needs source: it writes to the source"),
            ]
        }
    }

    @property
    def routed(self) -> bool:
        """Traffic goes through a router (exact weights) rather than the share of pods."""
        return self.traffic_routing is not None and self.traffic_routing.router

    @model_validator(mode="after")
    def _router_steps(self) -> ModelRolloutSpec:
        if (self.checkpoint is None) == (self.source is None):
            raise ValueError("set exactly one of checkpoint or source")
        if self.registry is not None and self.source is None:
            raise ValueError("registry needs source: it writes to the source")
        if not self.routed and any(s.set_header_route is not None or s.set_mirror is not None for s in self.steps):
            raise ValueError("setHeaderRoute and setMirror steps need a router: set trafficRouting.gatewayAPI")
        return self


class ThresholdSummary(StatusModel):
    """The threshold a check applied, in words and numbers."""

    type: str = Field(description="min, max, delta or ratio.")
    value: float | None = Field(default=None, description="The bound crossed or applied.")
    symmetric: bool | None = Field(default=None, description="Two-sided delta.")


class JudgeFigures(StatusModel):
    """What a statistical judge saw."""

    judge: str = Field(description="threshold, sequential, histogram or mannWhitney.")
    estimate: float | None = Field(
        default=None, description="Estimated effect (histogram: relative worsening of a typical request)."
    )
    ci_low: float | None = Field(default=None, description="Lower confidence bound.")
    ci_high: float | None = Field(default=None, description="Upper confidence bound.")
    samples: int | None = Field(default=None, description="Samples seen.")
    expected_more: int | None = Field(default=None, description="Samples it expects to still need.")
    information_fraction: float | None = Field(
        default=None,
        description="histogram: information so far over that expected at the rollout's last planned look; "
        "the share of the false-rollback budget it may have spent.",
    )


class RecordedEvidence(StatusModel):
    """The counts behind a baseline arm's value, kept so a later judge can weigh it (after promotion)."""

    successes: float | None = Field(default=None, description="sequential: successes of the stable checkpoint.")
    total: float | None = Field(default=None, description="sequential: trials of the stable checkpoint.")
    bounds: list[float] | None = Field(
        default=None, max_length=64, description="histogram: the finite bucket upper bounds (le), increasing."
    )
    counts: list[float] | None = Field(
        default=None,
        max_length=65,
        description="histogram: requests per bucket (not cumulative), one more than bounds: the last is +Inf.",
    )


class MetricResult(StatusModel):
    """One metric of one validation."""

    metric: str
    value: float | None = None
    baseline: float | None = None
    delta: float | None = Field(default=None, description="value - baseline.")
    classification: Classification | None = None
    outcome: Outcome
    severity: Severity
    threshold: ThresholdSummary | None = None
    message: str = ""
    judge: JudgeFigures | None = None
    baseline_evidence: RecordedEvidence | None = Field(
        default=None, description="The stable checkpoint's counts behind baseline (canary analyses)."
    )


class HistoryEntry(StatusModel):
    """One analysis of a rollout."""

    id: int = Field(description="Sequence number of the analysis within this object; never reused.")
    time: str = Field(description="When it ran (RFC 3339).")
    checkpoint: str
    step: int | None = Field(default=None, description="Step index, or absent after promotion.")
    stage: Literal["canary", "postPromotion"] = "canary"
    verdict: Verdict
    message: str = ""
    window_start: str | None = Field(
        default=None, description="Start of the window judged (the candidate serving at its share); ends at time."
    )
    metrics: list[MetricResult] = Field(default_factory=list)


class GateRequest(StatusModel):
    """A manual gate written through the status subresource (by `modelratchet promote|abort|retry`)."""

    action: GateAction
    checkpoint: str | None = Field(default=None, description="The checkpoint it applies to.")
    requested_at: str | None = Field(default=None, description="RFC 3339.")
    requested_by: str | None = None
    reason: str | None = None


class RegistryVersion(StatusModel):
    """The model version an alias named when last resolved."""

    model: str
    alias: str
    version: str
    checkpoint: str = Field(description="Its storage location: the candidate checkpoint.")
    aliases: list[str] | None = Field(default=None, max_length=20, description="Every alias on that version.")
    resolved_at: str | None = None


class KnownVersion(StatusModel):
    """Which registry version a checkpoint is (to move the promoted alias back after a revert)."""

    checkpoint: str
    version: str


class RegistryTag(StatusModel):
    key: str
    value: str


class RegistryWrite(StatusModel):
    """A verdict to write into the registry: recorded first, written (and retried) after."""

    id: int
    version: str
    verdict: Literal["promoted", "rolledBack", "reverted", "restored"] = Field(
        description="restored: the promoted alias goes back to the version serving again after a revert."
    )
    set_alias: str | None = Field(default=None, description="Alias to move to this version.")
    tags: list[RegistryTag] = Field(default_factory=list, max_length=16)
    recorded_at: str
    written_at: str | None = Field(default=None, description="Absent while the write is pending.")
    attempts: int | None = None
    last_attempt_at: str | None = Field(default=None, description="A failed write is tried again after a backoff.")
    last_error: str | None = None
    last_error_reason: str | None = Field(default=None, description="e.g. RegistryUnavailable.")


class RegistryStatus(StatusModel):
    """The registry the candidate came from, and what was (or still is to be) written back to it."""

    candidate: RegistryVersion | None = Field(default=None, description="The alias as last resolved.")
    known: list[KnownVersion] | None = Field(default=None, max_length=20)
    writes: list[RegistryWrite] | None = Field(default=None, max_length=20, description="Newest first.")
    last_write_id: int | None = None


class SuspendedWorkload(StatusModel):
    """A training workload the operator suspended (or will suspend, or failed to)."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    name: str
    state: Literal["pending", "suspended", "alreadySuspended", "failed"] = Field(
        description="pending: to be suspended; alreadySuspended: it was, so resuming leaves it suspended."
    )
    message: str | None = None


class TrainingStatus(StatusModel):
    """Training paused after a rollback, until resumed by a person (or a later promotion)."""

    state: Literal["Suspended", "Resuming"]
    checkpoint: str = Field(description="The rejected checkpoint whose rollback suspended training.")
    reason: str
    history_id: int | None = Field(default=None, description="The analysis that decided the rollback.")
    suspended_at: str
    workloads: list[SuspendedWorkload] = Field(default_factory=list, max_length=20)


class ModelRolloutStatus(StatusModel):
    """Observed state of a ModelRollout; everything the operator needs to resume."""

    phase: Phase | None = None
    observed_generation: int | None = None
    message: str | None = None
    stable_checkpoint: str | None = None
    canary_checkpoint: str | None = None
    current_step: int | None = None
    canary_weight: int | None = None
    header_route: list[HeaderMatch] | None = Field(
        default=None, description="Headers whose requests the router sends to the candidate."
    )
    mirror_percent: int | None = Field(default=None, description="Share of requests copied to the candidate.")
    serving_since: str | None = Field(
        default=None,
        description="When the candidate started serving at the current share (ready pods, route verified): "
        "analysis windows start here.",
    )
    step_started_at: str | None = None
    rollout_started_at: str | None = None
    last_analysis_at: str | None = None
    analysis_count: int | None = Field(default=None, description="Analyses in the current step.")
    looks: int | None = Field(
        default=None,
        description="Analyses since the rollout (or its post-promotion watch) began: the statistical judges "
        "spend their false-rollback budget over all of them, across steps and holds.",
    )
    failed_analyses: int | None = None
    inconclusive_analyses: int | None = None
    consecutive_warnings: int | None = None
    last_verdict: Verdict | None = None
    last_history_id: int | None = None
    first_failure_at: str | None = None
    promoted_at: str | None = None
    rolled_back_at: str | None = None
    post_promotion_until: str | None = None
    previous_checkpoint: str | None = Field(default=None, description="Stable before the last promotion.")
    last_good_checkpoints: list[str] | None = None
    rejected_checkpoints: list[str] | None = None
    gate: GateRequest | None = Field(default=None, description="Pending manual gate request.")
    registry: RegistryStatus | None = Field(default=None, description="With spec.source: the registry's side.")
    training: TrainingStatus | None = Field(default=None, description="Training suspended after a rollback.")
    conditions: list[Condition] | None = None
    history: list[HistoryEntry] | None = None


class ModelRollout(ApiModel):
    """A canary rollout of a model checkpoint."""

    api_version: Literal["modelratchet.io/v1alpha1"] = Field(default="modelratchet.io/v1alpha1", alias="apiVersion")
    kind: Literal["ModelRollout"] = "ModelRollout"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelRolloutSpec
    status: ModelRolloutStatus | None = None
