"""One look at one ModelRollout: observe the world, ask the pure core, act, record."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelratchet import telemetry
from modelratchet.analysis import run_analysis
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.errors import validation_problems
from modelratchet.api.rollout import ModelRolloutSpec, ModelRolloutStatus, Notification
from modelratchet.gates import ValidationResult
from modelratchet.kube import deployments as deps
from modelratchet.kube import resources as res
from modelratchet.kube.secrets import SecretError, prometheus_settings_for
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.rollout import (
    AnalysisReport,
    DeleteCanary,
    EmitEvent,
    EnsureCanary,
    Notify,
    SetTargetCheckpoint,
    TargetState,
    World,
    analysis_due,
    reconcile,
)
from modelratchet.rollout.machine import parse_ts
from modelratchet.settings import OperatorSettings

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def submit(
        self, rollout: dict[str, Any], targets: list[Notification], event: Notify, context: dict[str, Any]
    ) -> None: ...


def _dump(status: ModelRolloutStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _short(e: Exception) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    return str(e)


class Reconciler:
    def __init__(
        self,
        settings: OperatorSettings,
        api: client.ApiClient,
        provider: MetricsProvider,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.provider = provider
        self.notifier = notifier

    # ------------------------------------------------------------------------------------------ observe

    def _baseline(
        self, namespace: str, name: str
    ) -> tuple[ModelBaselineSpec | None, dict[str, Any] | None, str | None]:
        obj = res.get(self.custom, res.BASELINES, namespace, name)
        if obj is None:
            return None, None, f"ModelBaseline {name!r} not found in namespace {namespace!r}"
        try:
            return ModelBaselineSpec.model_validate(obj.get("spec") or {}), obj, None
        except ValidationError as e:
            return None, obj, f"ModelBaseline {name!r} is invalid: {validation_problems(e, 'spec')[0]}"

    def _canary(self, namespace: str, target: str, uid: str) -> tuple[dict[str, Any] | None, str | None]:
        dep = deps.read_deployment(self.apps, namespace, deps.canary_name(target))
        if dep is None:
            return None, None
        owners = dep["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == uid for o in owners):
            return None, f"Deployment {deps.canary_name(target)!r} exists and is not owned by this ModelRollout"
        return dep, None

    # ------------------------------------------------------------------------------------------ tick

    def tick(self, namespace: str, name: str) -> float | None:
        """Reconcile once; returns seconds until the next look, or None when the object is gone."""
        try:
            return self._tick(namespace, name)
        except res.Gone:
            # Deleted while this look ran (e.g. its namespace is going away): not an error, just the end.
            telemetry.observe_phase(namespace, name, None)
            return None

    def _tick(self, namespace: str, name: str) -> float | None:
        started = time.monotonic()
        obj = res.get(self.custom, res.ROLLOUTS, namespace, name)
        if obj is None:
            telemetry.observe_phase(namespace, name, None)
            return None
        try:
            spec = ModelRolloutSpec.model_validate(obj.get("spec") or {})
        except ValidationError as e:
            # The API server validates too, so this only happens across versions; say so, never crash-loop.
            msg = validation_problems(e, "spec")[0]
            res.patch_status(self.custom, res.ROLLOUTS, namespace, name, {"phase": "Failed", "message": msg})
            return 60.0
        status = ModelRolloutStatus.model_validate(obj.get("status") or {})
        generation = int(obj["metadata"].get("generation", 1))
        now = datetime.now(UTC).replace(microsecond=0)

        target_dep = deps.read_deployment(self.apps, namespace, spec.target_ref.name)
        target = deps.target_state(target_dep, spec.checkpoint_from) if target_dep else None
        canary_dep, canary_error = self._canary(namespace, spec.target_ref.name, obj["metadata"]["uid"])
        if target is not None and canary_error:
            target = TargetState(
                target.checkpoint, target.replicas, target.ready_replicas, target.available, canary_error
            )
        canary = deps.canary_state(canary_dep) if canary_dep else None
        baseline, baseline_obj, baseline_error = self._baseline(namespace, spec.baseline_ref.name)
        baseline_reason = "BaselineNotFound" if baseline_obj is None else "BaselineInvalid"

        report: AnalysisReport | None = None
        result: ValidationResult | None = None
        request = analysis_due(spec, status, now)
        refs_ok = target is not None and not target.error and baseline is not None
        if request is not None and refs_ok and baseline is not None:
            try:
                prom = prometheus_settings_for(self.core, self.settings, baseline, namespace)
            except SecretError as e:
                prom = None
                baseline_error = f"ModelBaseline {spec.baseline_ref.name!r}: {e}"
                baseline_reason = "SecretNotFound"
            if prom is not None:
                report, result, invalid = run_analysis(
                    self.provider, baseline, request, namespace=namespace, settings=prom, now=now
                )
            if report is not None and invalid:
                # A query that does not parse is a configuration error, not missing data: hold, don't judge.
                baseline_error = f"ModelBaseline {spec.baseline_ref.name!r}: " + "; ".join(invalid)
                baseline_reason, report, result = "InvalidQuery", None, None

        world = World(
            target=target,
            canary=canary,
            baseline_error=baseline_error,
            baseline_reason=baseline_reason,
            analysis=report,
        )
        decision = reconcile(spec, status, generation=generation, world=world, now=now)

        for action in decision.actions:
            self._apply(action, obj, spec, target_dep, namespace)

        new_status = _dump(decision.status)
        if new_status != (obj.get("status") or {}):
            try:
                res.replace_status(self.custom, res.ROLLOUTS, obj, new_status)
            except res.Conflict:
                return 0.2
        self._after_write(obj, spec, status, decision.status, decision.actions, result, now)
        telemetry.RECONCILE_SECONDS.observe(time.monotonic() - started)
        return decision.requeue_after

    # ------------------------------------------------------------------------------------------ act

    def _apply(
        self,
        action: object,
        obj: dict[str, Any],
        spec: ModelRolloutSpec,
        target_dep: dict[str, Any] | None,
        namespace: str,
    ) -> None:
        fm = self.settings.field_manager
        if isinstance(action, EnsureCanary):
            assert target_dep is not None
            desired = deps.build_canary(target_dep, spec.checkpoint_from, action.checkpoint, action.replicas, obj)
            deps.ensure_canary(self.apps, desired, fm)
        elif isinstance(action, DeleteCanary):
            deps.delete_canary(self.apps, namespace, spec.target_ref.name)
        elif isinstance(action, SetTargetCheckpoint):
            deps.set_target_checkpoint(
                self.apps, namespace, spec.target_ref.name, spec.checkpoint_from, action.checkpoint, fm
            )

    def _after_write(
        self,
        obj: dict[str, Any],
        spec: ModelRolloutSpec,
        old: ModelRolloutStatus,
        new: ModelRolloutStatus,
        actions: Sequence[object],
        result: ValidationResult | None,
        now: datetime,
    ) -> None:
        """Side effects that must not repeat: they run only once the new status is stored."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        for action in actions:
            if isinstance(action, EmitEvent):
                res.emit_event(self.core, obj, action.type, action.reason, action.message)
            elif isinstance(action, Notify) and self.notifier and spec.notifications:
                context = {
                    "phase": new.phase,
                    "stable": new.stable_checkpoint,
                    "step": new.current_step,
                    "weight": new.canary_weight,
                    "verdict": new.last_verdict,
                }
                self.notifier.submit(obj, spec.notifications, action, context)
        telemetry.observe_phase(ns, name, new.phase)
        telemetry.CANARY_WEIGHT.labels(ns, name).set(new.canary_weight or 0)
        if new.phase == "Promoted" and old.phase != "Promoted":
            telemetry.PROMOTIONS.labels(ns, name).inc()
        if new.phase == "RolledBack" and old.phase != "RolledBack":
            reason = next((c.reason for c in new.conditions or [] if c.type == "RolledBack"), "Unknown")
            telemetry.ROLLBACKS.labels(ns, name, reason).inc()
            first = parse_ts(old.first_failure_at or new.first_failure_at)
            if first is not None:
                telemetry.TIME_TO_ROLLBACK.observe(max(0.0, (now - first).total_seconds()))
        if result is not None and new.last_history_id != old.last_history_id:
            telemetry.ANALYSES.labels(ns, name, result.verdict).inc()
            for r in result.results:
                if r.value is not None:
                    telemetry.METRIC_VALUE.labels(ns, name, r.metric, "candidate").set(r.value)
                if r.baseline is not None:
                    telemetry.METRIC_VALUE.labels(ns, name, r.metric, "baseline").set(r.baseline)
                if r.threshold is not None and r.threshold.value is not None:
                    telemetry.METRIC_VALUE.labels(ns, name, r.metric, "threshold").set(r.threshold.value)
            self._record_on_baseline(ns, spec.baseline_ref.name, name, new, result)

    def _record_on_baseline(
        self, namespace: str, baseline: str, rollout: str, status: ModelRolloutStatus, result: ValidationResult
    ) -> None:
        entry = status.history[0] if status.history else None
        last = {
            "time": entry.time if entry else None,
            "verdict": result.verdict,
            "checkpoint": entry.checkpoint if entry else None,
            "rollout": rollout,
            "summary": result.summary,
        }
        try:
            res.patch_status(self.custom, res.BASELINES, namespace, baseline, {"lastValidation": last})
        except (ApiException, res.Gone) as e:
            log.warning("could not record the validation on ModelBaseline %s: %s", baseline, _short(e))
