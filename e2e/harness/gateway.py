"""A real gateway for the local cluster: Traefik v3 on loopback with its Gateway API and kubernetescrd providers.

What `LocalGateway.install()` puts into the cluster, all from pinned module versions (the module cache or the Go
module proxy, through `go mod download` in e2e/components/traefik, so go.sum checks every file):

- the standard-channel Gateway API CRDs of sigs.k8s.io/gateway-api at the version Traefik's go.mod requires
  (v1.4.0, config/crd/standard/*.yaml);
- Traefik's own CRDs (traefik.io: TraefikService, Middleware, ...) from the traefik module's
  docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml;
- a ServiceAccount `traefik` in namespace `modelratchet-gateway`, bound to one ClusterRole with the rules of
  the module's kubernetes-gateway-rbac.yml and kubernetes-crd-rbac.yml (Traefik authenticates with a token of it);
- GatewayClass `traefik` (controllerName traefik.io/gateway-controller) and Gateway `modelratchet-gateway/local`
  with one HTTP listener `web` whose port is the port of Traefik's entrypoint `web`, routes from all namespaces.

Traefik runs outside the cluster with a static config file (the token stays out of argv), reaches pods at their
EndpointSlice addresses through the pod network's veth, never checks for new versions and sends no usage data.
Its API (/api/rawdata), /ping and Prometheus /metrics are on the `traefik` entrypoint, also on loopback.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from e2e.build import go_env
from e2e.harness import procs
from e2e.harness.cluster import LocalCluster, free_port
from e2e.harness.components import COMPONENTS, bin_path, required_version
from e2e.harness.wait import wait_for

LOOPBACK = "127.0.0.1"
NAMESPACE = "modelratchet-gateway"
GATEWAY_CLASS = "traefik"
GATEWAY = "local"
LISTENER = "web"
CONTROLLER = "traefik.io/gateway-controller"
SERVICE_ACCOUNT = "traefik"
CLUSTER_ROLE = "modelratchet-traefik"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
TRAEFIK_DOCS = "docs/content/reference/dynamic-configuration"
_HTTP_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError)


def module_dir(module: str, version: str) -> Path:
    """Source of a module pinned by the traefik wrapper's go.sum (from the module cache, else the proxy)."""
    comp = COMPONENTS["traefik"]
    proc = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=comp.dir, env=go_env(),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"go mod download {module}@{version}: {proc.stdout.strip()} {proc.stderr.strip()}")
    return Path(json.loads(proc.stdout)["Dir"])


def gateway_api_version() -> str:
    return required_version(COMPONENTS["traefik"].dir / "go.mod", GATEWAY_API_MODULE)


def gateway_api_crds() -> list[Path]:
    """The standard channel: GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant, BackendTLSPolicy."""
    crds = sorted((module_dir(GATEWAY_API_MODULE, gateway_api_version()) / "config/crd/standard").glob("*.yaml"))
    if not crds:
        raise RuntimeError(f"no CRDs in {GATEWAY_API_MODULE}@{gateway_api_version()} config/crd/standard")
    return crds


def traefik_docs() -> Path:
    comp = COMPONENTS["traefik"]
    return module_dir(comp.module, comp.version) / TRAEFIK_DOCS


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def rbac(docs_dir: Path) -> list[dict[str, Any]]:
    """One ClusterRole with the rules of Traefik's Gateway API and CRD providers, bound to our ServiceAccount."""
    rules = [
        rule
        for name in ("kubernetes-gateway-rbac.yml", "kubernetes-crd-rbac.yml")
        for doc in _docs(docs_dir / name)
        if doc["kind"] == "ClusterRole"
        for rule in doc["rules"]
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": CLUSTER_ROLE},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": CLUSTER_ROLE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]},
    ]


def gateway_objects(port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": GATEWAY_CLASS},
         "spec": {"controllerName": CONTROLLER}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
         "spec": {"gatewayClassName": GATEWAY_CLASS,
                  "listeners": [{"name": LISTENER, "protocol": "HTTP", "port": port,
                                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
    ]


def _condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


class LocalGateway:
    """Traefik on 127.0.0.1:<port> serving the Gateway `modelratchet-gateway/local`."""

    def __init__(self, cluster: LocalCluster, run_dir: Path, *, owned: bool = True) -> None:
        self.cluster = cluster
        self.run_dir = run_dir
        self.owned = owned
        self.binary = bin_path("traefik")
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.admin_url = f"http://{LOOPBACK}:{self.admin_port}"
        self.log_file = run_dir / "traefik.log"
        self.log_level = "INFO"
        self._proc: procs.ManagedProcess | None = None

    @property
    def parent_ref(self) -> dict[str, str]:
        """What an HTTPRoute's `parentRefs` names to attach to this gateway."""
        return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": NAMESPACE, "name": GATEWAY,
                "sectionName": LISTENER}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    # --- cluster objects ---------------------------------------------------------------------------------------

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> None:
        manifest = "\n---\n".join(json.dumps(o) for o in objects)
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=modelratchet-e2e",
                             "-f", "-", input=manifest)

    def install(self) -> None:
        """CRDs (Gateway API standard channel, traefik.io) and the RBAC Traefik runs with."""
        docs = traefik_docs()
        crd_files = [*gateway_api_crds(), docs / "kubernetes-crd-definition-v1.yml"]
        args = [a for f in crd_files for a in ("-f", str(f))]
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=modelratchet-e2e", *args)
        names = [d["metadata"]["name"] for f in crd_files for d in _docs(f) if d["kind"] == "CustomResourceDefinition"]
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
        self.apply(rbac(docs))

    def _static_config(self) -> Path:
        """Traefik reads its static configuration from one source only: this file (it holds the token)."""
        token = self.cluster.kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE,
                                     "--duration=24h").stdout.strip()
        ca = self.run_dir / "cluster-ca.crt"
        config = json.loads(self.cluster.kubeconfig.read_text())
        ca.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
        kube = {"endpoint": self.cluster.server, "token": token, "certAuthFilePath": str(ca)}
        static = {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {"web": {"address": f"{LOOPBACK}:{self.port}"},
                            "traefik": {"address": f"{LOOPBACK}:{self.admin_port}"}},
            "ping": {},
            "api": {"insecure": True, "dashboard": False},
            "metrics": {"prometheus": {"addServicesLabels": True, "addRoutersLabels": True}},
            "log": {"level": self.log_level, "noColor": True},
            # Route changes reach the data plane within half a second instead of Traefik's default 2 s.
            "providers": {
                "providersThrottleDuration": "500ms",
                "kubernetesGateway": {**kube, "statusAddress": {"ip": LOOPBACK}},
                # An empty Service answers 503 instead of removing the TraefikService that names it.
                "kubernetesCRD": {**kube, "allowEmptyServices": True},
            },
        }
        path = self.run_dir / "traefik.yml"
        path.touch(mode=0o600)
        path.write_text(json.dumps(static, indent=2))
        return path

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        if self._proc is not None and self._proc.alive():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(self.binary), f"--configFile={self._static_config()}"]
        self._proc = procs.start("traefik", argv, log=self.log_file, pidfile=self.run_dir / "traefik.pid",
                                 die_with_parent=self.owned)
        if self.owned:
            procs.stop_at_exit(self._proc)
        wait_for(self._pinged, timeout, interval=0.1, message=f"traefik /ping at {self.admin_url}",
                 ignore=_HTTP_ERRORS)
        self.apply(gateway_objects(self.port))
        wait_for(self._programmed, timeout, interval=0.2, message=f"Gateway {NAMESPACE}/{GATEWAY} Programmed")

    def stop(self, timeout: float = 15.0) -> None:
        procs.stop_one(self._proc, timeout)
        self._proc = None

    def _check_running(self) -> None:
        if self._proc is None or not self._proc.alive():
            raise RuntimeError(f"traefik is not running; last lines of {self.log_file}:\n{procs.tail(self.log_file)}")

    def _pinged(self) -> bool:
        self._check_running()
        with urllib.request.urlopen(f"{self.admin_url}/ping", timeout=2) as resp:
            return bool(resp.status == 200)

    def _programmed(self) -> bool:
        self._check_running()
        gw = json.loads(self.cluster.kubectl("get", "gateway", GATEWAY, "-n", NAMESPACE, "-o", "json").stdout)
        return all(_condition(gw, t).get("status") == "True" for t in ("Accepted", "Programmed"))

    # --- what tests look at ------------------------------------------------------------------------------------

    def rawdata(self) -> dict[str, Any]:
        """Traefik's live dynamic configuration: routers, services and middlewares, with their status."""
        with urllib.request.urlopen(f"{self.admin_url}/api/rawdata", timeout=5) as resp:
            return dict(json.loads(resp.read()))

    def route_conditions(self, namespace: str, name: str) -> dict[str, dict[str, Any]]:
        """The conditions Traefik wrote on an HTTPRoute for this gateway, by type."""
        route = json.loads(self.cluster.kubectl("get", "httproute", name, "-n", namespace, "-o", "json").stdout)
        for parent in (route.get("status") or {}).get("parents") or []:
            if parent.get("controllerName") == CONTROLLER:
                return {c["type"]: c for c in parent.get("conditions") or []}
        return {}

    def wait_route(self, namespace: str, name: str, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Waits until Traefik accepted the HTTPRoute (at its current generation) and resolved its backends."""
        generation = None

        def accepted() -> dict[str, dict[str, Any]] | None:
            nonlocal generation
            route = json.loads(self.cluster.kubectl("get", "httproute", name, "-n", namespace, "-o", "json").stdout)
            generation = route["metadata"]["generation"]
            conditions = self.route_conditions(namespace, name)
            ok = all(conditions.get(t, {}).get("status") == "True" and
                     conditions[t].get("observedGeneration") == generation for t in ("Accepted", "ResolvedRefs"))
            return conditions if ok else None

        result = wait_for(accepted, timeout, interval=0.2, message=f"HTTPRoute {namespace}/{name} accepted by Traefik")
        assert result is not None
        return result

    def metrics_target(self) -> str:
        """host:port of Traefik's Prometheus /metrics."""
        return f"{LOOPBACK}:{self.admin_port}"
