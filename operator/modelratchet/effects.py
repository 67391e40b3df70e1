"""The shell's side of the registry and of training pauses: resolve spec.source's alias before a decision, and
after a stored decision make the registry writes and workload patches it recorded, then record how they went.

Trust: the tracking URI is the operator's own or one its settings allow (checked before any Secret is read);
the operator's token goes only to its own tracking URI; a ModelRollout's secretRef and its workloads were
admitted only because its author may get that Secret and patch those workloads (crds/modelrollouts-policy.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelratchet.api.rollout import ModelRolloutSpec, ModelRolloutStatus, RegistryTag
from modelratchet.kube import resources as res
from modelratchet.kube.leader import ensure_leader
from modelratchet.kube.secrets import SecretError, read_secret_key
from modelratchet.metrics.addresses import AddressAllowlist, parse_address, redact
from modelratchet.registry import core as registry
from modelratchet.registry.mlflow import MlflowConnection, RegistryError
from modelratchet.rollout import training
from modelratchet.rollout.bounds import bound_status
from modelratchet.rollout.followup import record_follow_up
from modelratchet.settings import OperatorSettings
from modelratchet.wire import clean

log = logging.getLogger(__name__)

PENDING_REQUEUE = 10.0  # seconds between tries of writes and patches that are still due


class Effects:
    def __init__(
        self, settings: OperatorSettings, api: client.ApiClient, may_act: Callable[[], bool] = lambda: True
    ) -> None:
        self.settings = settings
        self.may_act = may_act  # MLflow writes are not fenced by the API client: checked before each
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # ------------------------------------------------------------------------------------------ registry

    def connection(self, spec: ModelRolloutSpec, namespace: str) -> MlflowConnection:
        assert spec.source is not None
        src, own = spec.source.mlflow, self.settings.mlflow_tracking_uri
        uri = (src.tracking_uri or own or "").rstrip("/")
        if not uri:
            raise RegistryError(
                "RegistryNotConfigured",
                "spec.source.mlflow.trackingURI is not set and the operator has no default "
                "(MODELRATCHET_MLFLOW_TRACKING_URI, chart value mlflow.trackingURI)",
            )
        if uri != own:
            problem = self._address_problem(uri)
            if problem is not None:
                raise RegistryError("AddressNotAllowed", f"spec.source.mlflow.trackingURI: {problem}")
        token = self.settings.mlflow_token if uri == own else None  # never the operator's token elsewhere
        if src.secret_ref is not None:
            try:
                token = read_secret_key(self.core, namespace, src.secret_ref)
            except SecretError as e:
                raise RegistryError(e.reason, f"spec.source.mlflow.secretRef: {e}") from e
        return MlflowConnection(uri, token, timeout=self.settings.mlflow_timeout)

    def _address_problem(self, uri: str) -> str | None:
        try:
            origin = parse_address(uri)
        except ValueError as e:
            return str(e)
        allowed = AddressAllowlist.parse(self.settings.mlflow_allowed_addresses)
        if any(origin.within(a) for a in allowed.entries):
            return None
        return (
            f"{redact(uri)!r} is not an allowed MLflow address; allowed: "
            f"{', '.join((self.settings.mlflow_tracking_uri or '', *allowed.shown)).strip(', ') or '(none)'} "
            "(operator setting MODELRATCHET_MLFLOW_ALLOWED_ADDRESSES, chart value mlflow.allowedAddresses)"
        )

    def resolve(self, spec: ModelRolloutSpec, namespace: str) -> registry.RegistryObservation | None:
        """What spec.source's alias names now, or why that is unknown."""
        if spec.source is None:
            return None
        src = spec.source.mlflow
        try:
            resolved = self.connection(spec, namespace).alias(src.model, src.alias)
        except RegistryError as e:
            return registry.RegistryObservation(src.model, src.alias, None, error=str(e), reason=e.reason)
        return registry.RegistryObservation(src.model, src.alias, resolved)

    def _write(
        self,
        obj: dict[str, Any],
        spec: ModelRolloutSpec,
        status: ModelRolloutStatus,
        seen: registry.RegistryObservation | None,
        now: datetime,
    ) -> list[registry.WriteResult]:
        due = registry.due(status, now, answering=seen is not None and seen.resolved is not None)
        if not due or spec.source is None:
            return []
        meta = obj["metadata"]
        link = f"{meta['namespace']}/{meta['name']}"
        model = spec.source.mlflow.model
        try:
            conn = self.connection(spec, meta["namespace"])
        except RegistryError as e:
            return [registry.WriteResult(w.id, error=str(e), reason=e.reason) for w in due[:1]]
        results = []
        for w in due:  # in the order decided: a later alias move must not land before an earlier one
            ensure_leader(self.may_act, f"registry write for {link}")
            try:
                tags = [*w.tags, *([RegistryTag(key="modelratchet.rollout", value=link)] if w.tags else [])]
                # Idempotent and cheap to repeat: only the tags the version does not carry yet are written.
                present = conn.tags(model, w.version) if tags else {}
                for tag in tags:
                    if present.get(tag.key) != tag.value:
                        conn.set_tag(model, w.version, tag.key, tag.value)
                if w.set_alias:
                    conn.set_alias(model, w.set_alias, w.version)
            except RegistryError as e:
                results.append(registry.WriteResult(w.id, error=str(e), reason=e.reason))
                break
            results.append(registry.WriteResult(w.id))
        return results

    # ------------------------------------------------------------------------------------------ training

    def _patch_workload(self, namespace: str, change: training.WorkloadChange) -> training.WorkloadResult:
        ref = change.ref
        group, version, plural = training.resource_of(ref)
        path = training.suspend_field(ref)
        what = f"{ref.kind} {ref.name!r} ({plural}.{group}) in namespace {namespace!r}"
        try:
            current = self.custom.get_namespaced_custom_object(group, version, namespace, plural, ref.name)
            value: Any = current
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            was = value is True
            if was != change.suspend:
                body: dict[str, Any] = {}
                node = body
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = change.suspend
                self.custom.patch_namespaced_custom_object(group, version, namespace, plural, ref.name, body)
        except ApiException as e:
            if e.status == 403:
                verb = "get or patch"
                message = f"the operator may not {verb} {what} (RBAC: list it in the chart value rbac.trainingSuspend)"
            elif e.status == 404:
                message = f"{what} not found (its resource is the lower-cased kind + s)"
            else:
                message = f"{what}: {e.status} {clean(str(e.reason))}"
            return training.WorkloadResult(change.key, ok=False, message=message)
        return training.WorkloadResult(change.key, ok=True, was_suspended=was and change.suspend)

    # ------------------------------------------------------------------------------------------ both

    def follow_up(
        self, obj: dict[str, Any], spec: ModelRolloutSpec, seen: registry.RegistryObservation | None, now: datetime
    ) -> float | None:
        """Make what the stored status says is due, record how it went; seconds until the next try, if any."""
        status = ModelRolloutStatus.model_validate(obj.get("status") or {})
        namespace = obj["metadata"]["namespace"]
        writes = self._write(obj, spec, status, seen, now)
        workloads = [self._patch_workload(namespace, c) for c in training.due(status.training)]
        if not writes and not workloads:
            return None
        generation = int(obj["metadata"].get("generation", 1))
        new, events = record_follow_up(
            spec, status, writes=writes, workloads=workloads, seen=seen, now=now, generation=generation
        )
        dumped = bound_status(new).model_dump(by_alias=True, exclude_none=True, mode="json")
        still = registry.due(new) or training.due(new.training)
        if dumped == (obj.get("status") or {}):
            return PENDING_REQUEUE if still else None  # the same failure again: nothing new to record
        try:
            stored = res.replace_status(self.custom, res.ROLLOUTS, obj, dumped)
        except res.Conflict:
            return 0.5  # the writes are idempotent: the next look makes them again and records them
        for e in events:
            res.emit_event(self.core, stored, e.type, e.reason, e.message)
        return PENDING_REQUEUE if still else None
