"""Shared building blocks of the ModelRatchet API models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "modelratchet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Go-style durations as Kubernetes users write them: 30s, 5m, 1h30m, 250ms. Digits and length are bounded so
# that no duration a user can write overflows a Go time.Duration (CEL) or a Python timedelta.
DURATION_PATTERN = r"^([0-9]{1,6}(\.[0-9]{1,6})?(ms|s|m|h))+$"
DURATION_MAX_LENGTH = 16
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Severity = Literal["critical", "warning", "info"]
Direction = Literal["higherIsBetter", "lowerIsBetter"]


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``1m30s``; raises ValueError otherwise."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _duration_range(minimum: str, maximum: str) -> AfterValidator:
    lo, hi = parse_duration(minimum), parse_duration(maximum)

    def check(text: str) -> str:
        if not lo <= parse_duration(text) <= hi:
            raise ValueError(f"duration {text!r} is out of range: allowed {minimum} to {maximum}")
        return text

    return AfterValidator(check)


def _duration_schema(minimum: str, maximum: str, description: str) -> Any:
    rule = f"duration(self) >= duration('{minimum}') && duration(self) <= duration('{maximum}')"
    return Field(
        pattern=DURATION_PATTERN,
        max_length=DURATION_MAX_LENGTH,
        description=description,
        json_schema_extra={"x-kubernetes-validations": [cel(rule, f"must be between {minimum} and {maximum}")]},
    )


def cel(rule: str, message: str, *, reason: str | None = None, field_path: str | None = None) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if reason:
        entry["reason"] = reason
    if field_path:
        entry["fieldPath"] = field_path
    return entry


# Bounded durations, enforced by the API server (CEL) and by the models alike. Upper bounds keep every timer
# finite; the lower bound on an analysis interval keeps a rollout from hammering Prometheus.
AnalysisInterval = Annotated[
    str, _duration_schema("1s", "1h", "Time between analyses (1s to 1h)."), _duration_range("1s", "1h")
]
AnalysisDuration = Annotated[
    str, _duration_schema("1s", "168h", "How long to analyze (1s to 168h)."), _duration_range("1s", "168h")
]
LongDuration = Annotated[str, _duration_schema("0s", "720h", "Up to 720h (30 days)."), _duration_range("0s", "720h")]
QueryTimeout = Annotated[
    str, _duration_schema("100ms", "5m", "Per-query timeout, 100ms to 5m."), _duration_range("100ms", "5m")
]


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest (camelCase, unset fields omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(ApiModel):
    """Base of status models: tolerate fields written by newer operator versions."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the referenced object.")


class SecretKeySelector(ApiModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class Condition(StatusModel):
    """A metav1.Condition: the observed state of one aspect of the object."""

    type: str = Field(description="CamelCase condition type, e.g. Progressing.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(min_length=1, description="CamelCase machine-readable reason; never empty.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set for."
    )


class PrometheusConnection(ApiModel):
    """Where and how to query Prometheus; overrides the operator's defaults."""

    address: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090.",
    )
    bearer_token_secret_ref: SecretKeySelector | None = Field(
        default=None, description="Secret key holding a bearer token sent with every query."
    )
    ca_secret_ref: SecretKeySelector | None = Field(
        default=None, description="Secret key holding a PEM CA bundle to verify the server."
    )
    insecure_skip_verify: bool | None = Field(default=None, description="Skip TLS verification (testing only).")
    timeout: QueryTimeout | None = Field(default=None, description="Per-query timeout, e.g. 10s (100ms to 5m).")
