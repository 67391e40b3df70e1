"""ModelBaseline: what "good" looks like for a model."""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from .common import (
    ApiModel,
    Condition,
    Direction,
    PrometheusConnection,
    Severity,
    StatusModel,
    cel,
)

ThresholdType = Literal["min", "max", "delta", "ratio"]
JudgeType = Literal["threshold", "sequential", "histogram", "mannWhitney"]
Verdict = Literal["passed", "warning", "failed", "inconclusive"]

# A number, or the word "live" (measure the stable checkpoint over the same window). CRD schemas have no
# number-or-string type, so the field is an untyped node that keeps any value. The API server cannot
# declare such a node to CEL (no rule may mention it: the CRD would be rejected), so its rules live in
# the validators below, which the operator and `modelratchet check` apply.
BaselineValue = Annotated[
    float | Literal["live"],
    WithJsonSchema(
        {
            "x-kubernetes-preserve-unknown-fields": True,
            "description": 'Static baseline value, or "live" to measure the stable checkpoint over the '
            "same window as the candidate.",
        }
    ),
]


# A plain base URL: scheme, an authority without user:password@, an optional path; no ?query, no #fragment.
# The operator checks the same again (and its allowlist) before it uses an address.
PROMETHEUS_ADDRESS_PATTERN = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$"
PROMETHEUS_ADDRESS_MAX_LENGTH = 2048


class BaselinePrometheusConnection(PrometheusConnection):
    """Where and how to query Prometheus; overrides the operator's defaults."""

    address: str | None = Field(
        default=None,
        max_length=PROMETHEUS_ADDRESS_MAX_LENGTH,
        pattern=PROMETHEUS_ADDRESS_PATTERN,
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090. No "
        "user:password@, query or fragment; the operator only uses addresses its settings allow.",
    )


class Tier(ApiModel):
    """One bound of a tiered threshold; crossing it fails the check with this severity."""

    value: float = Field(ge=0, description="Worsening beyond this bound fails the check.")
    severity: Severity = Field(description="Severity of a check that crosses this bound.")


class Threshold(ApiModel):
    """The rule a metric must satisfy."""

    type: ThresholdType = Field(
        description="min: value >= threshold; max: value <= threshold; delta: worsening against the "
        "baseline <= threshold; ratio: relative worsening against the baseline <= threshold."
    )
    value: float | None = Field(default=None, description="The bound. Exactly one of value or tiers.")
    tiers: list[Tier] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="Several bounds in increasing order, each with its own severity (delta and ratio "
        "only). The worst bound crossed decides the severity.",
    )
    symmetric: bool | None = Field(
        default=None,
        description="delta only: a two-sided band, abs(value - baseline) <= threshold.",
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("has(self.value) != has(self.tiers)", "exactly one of value or tiers must be set"),
                cel(
                    "!has(self.tiers) || self.type in ['delta', 'ratio']",
                    "tiers are only allowed for delta and ratio thresholds",
                ),
                cel(
                    "!has(self.symmetric) || !self.symmetric || self.type == 'delta'",
                    "symmetric is only allowed for delta thresholds",
                ),
                cel(
                    "!has(self.tiers) || (self.tiers.map(t, t.value).isSorted() && "
                    "self.tiers.all(t, self.tiers.exists_one(u, u.value == t.value)))",
                    "tiers must be in strictly increasing order of value",
                ),
                cel(
                    "!has(self.value) || self.type in ['min', 'max'] || self.value >= 0.0",
                    "delta and ratio thresholds must not be negative",
                ),
            ]
        }
    }

    @model_validator(mode="after")
    def _check(self) -> Threshold:
        if (self.value is None) == (self.tiers is None):
            raise ValueError("exactly one of value or tiers must be set")
        if self.tiers is not None:
            if self.type not in ("delta", "ratio"):
                raise ValueError("tiers are only allowed for delta and ratio thresholds")
            values = [t.value for t in self.tiers]
            if any(b <= a for a, b in itertools.pairwise(values)):
                raise ValueError("tiers must be in strictly increasing order of value")
        if self.symmetric and self.type != "delta":
            raise ValueError("symmetric is only allowed for delta thresholds")
        if self.value is not None and self.type in ("delta", "ratio") and self.value < 0:
            raise ValueError("delta and ratio thresholds must not be negative")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("threshold value must be finite")
        return self


class Judge(ApiModel):
    """How a metric is judged during live analysis."""

    type: JudgeType = Field(
        default="threshold",
        description="threshold: compare the value with the threshold at every look. sequential: an "
        "always-valid sequential test on counts (rates such as accuracy or error rate). histogram: "
        "stratified rank tests on the per-bucket counts of a Prometheus histogram (latency), with alpha "
        "spending over the rollout's looks. mannWhitney: a rank test of per-request samples given to "
        "`modelratchet check` (not live: a range query of an aggregate is not per-request samples).",
    )
    alpha: float = Field(
        default=0.01, gt=0, le=0.5, description="Tolerated false-rollback rate of the statistical judges."
    )
    beta: float = Field(
        default=0.05, gt=0, le=0.5, description="Tolerated rate of missing a regression of threshold size."
    )
    success_query: str | None = Field(
        default=None,
        max_length=4096,
        description="sequential: PromQL template for the count of successes (e.g. correct predictions) "
        "over {{ window }}.",
    )
    total_query: str | None = Field(
        default=None,
        max_length=4096,
        description="sequential: PromQL template for the count of trials (e.g. labelled predictions) "
        "over {{ window }}.",
    )
    bucket_query: str | None = Field(
        default=None,
        max_length=4096,
        description="histogram: PromQL template returning one series per le bucket with the exact number of "
        "requests of the last {{ interval }} (run as a range query, one point per interval since the rollout "
        "began), e.g. sum by (le) (clamp_min(x_bucket{...} - x_bucket{...} offset {{ interval }}, 0)). "
        "increase() and rate() extrapolate, so their non-integer counts are refused.",
    )
    min_effect: float | None = Field(
        default=None,
        ge=0,
        description="histogram and mannWhitney: relative worsening below which a difference is not a "
        "regression (default: the ratio threshold, or 5%).",
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "self.type != 'sequential' || (has(self.successQuery) && has(self.totalQuery))",
                    "a sequential judge needs successQuery and totalQuery",
                ),
                cel(
                    "self.type != 'histogram' || has(self.bucketQuery)",
                    "a histogram judge needs bucketQuery",
                ),
                cel(
                    "!has(self.bucketQuery) || self.type == 'histogram'",
                    "bucketQuery is only read by a histogram judge",
                    field_path=".bucketQuery",
                ),
            ]
        }
    }

    @model_validator(mode="after")
    def _check(self) -> Judge:
        if self.type == "sequential" and (self.success_query is None or self.total_query is None):
            raise ValueError("a sequential judge needs successQuery and totalQuery")
        if self.type == "histogram" and self.bucket_query is None:
            raise ValueError("a histogram judge needs bucketQuery")
        if self.bucket_query is not None and self.type != "histogram":
            raise ValueError("bucketQuery is only read by a histogram judge")
        return self

    @property
    def statistical(self) -> bool:
        return self.type != "threshold"


class BaselineEvidence(ApiModel):
    """What a static baseline value was measured on, so a statistical judge can weigh it."""

    samples: int | None = Field(
        default=None,
        ge=1,
        le=10**12,
        description="Samples the value was measured on (for a rate: the trials, so that value x samples were "
        "successes). The sequential judge then compares the candidate with these frozen counts, two-sample.",
    )
    exact: bool | None = Field(
        default=None,
        description="true: the value is known exactly (a contract, a specification), not an estimate.",
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "has(self.samples) != (has(self.exact) && self.exact)",
                    "set samples (what the baseline was measured on) or exact: true",
                )
            ]
        }
    }

    @model_validator(mode="after")
    def _one(self) -> BaselineEvidence:
        if (self.samples is not None) == bool(self.exact):
            raise ValueError("set samples (what the baseline was measured on) or exact: true")
        return self


class MetricSpec(ApiModel):
    """One metric of a model, its baseline and the threshold it must hold."""

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_:.\-]*$",
        description="Metric name; the key in metrics files and history.",
    )
    description: str | None = Field(default=None, max_length=1024, description="What the check means.")
    direction: Direction = Field(
        default="higherIsBetter", description="higherIsBetter (e.g. accuracy) or lowerIsBetter (e.g. loss)."
    )
    baseline: BaselineValue | None = None
    baseline_evidence: BaselineEvidence | None = Field(
        default=None,
        description="For a static baseline: the samples it was measured on, or exact: true. Without either, a "
        "statistical judge takes the value as exact and the ModelBaseline says so in its BaselineEvidence "
        "condition: an estimate treated as exact inflates the false-rollback rate.",
    )
    threshold: Threshold = Field(description="The rule the metric must satisfy.")
    severity: Severity = Field(
        default="critical",
        description="critical fails the validation, warning is reported (and may block), info is recorded.",
    )
    neutral_band: float | None = Field(default=None, ge=0, description="Overrides spec.neutralBand for this metric.")
    query: str | None = Field(
        default=None,
        max_length=4096,
        description="PromQL template for live analysis. Placeholders: {{ model }}, {{ namespace }}, "
        "{{ checkpoint }}, {{ window }}, {{ interval }}. Substituted values are escaped.",
    )
    min_samples: int | None = Field(
        default=None, ge=0, description="Inconclusive until samplesQuery reports at least this many samples."
    )
    samples_query: str | None = Field(
        default=None, max_length=4096, description="PromQL template counting the candidate's samples."
    )
    judge: Judge | None = Field(default=None, description="Statistical judge; default threshold.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minSamples) || has(self.samplesQuery)",
                    "minSamples needs samplesQuery",
                    field_path=".samplesQuery",
                ),
                cel(
                    "!has(self.judge) || !has(self.judge.type) || self.judge.type != 'sequential' "
                    "|| self.threshold.type in ['delta', 'ratio']",
                    "a sequential judge needs a delta or ratio threshold",
                    field_path=".threshold",
                ),
                cel(
                    "!has(self.judge) || !has(self.judge.type) || self.judge.type != 'mannWhitney' || !has(self.query)",
                    "a mannWhitney judge ranks per-request samples given to `modelratchet check`; judge live "
                    "latency from its histogram buckets with judge type histogram",
                    field_path=".query",
                ),
                cel(
                    "!has(self.judge) || !has(self.judge.type) || self.judge.type != 'histogram' || !has(self.query)",
                    "a histogram judge reads judge.bucketQuery; remove query",
                    field_path=".query",
                ),
            ]
        }
    }

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError('baseline must be a number or "live"')
        if isinstance(v, str) and v != "live":
            raise ValueError(f'baseline must be a number or "live", not {v!r}')
        return v

    @model_validator(mode="after")
    def _check(self) -> MetricSpec:
        if self.threshold.type in ("delta", "ratio") and self.baseline is None:
            raise ValueError(f"{self.name}: delta and ratio thresholds need a baseline")
        if self.threshold.type == "ratio" and self.baseline == 0:
            raise ValueError(f"{self.name}: a ratio threshold needs a non-zero baseline")
        if isinstance(self.baseline, float) and not math.isfinite(self.baseline):
            raise ValueError(f"{self.name}: baseline must be finite")
        if self.min_samples is not None and self.samples_query is None:
            raise ValueError(f"{self.name}: minSamples needs samplesQuery")
        # A sequential judge tests for a regression of the threshold's size; min and max have none.
        if self.judge is not None and self.judge.type == "sequential" and self.threshold.type not in ("delta", "ratio"):
            raise ValueError(f"{self.name}: a sequential judge needs a delta or ratio threshold")
        # A rank test compares the candidate's samples with the stable checkpoint's.
        kind = self.judge.type if self.judge is not None else "threshold"
        if kind in ("mannWhitney", "histogram") and not self.is_live:
            raise ValueError(
                f'{self.name}: a {kind} judge compares with the stable checkpoint: it needs baseline: "live"'
            )
        if kind == "mannWhitney" and self.query is not None:
            raise ValueError(
                f"{self.name}: a mannWhitney judge ranks per-request samples given to `modelratchet check`; "
                "judge live latency from its histogram buckets with judge type histogram"
            )
        if kind == "histogram" and self.query is not None:
            raise ValueError(f"{self.name}: a histogram judge reads judge.bucketQuery; remove query")
        if self.baseline_evidence is not None and not isinstance(self.baseline, float):
            raise ValueError(f"{self.name}: baselineEvidence describes a static baseline value, not a live one")
        if (
            self.baseline_evidence is not None
            and self.baseline_evidence.samples is not None
            and kind == "sequential"
            and isinstance(self.baseline, float)
            and not 0.0 <= self.baseline <= 1.0
        ):
            raise ValueError(f"{self.name}: baselineEvidence.samples needs a rate in [0, 1] as the baseline")
        return self

    @property
    def unevidenced(self) -> bool:
        """A static baseline that a statistical judge will take as exact although nobody said it is."""
        return (
            self.judge is not None
            and self.judge.type == "sequential"
            and isinstance(self.baseline, float)
            and self.baseline_evidence is None
        )

    @property
    def is_live(self) -> bool:
        return self.baseline == "live"


class ModelBaselineSpec(ApiModel):
    """What "good" looks like for a model: metrics, baselines and regression thresholds."""

    model: str = Field(min_length=1, max_length=253, description="Model name; {{ model }} in queries.")
    neutral_band: float = Field(
        default=0.01,
        ge=0,
        description="|candidate - baseline| below this classifies a metric as neutral.",
    )
    on_missing: Literal["fail", "ignore"] = Field(
        default="fail",
        description="A metric without a value: fail (fail closed: inconclusive counts as failing its "
        "severity) or ignore (fail open: recorded, does not change the verdict).",
    )
    prometheus: BaselinePrometheusConnection | None = Field(
        default=None, description="Overrides the operator's Prometheus connection for this model."
    )
    # Unique names are enforced by the CRD as a list-map keyed by name.
    metrics: list[MetricSpec] = Field(min_length=1, max_length=64, description="The checks.")

    @model_validator(mode="after")
    def _unique(self) -> ModelBaselineSpec:
        seen: set[str] = set()
        for m in self.metrics:
            if m.name in seen:
                raise ValueError(f"metric names must be unique: {m.name!r} appears twice")
            seen.add(m.name)
        return self

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


class LastValidation(StatusModel):
    """Summary of the most recent validation against this baseline."""

    time: str = Field(description="When it ran (RFC 3339).")
    verdict: Verdict = Field(description="passed, warning, failed or inconclusive.")
    checkpoint: str | None = Field(default=None, description="The candidate checkpoint judged.")
    rollout: str | None = Field(default=None, description="The ModelRollout that ran it.")
    summary: str | None = Field(default=None, description="One line: which checks passed and failed.")


class ModelBaselineStatus(StatusModel):
    """Observed state of a ModelBaseline."""

    observed_generation: int | None = Field(default=None, description="Generation last validated.")
    metric_count: int | None = Field(default=None, description="Number of metrics (printer column).")
    last_validation: LastValidation | None = Field(default=None, description="The latest validation.")
    used_by: list[str] | None = Field(default=None, description="ModelRollouts that reference it.")
    conditions: list[Condition] | None = Field(default=None, description="Standard conditions.")


class ModelBaseline(ApiModel):
    """A model's baseline and regression thresholds."""

    api_version: Literal["modelratchet.io/v1alpha1"] = Field(default="modelratchet.io/v1alpha1", alias="apiVersion")
    kind: Literal["ModelBaseline"] = "ModelBaseline"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelBaselineSpec
    status: ModelBaselineStatus | None = None
