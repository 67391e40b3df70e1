"""The systems under comparison, each driven from its config file in this folder and read back from its status.

A system deploys the stable checkpoint into a fresh namespace (target, Service, HTTPRoute through the gateway),
starts a rollout of a candidate, and says where the rollout is: "progressing", "promoted" or "rolled back". Both
read their configs from bench/peers/*.yaml and change only the fields marked "set per run" there.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes.client.exceptions import ApiException

from e2e.harness.scenario import Scenario, service
from e2e.harness.wait import wait_for

HERE = Path(__file__).resolve().parent
PROGRESSING, PROMOTED, ROLLED_BACK = "progressing", "promoted", "rolled back"
ARGO = ("argoproj.io", "v1alpha1")
FLAGGER = ("flagger.app", "v1beta1")
MR = ("modelratchet.io", "v1alpha1")


def config(name: str) -> dict[str, dict[str, Any]]:
    """The documents of bench/peers/<name>.yaml by kind."""
    return {d["kind"]: d for d in yaml.safe_load_all((HERE / name).read_text()) if d}


@dataclass
class Progress:
    state: str
    detail: str  # what the system says about it (its status message)


class System(Protocol):
    name: str

    def deploy(self, sc: Scenario, stable: str) -> None: ...

    def roll_out(self, sc: Scenario, stable: str, candidate: str) -> None: ...

    def progress(self, sc: Scenario, candidate: str) -> Progress: ...

    def close(self, sc: Scenario) -> None: ...


def _env(container: dict[str, Any], values: dict[str, str]) -> None:
    for e in container["env"]:
        if e["name"] in values:
            e["value"] = values[e["name"]]


class ModelRatchet:
    name = "ModelRatchet"

    def __init__(self) -> None:
        self.docs = config("modelratchet.yaml")

    def deploy(self, sc: Scenario, stable: str) -> None:
        sc.deploy_target(stable, replicas=3)
        baseline = copy.deepcopy(self.docs["ModelBaseline"])
        baseline["spec"]["model"] = sc.model
        sc.create("modelbaselines", baseline["metadata"]["name"], baseline["spec"])

    def roll_out(self, sc: Scenario, stable: str, candidate: str) -> None:
        rollout = copy.deepcopy(self.docs["ModelRollout"])
        rollout["spec"]["targetRef"]["name"] = sc.target
        rollout["spec"]["checkpoint"] = candidate
        sc.create("modelrollouts", rollout["metadata"]["name"], rollout["spec"])

    def progress(self, sc: Scenario, candidate: str) -> Progress:
        status = sc.status(self.docs["ModelRollout"]["metadata"]["name"])
        phase, message = status.get("phase"), str(status.get("message") or "")
        if phase == "Promoted" and status.get("stableCheckpoint") == candidate:
            return Progress(PROMOTED, message)
        if phase in ("RolledBack", "Failed"):
            return Progress(ROLLED_BACK, message)
        return Progress(PROGRESSING, message)

    def analyses(self, sc: Scenario) -> list[str]:
        """Verdicts of the analyses, oldest first."""
        history = sc.status(self.docs["ModelRollout"]["metadata"]["name"]).get("history") or []
        return [str(h.get("verdict")) for h in reversed(history)]

    def close(self, sc: Scenario) -> None:
        sc.close()


class ArgoRollouts:
    name = "Argo Rollouts"

    def __init__(self, prometheus_url: str) -> None:
        self.docs = config("argo-rollouts.yaml")
        self.prometheus_url = prometheus_url
        self.rollout_name = self.docs["Rollout"]["metadata"]["name"]

    def _get(self, sc: Scenario) -> dict[str, Any]:
        resp: Any = sc.custom.get_namespaced_custom_object(*ARGO, sc.ns, "rollouts", self.rollout_name,
                                                           _preload_content=False)
        return dict(json.loads(resp.data))

    def deploy(self, sc: Scenario, stable: str) -> None:
        assert sc.data_plane is not None
        template = copy.deepcopy(self.docs["AnalysisTemplate"])
        template["spec"]["metrics"][0]["provider"]["prometheus"]["address"] = self.prometheus_url
        sc.custom.create_namespaced_custom_object(*ARGO, sc.ns, "analysistemplates", template)
        rollout = copy.deepcopy(self.docs["Rollout"])
        rollout["metadata"]["name"] = sc.target
        self.rollout_name = sc.target
        spec = rollout["spec"]
        spec["selector"]["matchLabels"] = {"app": sc.target}
        spec["template"]["metadata"]["labels"]["app"] = sc.target
        _env(spec["template"]["spec"]["containers"][0],
             {"MODEL_CHECKPOINT": stable, "MODEL_STORE": str(sc.store), "MODEL_NAME": sc.model})
        self._set_args(spec, stable, stable, sc.model)
        sc.custom.create_namespaced_custom_object(*ARGO, sc.ns, "rollouts", rollout)
        # The gateway sends everything to one Service over all pods: the split is the share of pods.
        sc.core.create_namespaced_service(sc.ns, service(sc.target, {"app": sc.target}))  # type: ignore[arg-type]
        sc.apply_route([{"backendRefs": [{"name": sc.target, "port": 80}]}])
        replicas = spec["replicas"]
        wait_for(lambda: self._healthy(self._get(sc), replicas), timeout=120, message=f"Rollout {sc.target} Healthy")
        sc.data_plane.wait_routed(sc.host)

    @staticmethod
    def _set_args(spec: dict[str, Any], stable: str, candidate: str, model: str) -> None:
        analysis = next(s["analysis"] for s in spec["strategy"]["canary"]["steps"] if "analysis" in s)
        values = {"model": model, "canary": candidate, "stable": stable}
        for arg in analysis["args"]:
            arg["value"] = values[arg["name"]]

    @staticmethod
    def _healthy(obj: dict[str, Any], replicas: int) -> bool:
        st = obj.get("status") or {}
        return bool(st.get("phase") == "Healthy" and str(st.get("observedGeneration")) ==
                    str(obj["metadata"]["generation"]) and st.get("availableReplicas") == replicas
                    and st.get("stableRS") == st.get("currentPodHash"))

    def roll_out(self, sc: Scenario, stable: str, candidate: str) -> None:
        obj = self._get(sc)
        spec = obj["spec"]
        _env(spec["template"]["spec"]["containers"][0], {"MODEL_CHECKPOINT": candidate})
        self._set_args(spec, stable, candidate, sc.model)
        sc.custom.replace_namespaced_custom_object(*ARGO, sc.ns, "rollouts", self.rollout_name, obj)

    def progress(self, sc: Scenario, candidate: str) -> Progress:
        obj = self._get(sc)
        st = obj.get("status") or {}
        message = str(st.get("message") or "")
        if st.get("abort"):
            return Progress(ROLLED_BACK, message)
        if self._healthy(obj, obj["spec"]["replicas"]):
            return Progress(PROMOTED, message)
        return Progress(PROGRESSING, message)

    def analyses(self, sc: Scenario) -> list[str]:
        """Phases of the measurements of this namespace's AnalysisRuns, oldest first."""
        resp: Any = sc.custom.list_namespaced_custom_object(*ARGO, sc.ns, "analysisruns", _preload_content=False)
        runs = json.loads(resp.data)["items"]
        return [m.get("phase", "") for run in sorted(runs, key=lambda r: r["metadata"]["creationTimestamp"])
                for result in (run.get("status") or {}).get("metricResults") or []
                for m in result.get("measurements") or []]

    def close(self, sc: Scenario) -> None:
        try:
            sc.custom.delete_collection_namespaced_custom_object(*ARGO, sc.ns, "rollouts")
        except ApiException as e:
            if e.status != 404:
                raise
        sc.close()


class Flagger:
    """Flagger's Gateway API canary: it copies the target to `<name>-primary`, makes the HTTPRoute `<name>` on the
    gateway with the primary and canary Services as weighted backends, and moves the weights itself."""

    name = "Flagger"

    def __init__(self, prometheus_url: str) -> None:
        self.docs = config("flagger.yaml")
        self.prometheus_url = prometheus_url
        self.canary_name = self.docs["Canary"]["metadata"]["name"]

    def get(self, sc: Scenario) -> dict[str, Any]:
        resp: Any = sc.custom.get_namespaced_custom_object(*FLAGGER, sc.ns, "canaries", self.canary_name,
                                                           _preload_content=False)
        return dict(json.loads(resp.data))

    def deploy(self, sc: Scenario, stable: str) -> None:
        assert sc.data_plane is not None
        template = copy.deepcopy(self.docs["MetricTemplate"])
        template["spec"]["provider"]["address"] = self.prometheus_url
        sc.custom.create_namespaced_custom_object(*FLAGGER, sc.ns, "metrictemplates", template)
        target = copy.deepcopy(self.docs["Deployment"])
        _env(target["spec"]["template"]["spec"]["containers"][0],
             {"MODEL_CHECKPOINT": stable, "MODEL_STORE": str(sc.store), "MODEL_NAME": sc.model})
        sc.apps.create_namespaced_deployment(sc.ns, target)  # type: ignore[arg-type]
        canary = copy.deepcopy(self.docs["Canary"])
        service_spec = canary["spec"]["service"]
        service_spec["hosts"] = [sc.host]
        parent = sc.data_plane.parent_ref()
        service_spec["gatewayRefs"] = [{k: parent[k] for k in ("name", "namespace", "sectionName")}]
        self._set_variables(canary, sc.model, stable, stable)
        sc.custom.create_namespaced_custom_object(*FLAGGER, sc.ns, "canaries", canary)
        # Initialized: the primary serves, the target is scaled to zero, the HTTPRoute sends it all.
        wait_for(lambda: (self.get(sc).get("status") or {}).get("phase") == "Initialized", timeout=120,
                 message=f"Canary {sc.ns}/{self.canary_name} Initialized")
        sc.data_plane.gateway.wait_route(sc.ns, self.canary_name)
        sc.data_plane.wait_routed(sc.host)

    @staticmethod
    def _set_variables(canary: dict[str, Any], model: str, stable: str, candidate: str) -> None:
        metric = canary["spec"]["analysis"]["metrics"][0]
        metric["templateVariables"] = {"model": model, "canary": candidate, "stable": stable}

    def roll_out(self, sc: Scenario, stable: str, candidate: str) -> None:
        # The query's checkpoints first (Flagger reads them at each check), then the revision it detects.
        canary = self.get(sc)
        self._set_variables(canary, sc.model, stable, candidate)
        sc.custom.replace_namespaced_custom_object(*FLAGGER, sc.ns, "canaries", self.canary_name, canary)
        sc.apps.patch_namespaced_deployment(
            self.docs["Deployment"]["metadata"]["name"], sc.ns,
            {"spec": {"template": {"spec": {"containers": [
                {"name": "server", "env": [{"name": "MODEL_CHECKPOINT", "value": candidate}]}]}}}})

    def progress(self, sc: Scenario, candidate: str) -> Progress:
        status = self.get(sc).get("status") or {}
        phase = status.get("phase")
        message = next((str(c.get("message")) for c in status.get("conditions") or [] if c.get("type") == "Promoted"),
                       "")
        detail = f"{phase}: weight {status.get('canaryWeight', 0)}, failed checks {status.get('failedChecks', 0)}; "
        if phase == "Succeeded":
            return Progress(PROMOTED, detail + message)
        if phase == "Failed":
            return Progress(ROLLED_BACK, detail + message)
        return Progress(PROGRESSING, detail + message)

    def analyses(self, sc: Scenario) -> list[str]:
        """Flagger keeps no record of its checks in status: the Warning and Normal events on the Canary, in order."""
        events = sc.core.list_namespaced_event(sc.ns, field_selector=f"involvedObject.name={self.canary_name},"
                                                                    "involvedObject.kind=Canary")
        ordered = sorted(events.items, key=lambda e: str(e.first_timestamp or e.event_time or ""))
        return [f"{e.message}" + (f" (x{e.count})" if (e.count or 1) > 1 else "") for e in ordered]

    def close(self, sc: Scenario) -> None:
        try:  # the Canary first, so that Flagger makes no more objects; its primary goes with the Deployments
            sc.custom.delete_collection_namespaced_custom_object(*FLAGGER, sc.ns, "canaries")
        except ApiException as e:
            if e.status != 404:
                raise
        sc.close()


def candidate_pods(sc: Scenario, candidate: str) -> int:
    """Pods of the candidate that are not on their way out (their Ready state aside)."""
    return sum(1 for p in sc._serving_pods() if sc._pod_checkpoint(p) == candidate)

