"""One look at one ModelRollout: observe the world, ask the pure core, act, record."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelratchet import telemetry
from modelratchet.analysis import observe_lag, run_analysis
from modelratchet.api.errors import validation_problems
from modelratchet.api.rollout import ModelRolloutSpec, ModelRolloutStatus, Notification
from modelratchet.effects import Effects
from modelratchet.gates import ValidationResult
from modelratchet.kube import deployments as deps
from modelratchet.kube import resources as res
from modelratchet.kube import services as svcs
from modelratchet.kube.leader import ensure_leader
from modelratchet.kube.secrets import SecretError, prometheus_settings_for
from modelratchet.metrics.provider import MetricsProvider
from modelratchet.observe import Fetched, baseline_of, observe_world
from modelratchet.rollout import (
    Action,
    AnalysisRequest,
    DeleteCanary,
    EmitEvent,
    EnsureCanary,
    Notify,
    SetRoute,
    SetTargetCheckpoint,
    World,
    analysis_due,
    plan,
    reconcile,
)
from modelratchet.rollout.bounds import bound_status
from modelratchet.rollout.machine import parse_ts
from modelratchet.settings import OperatorSettings
from modelratchet.traffic import RouteError
from modelratchet.traffic.gateway_api import GatewayAPIRouter

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


def after_look(requeue: float, now: datetime, at: datetime | None = None) -> float:
    """The core's requeue counts from ``now`` (whole seconds, read before this look's reads and writes): the delay
    from the end of the look is shorter by the time since, so an analysis due at now + requeue starts then, not up
    to a second and a look later. A few milliseconds past it, so the next look's whole-second clock has reached it.
    """
    elapsed = ((at or datetime.now(UTC)) - now).total_seconds()
    return max(min(requeue, MIN_REQUEUE), requeue - elapsed + 0.01)


MIN_REQUEUE = 0.2  # seconds, as the state machine's own shortest (machine.soon): never a busy loop

# A status write that meets a newer version is decided again on the same observations this many times (the
# analysis is not re-run, so a failed look is never lost to a conflict), then left to the next look.
CONFLICT_RETRIES = 3


class Reconciler:
    def __init__(
        self,
        settings: OperatorSettings,
        api: client.ApiClient,
        provider: MetricsProvider,
        notifier: Notifier | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.api = api
        self.provider = provider
        self.notifier = notifier
        # False once this replica may have lost leadership: it then neither records nor acts (NotLeader).
        self.may_act = may_act
        # spec.source's registry alias, registry verdict writes and training suspensions (effects.py).
        self.effects = Effects(settings, api, may_act)

    # ------------------------------------------------------------------------------------------ tick

    def tick(self, namespace: str, name: str) -> float | None:
        """Reconcile once; returns seconds until the next look, or None when the object is gone."""
        try:
            return self._tick(namespace, name)
        except res.Gone:
            # Deleted while this look ran (e.g. its namespace is going away): not an error, just the end.
            telemetry.observe_phase(namespace, name, None)
            return None

    def _fetch(self, obj: dict[str, Any], spec: ModelRolloutSpec) -> Fetched:
        namespace = obj["metadata"]["namespace"]
        fetched = Fetched(
            rollout=obj,
            target=self._deployment(namespace, spec.target_ref.name),
            canary=self._deployment(namespace, deps.canary_name(spec.target_ref.name)),
            baseline=res.get(self.custom, res.BASELINES, namespace, spec.baseline_ref.name, cached=True),
        )
        if not spec.routed:
            return fetched
        router = GatewayAPIRouter(self.api, obj, spec, self.settings.field_manager)
        return replace(
            fetched,
            route=router.get_route(),
            stable_service=svcs.read_service(self.core, namespace, router.names.stable),
            mirror_service=router.mirror_service(),
        )

    def _deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """From the watch cache when it has it (targets opted in, canaries), else from the API server."""
        return res.CACHE.get("deployments", namespace, name) or deps.read_deployment(self.apps, namespace, name)

    def _analyze(
        self,
        world: World,
        spec: ModelRolloutSpec,
        baseline_obj: dict[str, Any] | None,
        request: AnalysisRequest,
        namespace: str,
        now: datetime,
    ) -> tuple[World, ValidationResult | None]:
        """Measure and judge, or say why not (a Secret, a query that does not parse) as a reference problem."""
        baseline, _, _ = baseline_of(spec, namespace, baseline_obj)
        assert baseline is not None
        where = f"ModelBaseline {spec.baseline_ref.name!r}"
        try:
            prom = prometheus_settings_for(self.core, self.settings, baseline, namespace)
        except SecretError as e:
            return replace(world, baseline_error=f"{where}: {e}", baseline_reason=e.reason), None
        report, result, invalid = run_analysis(
            self.provider, baseline, request, namespace=namespace, settings=prom, now=now
        )
        if invalid:
            # A query that does not parse is a configuration error, not missing data: hold, don't judge.
            return replace(
                world, baseline_error=f"{where}: " + "; ".join(invalid), baseline_reason="InvalidQuery"
            ), None
        return replace(world, analysis=report), result

    def _tick(self, namespace: str, name: str) -> float | None:
        started = time.monotonic()
        obj = res.get(self.custom, res.ROLLOUTS, namespace, name, cached=True)
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
        now = datetime.now(UTC).replace(microsecond=0)

        # observe
        fetched = self._fetch(obj, spec)
        world = observe_world(spec, fetched)
        if spec.source is not None:
            world = replace(world, registry=self.effects.resolve(spec, namespace))
        result: ValidationResult | None = None
        status = ModelRolloutStatus.model_validate(obj.get("status") or {})
        request = analysis_due(spec, status, now) if world.references_ok else None
        if request is not None:
            observe_lag(spec, status, datetime.now(UTC))
            world, result = self._analyze(world, spec, fetched.baseline, request, namespace, now)

        # decide, record: a newer version (a gate request, another writer) is decided again on the same world
        for _ in range(CONFLICT_RETRIES):
            status = ModelRolloutStatus.model_validate(obj.get("status") or {})
            generation = int(obj["metadata"].get("generation", 1))
            decision = reconcile(spec, status, generation=generation, world=world, now=now)
            # Bounded so a status can always be stored (etcd's object limit), whatever Prometheus answered.
            new_status = _dump(bound_status(decision.status))
            if new_status == (obj.get("status") or {}):
                break
            ensure_leader(self.may_act, f"status write of {namespace}/{name}")
            try:
                obj = res.replace_status(self.custom, res.ROLLOUTS, obj, new_status)
                break
            except res.Conflict:
                fresh = res.get(self.custom, res.ROLLOUTS, namespace, name)
                if fresh is None:
                    raise res.Gone(name) from None
                if fresh.get("spec") != obj.get("spec"):
                    return 0.2  # the spec moved on: observe again from scratch
                obj = fresh
        else:
            return 0.2

        # act: drive the world toward what the stored status says, then announce what was decided
        stored = ModelRolloutStatus.model_validate(obj.get("status") or {})
        requeue = decision.requeue_after
        for action in plan(spec, stored, world):
            ensure_leader(self.may_act, f"{type(action).__name__} for {namespace}/{name}")
            try:
                self._apply(action, obj, spec, fetched)
            except res.Conflict:
                requeue = min(requeue, 0.5)  # someone edited the route meanwhile: the next look re-applies
            except RouteError as e:
                # The step waits for the route (status says so); the Event says why it cannot be applied.
                res.emit_event(self.core, obj, "Warning", e.reason, str(e))
                requeue = min(requeue, 10.0)
        self._after_write(obj, spec, status, stored, decision.actions, result, now)
        follow = self.effects.follow_up(obj, spec, world.registry, now)
        requeue = requeue if follow is None else min(requeue, follow)
        telemetry.RECONCILE_SECONDS.observe(time.monotonic() - started)
        return after_look(requeue, now)

    # ------------------------------------------------------------------------------------------ act

    def _apply(self, action: Action, obj: dict[str, Any], spec: ModelRolloutSpec, fetched: Fetched) -> None:
        namespace = obj["metadata"]["namespace"]
        fm = self.settings.field_manager
        router = GatewayAPIRouter(self.api, obj, spec, fm) if spec.routed else None
        if isinstance(action, EnsureCanary):
            assert fetched.target is not None
            desired = deps.build_canary(fetched.target, spec.checkpoint_from, action.checkpoint, action.replicas, obj)
            if not res.already_applied(fetched.canary, res.stamp_applied(desired)):
                deps.ensure_canary(self.apps, desired, fm)
            if router is not None and fetched.stable_service is not None:
                # The router's candidate backend: a Service of the canary's pods only.
                svcs.ensure_service(
                    self.core, svcs.build_canary_service(router.names.canary, fetched.stable_service, obj), fm
                )
        elif isinstance(action, DeleteCanary):
            deps.delete_canary(self.apps, namespace, spec.target_ref.name)
            if router is not None:
                svcs.delete_service(self.core, namespace, router.names.canary)
        elif isinstance(action, SetRoute):
            assert router is not None
            router.set_route(action.state)
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
