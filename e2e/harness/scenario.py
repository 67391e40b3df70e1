"""A model-serving setup on the local cluster: Deployment, model servers, traffic, baseline and rollout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.observe import OPT_IN_ANNOTATION

from e2e.harness.model_servers import ModelServerFleet, TrafficDriver, checkpoint_file, kube_weights
from e2e.harness.wait import wait_for

GROUP, VERSION = "modelratchet.io", "v1alpha1"

V1 = "s3://models/digits/v1"  # good
V2 = "s3://models/digits/v2"  # better
V3 = "s3://models/digits/v3"  # regressed accuracy
V4 = "s3://models/digits/v4"  # same quality, slower
CHECKPOINT_FILES = {V1: "v1-good", V2: "v2-better", V3: "v3-regressed", V4: "v4-slow"}

_SEL = 'model="{{ model }}",checkpoint="{{ checkpoint }}"'
ACCURACY_QUERY = (
    f"sum(increase(model_correct_total{{{_SEL}}}[{{{{ window }}}}]))"
    f" / sum(increase(model_feedback_total{{{_SEL}}}[{{{{ window }}}}]))"
)
SAMPLES_QUERY = f"sum(increase(model_feedback_total{{{_SEL}}}[{{{{ window }}}}]))"
LATENCY_QUERY = (
    f"histogram_quantile(0.9, sum by (le) (rate(model_request_latency_seconds_bucket{{{_SEL}}}[{{{{ window }}}}])))"
)


def digits_baseline(
    model: str, *, accuracy_ratio: float = 0.05, latency_ratio: float = 1.0, min_samples: int = 40
) -> dict[str, Any]:
    """Accuracy against the stable checkpoint side by side (critical) and p90 latency (warning)."""
    return {
        "model": model,
        "metrics": [
            {
                "name": "accuracy",
                "description": "At most 5% below the stable checkpoint, measured side by side",
                "baseline": "live",
                "threshold": {"type": "ratio", "value": accuracy_ratio},
                "severity": "critical",
                "query": ACCURACY_QUERY,
                "minSamples": min_samples,
                "samplesQuery": SAMPLES_QUERY,
            },
            {
                "name": "latency_p90",
                "direction": "lowerIsBetter",
                "baseline": "live",
                "threshold": {"type": "ratio", "value": latency_ratio},
                "severity": "warning",
                "query": LATENCY_QUERY,
            },
        ],
    }


def rollout_spec(target: str, baseline: str, checkpoint: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": target},
        "checkpoint": checkpoint,
        "checkpointFrom": {"container": "server", "env": "MODEL_CHECKPOINT"},
        "baselineRef": {"name": baseline},
        "steps": [
            {"setWeight": 25},
            {"analyze": {"duration": "6s"}},
            {"setWeight": 50},
            {"analyze": {"duration": "4s"}},
        ],
        "analysis": {"interval": "2s", "failureLimit": 0, "inconclusiveLimit": 3},
    }
    spec.update(overrides)
    return spec


def deployment(name: str, checkpoint: str, replicas: int = 3, *, rollout: str | None = "digits") -> dict[str, Any]:
    """A serving Deployment; ``rollout`` is the ModelRollout it opts in to (None: it opts in to none)."""
    annotations = {OPT_IN_ANNOTATION: rollout} if rollout else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "modelratchet/digits-server:0.1.0",
                            "env": [{"name": "MODEL_CHECKPOINT", "value": checkpoint}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
                        }
                    ],
                },
            },
        },
    }


class Scenario:
    """One namespace's serving setup; everything it starts stops with close()."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        prometheus: Any,
        *,
        model: str,
        checkpoints: Iterable[str] = (V1, V2, V3, V4),
        log_dir: Path | None = None,
    ) -> None:
        self.api = api
        self.ns = namespace
        self.prometheus = prometheus
        self.model = model
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        files = {label: checkpoint_file(CHECKPOINT_FILES[label]) for label in checkpoints}
        self.fleet = ModelServerFleet(files, model=model, log_dir=log_dir)
        self.traffic: TrafficDriver | None = None
        self.target = "digits-serving"

    def start_servers(self) -> None:
        self.fleet.start()
        for label, address in self.fleet.addresses().items():
            self.prometheus.add_target(self._job(label), address, {"namespace": self.ns})

    def _job(self, label: str) -> str:
        return f"{self.ns}-{label.rsplit('/', 1)[-1]}"

    def stop_server(self, label: str) -> None:
        self.fleet.remove(label)

    def deploy_target(self, checkpoint: str = V1, replicas: int = 3, *, rollout: str | None = "digits") -> None:
        body = deployment(self.target, checkpoint, replicas, rollout=rollout)
        self.apps.create_namespaced_deployment(self.ns, body)
        body_svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.target},
            "spec": {"selector": {"app": self.target}, "ports": [{"port": 80, "targetPort": 8000}]},
        }
        self.core.create_namespaced_service(self.ns, body_svc)
        wait_for(lambda: self.target_available(), timeout=60, message=f"{self.target} Available")

    def start_traffic(self, rate: float = 120.0, max_duration: float = 600.0) -> None:
        weights = kube_weights(self.api, self.ns, [self.target, f"{self.target}-canary"])
        self.traffic = TrafficDriver(self.fleet.urls, weights, rate=rate, max_duration=max_duration)
        self.traffic.start()

    def close(self) -> None:
        if self.traffic:
            self.traffic.stop()
        for label in list(self.fleet.servers()):
            self.prometheus.remove_target(self._job(label))
        self.fleet.stop()

    # ---------------------------------------------------------------- objects

    def create(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = {"modelbaselines": "ModelBaseline", "modelrollouts": "ModelRollout"}[plural]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def patch_spec(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name, {"spec": spec})

    def get(self, plural: str, name: str) -> dict[str, Any]:
        resp = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name, _preload_content=False)
        return dict(json.loads(resp.data))

    def rollout(self, name: str) -> dict[str, Any]:
        return self.get("modelrollouts", name)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rollout(name).get("status") or {})

    def gate(self, name: str, action: str, checkpoint: str | None = None) -> None:
        gate = {
            "action": action,
            "requestedBy": "e2e",
            "requestedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if checkpoint:
            gate["checkpoint"] = checkpoint
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.ns, "modelrollouts", name, {"status": {"gate": gate}}
        )

    def wait_phase(
        self,
        name: str,
        phases: str | Iterable[str],
        timeout: float = 90.0,
        also: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Waits for the phase, and for the world to follow it: the operator records a decision first and acts
        on it right after, so an ended rollout's canary is gone a moment after the status says so."""
        wanted = {phases} if isinstance(phases, str) else set(phases)
        ended = {"Promoted", "RolledBack", "Idle", "Failed"}

        def check() -> dict[str, Any] | None:
            status = self.status(name)
            if status.get("phase") not in wanted or (also is not None and not also(status)):
                return None
            if status.get("phase") in ended and self.canary() is not None:
                return None
            return status

        try:
            result: dict[str, Any] = wait_for(check, timeout=timeout, message=f"{name} phase in {sorted(wanted)}")
        except TimeoutError as e:
            status = self.status(name)
            status.pop("history", None)
            raise TimeoutError(f"{e}\nstatus: {json.dumps(status, indent=1)}") from None
        return result

    # ---------------------------------------------------------------- deployments

    def _deployment(self, name: str) -> dict[str, Any] | None:
        try:
            resp = self.apps.read_namespaced_deployment(name, self.ns, _preload_content=False)
            return dict(json.loads(resp.data))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def target_checkpoint(self) -> str:
        dep = self._deployment(self.target)
        assert dep is not None
        for c in dep["spec"]["template"]["spec"]["containers"]:
            if c["name"] == "server":
                for e in c.get("env") or []:
                    if e["name"] == "MODEL_CHECKPOINT":
                        return str(e["value"])
        raise AssertionError("no checkpoint on the target")

    def target_available(self) -> bool:
        dep = self._deployment(self.target)
        if not dep:
            return False
        st, want = dep.get("status") or {}, dep["spec"]["replicas"]
        return bool(
            st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
            and st.get("availableReplicas", 0) == want
            and st.get("updatedReplicas", 0) == want
        )

    def canary(self) -> dict[str, Any] | None:
        return self._deployment(f"{self.target}-canary")

    def target_generation(self) -> int:
        dep = self._deployment(self.target)
        assert dep is not None
        return int(dep["metadata"]["generation"])

    def events(self, name: str) -> list[tuple[str, str]]:
        evs = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}")
        return [(e.reason, e.message) for e in evs.items]

