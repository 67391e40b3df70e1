"""A model-serving setup on the local cluster: Deployment, model servers, traffic, baseline and rollout.

Two ways to serve, same methods:

- with a data plane (`Scenario(..., data_plane=plane)`, the `scenario` fixture): the target's pods really serve
  (label modelratchet.io/serve, run by the supervisor, each loading MODEL_CHECKPOINT from this scenario's model
  store), the Service `<target>` selects stable and canary pods alike, `<target>-stable` only the stable ones,
  and the HTTPRoute `<target>` (hostname `host`) sends the gateway's requests to `<target>` (or to the Service
  given to deploy_target). Traffic goes through the gateway; Prometheus discovers the pods.
- without one (loopback): one model-server process per checkpoint on 127.0.0.1, registered as file_sd
  targets, and a traffic driver that splits requests by the Deployments' ready replicas.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.observe import OPT_IN_ANNOTATION

from e2e.harness.kwok_stages import SERVE_LABEL
from e2e.harness.model_servers import (
    EXAMPLE_DIR,
    GatewayTrafficDriver,
    ModelServerFleet,
    TrafficDriver,
    checkpoint_file,
    kube_weights,
    scrape_metrics,
)
from e2e.harness.wait import wait_for

if TYPE_CHECKING:
    from e2e.harness.dataplane import DataPlane

GROUP, VERSION = "modelratchet.io", "v1alpha1"

V1 = "s3://models/digits/v1"  # good
V2 = "s3://models/digits/v2"  # better
V3 = "s3://models/digits/v3"  # regressed accuracy
V4 = "s3://models/digits/v4"  # same quality, slower
CHECKPOINT_FILES = {V1: "v1-good", V2: "v2-better", V3: "v3-regressed", V4: "v4-slow"}
ROLE_LABEL = "modelratchet.io/role"  # the operator's canary pods carry role=canary
IMAGE = "modelratchet/digits-server:0.1.0"  # run by the supervisor as the local stand-in (dataplane.py)
PORT = 8080

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
    model: str, *, accuracy_ratio: float = 0.10, latency_ratio: float = 1.0, min_samples: int = 40
) -> dict[str, Any]:
    """Accuracy against the stable checkpoint side by side (critical) and p90 latency (warning).

    The threshold judge compares two estimates, each from as few as ``min_samples`` labelled answers (the first
    look of a traffic step has a 2 s window): at 5% a better candidate (live about 0.98) against v1 (about 0.91)
    failed now and then when v1's small sample happened to be perfect. 10% keeps that out of reach while the
    regressed v3 (about 0.70) still fails every look."""
    return {
        "model": model,
        "metrics": [
            {
                "name": "accuracy",
                "description": f"At most {accuracy_ratio:.0%} below the stable checkpoint, measured side by side",
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


def serving_deployment(
    name: str, checkpoint: str, replicas: int, *, model: str, store: Path, rollout: str | None = "digits"
) -> dict[str, Any]:
    """A Deployment whose pods really serve on the data plane: the digits image's entrypoint run by the
    supervisor, MODEL_CHECKPOINT resolved in the model store, readiness from /healthz.

    The stable pods carry role=stable in their labels and the selector, so a Service can select them alone;
    the operator's canary (same labels, role=canary) is never claimed by this Deployment.
    """
    annotations = {OPT_IN_ANNOTATION: rollout} if rollout else {}
    labels = {"app": name, ROLE_LABEL: "stable"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, SERVE_LABEL: "true"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "server",
                            "image": IMAGE,
                            "env": [
                                {"name": "MODEL_CHECKPOINT", "value": checkpoint},
                                # A volume synced from the bucket, in a real cluster.
                                {"name": "MODEL_STORE", "value": str(store)},
                                {"name": "MODEL_NAME", "value": model},
                            ],
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1,
                                               "failureThreshold": 2},
                        }
                    ],
                },
            },
        },
    }


def service(name: str, selector: Mapping[str, str], port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": dict(selector), "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }


def http_route(
    name: str, hostnames: Iterable[str], parent_ref: Mapping[str, str], rules: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """An HTTPRoute; a rule is {"matches": [...], "backendRefs": [{"name": svc, "port": 80, "weight": 95}, ...]}."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [dict(parent_ref)], "hostnames": list(hostnames), "rules": [dict(r) for r in rules]},
    }


_MODEL_IO_LOCK = threading.Lock()


def _model_io() -> ModuleType:
    """The example's model_io (its folder is not a package): the one place that maps a URI into a store.

    Registered as `model_io`, the name the example's own modules and tests import it by. Loaded under a lock: it is
    registered before it is executed, and another thread must not find it half made."""
    with _MODEL_IO_LOCK:
        if "model_io" not in sys.modules:
            spec = importlib.util.spec_from_file_location("model_io", EXAMPLE_DIR / "model_io.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules["model_io"] = module  # dataclasses look their module up while the class is made
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules["model_io"]
                raise
        return sys.modules["model_io"]


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
        data_plane: DataPlane | None = None,
    ) -> None:
        self.api = api
        self.ns = namespace
        self.prometheus = prometheus
        self.model = model
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.files = {label: checkpoint_file(CHECKPOINT_FILES[label]) for label in checkpoints}
        # Loopback servers, used only without a data plane.
        self.fleet = ModelServerFleet(self.files, model=model, log_dir=log_dir)
        self.data_plane = data_plane
        self.traffic: TrafficDriver | None = None
        self.target = "digits-serving"
        self.stable_service = f"{self.target}-stable"
        self.route = self.target
        self.host = f"{namespace}.digits.test"  # the HTTPRoute's hostname: the Host header of its requests
        self.store = (log_dir or Path(tempfile.mkdtemp(prefix="modelratchet-store-"))) / "model-store"

    # ---------------------------------------------------------------- servers

    def start_servers(self) -> None:
        """Makes every checkpoint servable: files in the model store (data plane) or one server each (loopback)."""
        if self.data_plane is not None:
            for label, path in self.files.items():
                self.publish(label, path)
            return
        self.fleet.start()
        for label, address in self.fleet.addresses().items():
            self.prometheus.add_target(self._job(label), address, {"namespace": self.ns})

    def publish(self, label: str, path: Path) -> Path:
        """Puts a checkpoint file into the model store under the URI `label` (replacing what was there)."""
        dest: Path = _model_io().store_path(label, self.store)
        dest = dest.with_name(dest.name + ".npz")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(dest)  # a pod starting now reads the old file or the new one, never half of one
        return dest

    def _job(self, label: str) -> str:
        return f"{self.ns}-{label.rsplit('/', 1)[-1]}"

    def stop_server(self, label: str) -> None:
        """The checkpoint can no longer be served: its server stops (loopback) or it leaves the model store, so
        pods started on it from now on fail (data plane)."""
        if self.data_plane is not None:
            dest = _model_io().store_path(label, self.store)
            dest.with_name(dest.name + ".npz").unlink(missing_ok=True)
            return
        self.fleet.remove(label)

    def replace_checkpoint(self, label: str, file_name: str) -> None:
        """What is behind the URI `label` changes to the shipped checkpoint `file_name` (e.g. "v3-regressed"),
        and every server of `label` starts serving it: its pods restart (data plane) or its server is replaced
        (loopback). The metrics keep the label, so a regression shows under the same checkpoint."""
        if self.data_plane is None:
            self.prometheus.remove_target(self._job(label))
            self.fleet.remove(label)
            address = self.fleet.add(label, checkpoint_file(file_name))
            self.prometheus.add_target(self._job(label), address, {"namespace": self.ns})
            return
        self.publish(label, checkpoint_file(file_name))
        doomed = [p for p in self._serving_pods() if self._pod_checkpoint(p) == label]
        for pod in doomed:
            try:
                self.core.delete_namespaced_pod(pod["metadata"]["name"], self.ns, grace_period_seconds=0)
            except ApiException as e:
                if e.status != 404:  # gone already (a canary being removed)
                    raise
        names = {p["metadata"]["name"] for p in doomed}
        wait_for(lambda: not names & {p["metadata"]["name"] for p in self._serving_pods()}, timeout=60,
                 message=f"pods of {label} replaced")

    def deploy_target(
        self,
        checkpoint: str = V1,
        replicas: int = 3,
        *,
        rollout: str | None = "digits",
        route_service: str | None = None,
    ) -> None:
        """The target Deployment and its Service(s); with a data plane also `<target>-stable` and the HTTPRoute,
        whose single rule sends everything to `route_service` (default: `<target>`, stable and canary pods)."""
        if self.data_plane is None:
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
            return
        # The client takes plain dicts as bodies; its stubs only name the model classes.
        self.apps.create_namespaced_deployment(
            self.ns, serving_deployment(self.target, checkpoint, replicas, model=self.model, store=self.store,  # type: ignore[arg-type]
                                        rollout=rollout))
        self.core.create_namespaced_service(self.ns, service(self.target, {"app": self.target}))  # type: ignore[arg-type]
        self.core.create_namespaced_service(
            self.ns, service(self.stable_service, {"app": self.target, ROLE_LABEL: "stable"}))  # type: ignore[arg-type]
        self.apply_route([{"backendRefs": [{"name": route_service or self.target, "port": 80}]}])
        # Available now means the processes answer /healthz: readiness comes from the supervisor's probe.
        wait_for(lambda: self.target_available(), timeout=90, message=f"{self.target} Available")
        self.data_plane.wait_routed(self.host)

    def apply_route(self, rules: Iterable[Mapping[str, Any]], *, name: str | None = None,
                    hostnames: Iterable[str] | None = None) -> dict[str, Any]:
        """Creates or replaces an HTTPRoute (default: `route`, hostname `host`) on the data plane's gateway and
        waits until Traefik accepted it with all backends resolved; returns its conditions by type."""
        assert self.data_plane is not None, "HTTPRoutes need the data plane"
        route = http_route(name or self.route, hostnames or [self.host], self.data_plane.parent_ref(), rules)
        route["metadata"]["namespace"] = self.ns
        self.data_plane.gateway.apply([route])
        return self.data_plane.gateway.wait_route(self.ns, route["metadata"]["name"])

    def start_traffic(
        self,
        rate: float = 120.0,
        max_duration: float = 600.0,
        *,
        headers: Mapping[str, str] | Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        """Labelled /predict traffic: through the gateway to `host` (data plane; `headers` on each request, or
        per request number), or split by ready replicas over the loopback servers."""
        if self.data_plane is not None:
            self.traffic = GatewayTrafficDriver(self.data_plane.url, self.host, headers=headers, rate=rate,
                                                max_duration=max_duration)
        else:
            weights = kube_weights(self.api, self.ns, [self.target, f"{self.target}-canary"])
            self.traffic = TrafficDriver(self.fleet.urls, weights, rate=rate, max_duration=max_duration)
        self.traffic.start()

    def answers(self) -> dict[str, int]:
        """Requests answered per checkpoint so far, as the traffic driver (the client) saw them."""
        return self.traffic.stats().answered() if self.traffic else {}

    def served(self) -> dict[str, float]:
        """Requests each checkpoint's servers received (model_predictions_total), summed over the namespace's
        serving pods by the checkpoint each one loaded: mirrored copies count here, not in answers().
        Read from the pods directly, so there is no scrape delay; a restarted pod starts again from zero."""
        assert self.data_plane is not None, "served() reads the pods of the data plane"
        totals: dict[str, float] = {}
        for pod in self._serving_pods():
            ip = pod["status"].get("podIP")
            checkpoint = self._pod_checkpoint(pod)
            if not ip or checkpoint is None:
                continue
            try:
                metrics = scrape_metrics(f"http://{ip}:{PORT}", timeout=5)
            except OSError:
                continue  # not listening (yet, or any more)
            totals[checkpoint] = totals.get(checkpoint, 0.0) + metrics.get("model_predictions_total", 0.0)
        return totals

    def _serving_pods(self) -> list[dict[str, Any]]:
        resp: Any = self.core.list_namespaced_pod(self.ns, label_selector=f"{SERVE_LABEL}=true", _preload_content=False)
        return [p for p in json.loads(resp.data)["items"] if not p["metadata"].get("deletionTimestamp")]

    @staticmethod
    def _pod_checkpoint(pod: Mapping[str, Any]) -> str | None:
        for c in pod["spec"]["containers"]:
            for e in c.get("env") or []:
                if e["name"] == "MODEL_CHECKPOINT":
                    return str(e.get("value"))
        return None

    def close(self) -> None:
        if self.traffic:
            self.traffic.stop()
        if self.data_plane is not None:
            # Stop the pods now rather than whenever the namespace is finalized: their processes hold memory.
            # Rollouts go first, so the operator does not make another canary meanwhile.
            try:
                self.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, self.ns, "modelrollouts")
            except ApiException as e:
                if e.status != 404:
                    raise
            self.apps.delete_collection_namespaced_deployment(self.ns, propagation_policy="Background")
            # Once all are terminating, their processes stop within the supervisor's drain delay.
            plane = self.data_plane
            wait_for(lambda: not [p for p in plane.pods() if p["namespace"] == self.ns and not p["terminating"]],
                     timeout=60, message=f"the pods of {self.ns} to terminate")
            return
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
            history = status.pop("history", None) or []
            raise TimeoutError(
                f"{e}\nstatus: {json.dumps(status, indent=1)}\nhistory, newest first:\n{_history_lines(history)}"
            ) from None
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


def _history_lines(history: list[dict[str, Any]]) -> str:
    """One line per analysis and one per metric in it: what a failed wait needs to tell noise from a bug."""
    lines = []
    for h in history:
        lines.append(
            f"#{h.get('id')} {h.get('time')} (window from {h.get('windowStart')}) step {h.get('step')} "
            f"{h.get('checkpoint')}: {h.get('verdict')}"
        )
        for m in h.get("metrics") or []:
            fields = ("outcome", "value", "baseline", "severity", "message")
            figures = {f"judge.{k}": v for k, v in (m.get("judge") or {}).items() if k in ("judge", "samples")}
            shown = {**{k: m[k] for k in fields if k in m}, **figures}
            lines.append("    " + m.get("metric", "?") + " " + " ".join(f"{k}={v}" for k, v in shown.items()))
    return "\n".join(lines) or "(none)"
