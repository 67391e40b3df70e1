"""The Helm chart: lint, schema, rendered manifests against the cluster's own API schemas, install, and
least privilege proven by running the real operator as the chart's ServiceAccount.

Manifests are validated offline with kubeconform against JSON schemas generated from the live API
server's OpenAPI v3 documents (`kubectl get --raw /openapi/v3/...`), made strict (unknown fields are
errors); `helm install` then has the API server itself accept every object.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness.cluster import LocalCluster
from e2e.harness.components import REPO_ROOT
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import V1, V2, V3, Scenario, digits_baseline, rollout_spec
from e2e.harness.wait import wait_for

pytestmark = pytest.mark.integration

CHART = REPO_ROOT / "charts" / "modelratchet"
MANIFESTS = REPO_ROOT / "deploy" / "manifests"

VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "cluster-scope": ["--set", "rbac.scope=cluster"],
    "replicas-2": ["--set", "replicaCount=2"],
    "namespace-scope": ["--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a,team-b}"],
    "service-monitor": ["--set", "serviceMonitor.enabled=true"],
    "prometheus-auth": [
        "--set", "prometheus.address=https://prometheus.example:9091",
        "--set", "prometheus.bearerToken.secretName=prometheus-token",
        "--set", "prometheus.ca.secretName=prometheus-ca",
        "--set", "rbac.readSecrets=false",
    ],
}


# ---------------------------------------------------------------------------------------------- helpers


def _run(cmd: list[str | Path], check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _helm(cluster: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([cluster.bin("helm"), f"--kubeconfig={cluster.kubeconfig}", *args], check=check)


@pytest.fixture(scope="module")
def kube_version(local_cluster: LocalCluster) -> str:
    info = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    return str(info["serverVersion"]["gitVersion"])


def _template(cluster: LocalCluster, kube_version: str, *args: str, check: bool = True) -> Any:
    # --kube-version: Capabilities come from the real cluster, not the helm build's default.
    return _helm(
        cluster, "template", "mr", str(CHART), "--namespace", "modelratchet-system",
        "--kube-version", kube_version, *args, check=check,
    )


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# ------------------------------------------------------------------------------------ schemas for kubeconform


def _schema_name(api_version: str, kind: str) -> str:
    """kubeconform's default file name: {{ .ResourceKind }}{{ .KindSuffix }}.json."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def _strict(schema: Any) -> Any:
    """Unknown fields become errors, as in kubeconform's `-strict` schemas."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[1]
        for v in schema.values():
            yield from _refs(v)
    elif isinstance(schema, list):
        for v in schema:
            yield from _refs(v)


class KubeSchemas:
    """Standalone JSON schemas per kind, generated on demand from the API server's OpenAPI v3."""

    def __init__(self, cluster: LocalCluster, directory: Path) -> None:
        self.cluster = cluster
        self.dir = directory
        self._docs: dict[str, dict[str, Any]] = {}

    def _openapi(self, api_version: str) -> dict[str, Any]:
        path = f"/openapi/v3/api/{api_version}" if "/" not in api_version else f"/openapi/v3/apis/{api_version}"
        if path not in self._docs:
            self._docs[path] = json.loads(self.cluster.kubectl("get", "--raw", path).stdout)
        return self._docs[path]

    def ensure(self, api_version: str, kind: str) -> bool:
        """Writes the schema of a built-in kind; False when the API server does not serve it."""
        target = self.dir / _schema_name(api_version, kind)
        if target.exists():
            return True
        group, _, version = api_version.rpartition("/")
        try:
            schemas = self._openapi(api_version)["components"]["schemas"]
        except subprocess.CalledProcessError:
            return False
        root = next(
            (
                name
                for name, s in schemas.items()
                if {"group": group, "version": version, "kind": kind} in s.get("x-kubernetes-group-version-kind", [])
            ),
            None,
        )
        if root is None:
            return False
        # Only the definitions this kind reaches, kept under the same JSON pointer so $refs resolve.
        needed, todo = set(), [root]
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo.extend(_refs(schemas[name]))
        doc = _strict(schemas[root])
        doc["components"] = {"schemas": {n: _strict(schemas[n]) for n in sorted(needed)}}
        target.write_text(json.dumps(doc))
        return True


@pytest.fixture(scope="module")
def kube_schemas(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> KubeSchemas:
    return KubeSchemas(local_cluster, tmp_path_factory.mktemp("kube-schemas"))


def _kubeconform(cluster: LocalCluster, schemas: KubeSchemas, manifests: str) -> subprocess.CompletedProcess[str]:
    docs = _docs(manifests)
    missing = sorted({d["kind"] for d in docs if not schemas.ensure(d["apiVersion"], d["kind"])})
    # Kinds the cluster does not serve (the Prometheus Operator's ServiceMonitor) are checked by hand below.
    skip = ["-skip", ",".join(missing)] if missing else []
    return _run(
        [
            cluster.bin("kubeconform"), "-strict", "-summary", "-output", "text",
            "-schema-location", str(schemas.dir / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
            *skip, "-",
        ],
        check=False,
        input=manifests,
    )


# ------------------------------------------------------------------------------------------- static checks


def test_chart_crds_are_copies_of_the_generated_crds() -> None:
    upstream = {p.name: p.read_bytes() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert upstream, "no generated CRDs in crds/"
    assert chart == upstream, "charts/modelratchet/crds/ differs from crds/: run charts/sync-crds.sh"


def test_plain_manifests_match_a_fresh_render(local_cluster: LocalCluster, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    out.mkdir()
    _run([MANIFESTS / "render.sh", "--out", out], env={**os.environ, "HELM": str(local_cluster.bin("helm"))})
    fresh = {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*.yaml"))}
    committed = {str(p.relative_to(MANIFESTS)): p.read_text() for p in sorted(MANIFESTS.rglob("*.yaml"))}
    assert sorted(committed) == sorted(fresh), "deploy/manifests is stale: run deploy/manifests/render.sh"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"deploy/manifests is stale ({', '.join(stale)}): run deploy/manifests/render.sh"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(local_cluster: LocalCluster, name: str) -> None:
    proc = _helm(local_cluster, "lint", "--strict", str(CHART), *VALUE_SETS[name])
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_validate_against_the_cluster_schemas(
    local_cluster: LocalCluster, kube_version: str, kube_schemas: KubeSchemas, name: str
) -> None:
    rendered = _template(local_cluster, kube_version, "--include-crds", *VALUE_SETS[name]).stdout
    proc = _kubeconform(local_cluster, kube_schemas, rendered)
    assert proc.returncode == 0, f"kubeconform ({name}):\n{proc.stdout}{proc.stderr}"
    assert "Invalid: 0, Errors: 0" in proc.stdout, proc.stdout


def test_a_typo_in_the_schema_generator_would_be_caught(
    local_cluster: LocalCluster, kube_version: str, kube_schemas: KubeSchemas
) -> None:
    """The generated schemas really are strict: an unknown field in a Deployment is reported."""
    docs = _docs(_template(local_cluster, kube_version).stdout)
    dep = _one(docs, "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    proc = _kubeconform(local_cluster, kube_schemas, yaml.safe_dump(dep))
    assert proc.returncode != 0 and "securityContxt" in proc.stdout, proc.stdout


def test_rendered_objects_by_value_set(local_cluster: LocalCluster, kube_version: str) -> None:
    docs = _docs(_template(local_cluster, kube_version).stdout)
    dep = _one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/modelratchet/modelratchet:0.1.0"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsUser"] == 10001 and sc["runAsNonRoot"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODELRATCHET_LEASE_NAMESPACE"]["value"] == "modelratchet-system"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert not [d for d in docs if d["kind"] in ("PodDisruptionBudget", "ServiceMonitor")]
    # Namespace scope is the default: the operator may act in the release namespace only.
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Role"}
    assert roles == {
        ("modelratchet-system", "mr-modelratchet"), ("modelratchet-system", "mr-modelratchet-leader-election")
    }
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == ["mr-modelratchet-discovery"]
    assert env["MODELRATCHET_NAMESPACES"]["value"] == "modelratchet-system"
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "mr-modelratchet")
    status_rule = next(r for r in role["rules"] if r["resources"] == ["modelrollouts/status"])
    assert "record" in status_rule["verbs"], "the status admission policy recognises the operator by `record`"

    cluster = _docs(_template(local_cluster, kube_version, *VALUE_SETS["cluster-scope"]).stdout)
    assert {d["metadata"]["name"] for d in cluster if d["kind"] == "ClusterRole"} == {"mr-modelratchet"}
    assert [d["metadata"]["name"] for d in cluster if d["kind"] == "Role"] == ["mr-modelratchet-leader-election"]
    svc = _one(docs, "Service")
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert _one(docs, "ConfigMap")["metadata"]["labels"]["grafana_dashboard"] == "1"

    two = _docs(_template(local_cluster, kube_version, *VALUE_SETS["replicas-2"]).stdout)
    assert _one(two, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert _one(two, "Deployment")["spec"]["replicas"] == 2

    ns = _docs(_template(local_cluster, kube_version, *VALUE_SETS["namespace-scope"]).stdout)
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in ns if d["kind"] == "Role"}
    assert roles == {("team-a", "mr-modelratchet"), ("team-b", "mr-modelratchet"),
                     ("modelratchet-system", "mr-modelratchet-leader-election")}
    cluster_roles = [d for d in ns if d["kind"] == "ClusterRole"]
    assert [d["metadata"]["name"] for d in cluster_roles] == ["mr-modelratchet-discovery"]
    # The only cluster-wide access left is reading CRD and namespace lists.
    assert {(r["resources"][0], tuple(r["verbs"])) for r in cluster_roles[0]["rules"]} == {
        ("customresourcedefinitions", ("list", "watch")), ("namespaces", ("list", "watch"))
    }
    (container,) = _one(ns, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "MODELRATCHET_NAMESPACES", "value": "team-a,team-b"} in container["env"]

    auth = _docs(_template(local_cluster, kube_version, *VALUE_SETS["prometheus-auth"]).stdout)
    pod = _one(auth, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MODELRATCHET_PROMETHEUS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "prometheus-token", "key": "token"
    }
    assert env["MODELRATCHET_PROMETHEUS_CA_FILE"]["value"] == "/etc/modelratchet/prometheus-ca/ca.crt"
    assert {"name": "prometheus-ca", "secret": {"secretName": "prometheus-ca", "items": [
        {"key": "ca.crt", "path": "ca.crt"}]}} in pod["volumes"]
    rules = next(d for d in auth if d["kind"] == "Role" and d["metadata"]["name"] == "mr-modelratchet")["rules"]
    assert [r for r in rules if "deployments" in r["resources"]], "the operator's Role is rendered"
    assert not [r for r in rules if "secrets" in r["resources"]], "rbac.readSecrets=false drops the Secret rule"


def test_service_monitor_selects_the_metrics_service(local_cluster: LocalCluster, kube_version: str) -> None:
    docs = _docs(_template(local_cluster, kube_version, *VALUE_SETS["service-monitor"]).stdout)
    sm, svc = _one(docs, "ServiceMonitor"), _one(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["modelratchet-system"]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == svc["spec"]["ports"][0]["name"] and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCont=2"], "additional properties 'replicaCont' not allowed"),
        (["--set", "prometheus.bearerToken.secretNam=x"], "additional properties 'secretNam' not allowed"),
        (["--set", "replicaCount=two"], "at '/replicaCount': got string, want integer"),
        (["--set-json", 'watchNamespaces="team-a"'], "at '/watchNamespaces': got string, want array"),
        (["--set", "rbac.scope=global"], "at '/rbac/scope': value must be one of 'cluster', 'namespace'"),
        (["--set", "prometheus.address=prometheus:9090"], "at '/prometheus/address'"),
        (["--set", "serviceMonitor.interval=30 seconds"], "at '/serviceMonitor/interval'"),
    ],
    ids=["typo-top", "typo-nested", "wrong-type", "string-for-list", "bad-enum", "address", "duration"],
)
def test_wrong_values_fail_with_a_clear_message(
    local_cluster: LocalCluster, kube_version: str, args: list[str], message: str
) -> None:
    proc = _template(local_cluster, kube_version, *args, check=False)
    assert proc.returncode != 0, proc.stdout[:500]
    assert message in proc.stderr, proc.stderr


# ----------------------------------------------------------------------------------------------- dashboard

_GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m",
                 "$namespace": ".*", "$rollout": ".*", "$metric": ".*"}


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_use_real_metrics_and_parse(
    local_cluster: LocalCluster, kube_version: str, prometheus: Any
) -> None:
    from modelratchet import telemetry

    cm = _one(_docs(_template(local_cluster, kube_version).stdout), "ConfigMap")
    dashboard = json.loads(cm["data"]["modelratchet.json"])
    assert dashboard["uid"] == "modelratchet"
    exprs = _dashboard_exprs(dashboard)
    # Series names per family type; labelled families have no samples until first used.
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exported = {m.name + s for m in telemetry.REGISTRY.collect() for s in suffixes.get(m.type, [""])}
    used = {n for e in exprs for n in re.findall(r"\bmodelratchet_[a-z_]+", e)}
    assert used, "the dashboard queries no operator metric"
    assert used <= exported, f"metrics the operator does not export: {sorted(used - exported)}"
    # The brief of each panel: these series must all be on the dashboard.
    for name in ("modelratchet_rollouts", "modelratchet_canary_weight_percent", "modelratchet_analyses_total",
                 "modelratchet_metric_value", "modelratchet_promotions_total", "modelratchet_rollbacks_total",
                 "modelratchet_time_to_rollback_seconds_bucket", "modelratchet_reconcile_errors_total"):
        assert name in used, name
    arms = {a for e in exprs for a in re.findall(r'arm="(\w+)"', e)}
    assert arms == {"candidate", "baseline", "threshold"}
    # A real Prometheus parses every query (400 on a syntax error).
    for expr in exprs:
        query = expr
        for var, value in sorted(_GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
            query = query.replace(var, value)
        url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        except urllib.error.HTTPError as e:
            pytest.fail(f"Prometheus rejects {expr!r}: {e.read().decode()}")
        assert body["status"] == "success", body


# ------------------------------------------------------------------------------------- install and privilege


class Release:
    """A helm release in its own namespace (labelled for the restricted Pod Security Standard)."""

    def __init__(self, cluster: LocalCluster, name: str, namespace: str) -> None:
        self.cluster, self.name, self.namespace = cluster, name, namespace
        self.fullname = f"{name}-modelratchet"
        self.sa = f"system:serviceaccount:{namespace}:{self.fullname}"

    def install(self, *values: str) -> float:
        self.cluster.kubectl("create", "namespace", self.namespace)
        # The API server then refuses any pod that is not locked down (root, privilege escalation, ...).
        self.cluster.kubectl("label", "namespace", self.namespace, "pod-security.kubernetes.io/enforce=restricted")
        started = time.monotonic()
        _helm(self.cluster, "install", self.name, str(CHART), "--namespace", self.namespace,
              "--wait", "--timeout", "120s", *values)
        return time.monotonic() - started

    def uninstall(self) -> None:
        _helm(self.cluster, "uninstall", self.name, "--namespace", self.namespace, "--wait", check=False)
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", "--ignore-not-found",
                             check=False)

    def can(self, verb: str, resource: str, namespace: str | None = None, *extra: str) -> bool:
        scope = ["--all-namespaces"] if namespace is None else ["-n", namespace]
        proc = self.cluster.kubectl("auth", "can-i", verb, resource, *scope, *extra, f"--as={self.sa}", check=False)
        return proc.stdout.strip() == "yes"

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that authenticates as the chart's ServiceAccount with a bound token."""
        token = self.cluster.kubectl(
            "create", "token", self.fullname, "-n", self.namespace, "--duration=1h"
        ).stdout.strip()
        admin = yaml.safe_load(Path(self.cluster.kubeconfig).read_text())
        cluster = admin["clusters"][0]["cluster"]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
            "current-context": "operator",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path


@pytest.fixture
def release_factory(local_cluster: LocalCluster, crds: Any) -> Iterator[Any]:
    made: list[Release] = []

    def make(name: str, namespace: str) -> Release:
        rel = Release(local_cluster, name, namespace)
        made.append(rel)
        return rel

    yield make
    for rel in made:
        rel.uninstall()


class WebhookReceiver:
    """Records the JSON bodies POSTed to it, on loopback."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> set[str]:
        return {str(m.get("kind")) for m in self.received}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _figure(text: str) -> None:
    print(f"\n[figure] {text}")


def _assert_least_privilege(rel: Release, workload_ns: str, scope: str) -> None:
    lease = f"{rel.fullname}-leader"
    allowed = [
        ("get", "modelrollouts.modelratchet.io", workload_ns),
        ("watch", "modelbaselines.modelratchet.io", workload_ns),
        ("patch", "modelrollouts.modelratchet.io", workload_ns, "--subresource=status"),
        ("record", "modelrollouts.modelratchet.io", workload_ns, "--subresource=status"),
        ("create", "deployments.apps", workload_ns),
        ("delete", "deployments.apps", workload_ns),
        ("create", "events", workload_ns),
        ("get", "secrets", workload_ns),
        ("create", "leases.coordination.k8s.io", rel.namespace),
        ("update", f"leases.coordination.k8s.io/{lease}", rel.namespace),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    ]
    denied = [
        ("delete", "modelrollouts.modelratchet.io", workload_ns),
        ("create", "modelrollouts.modelratchet.io", workload_ns),
        ("patch", "modelrollouts.modelratchet.io", workload_ns),  # the spec belongs to users and GitOps
        ("update", "modelbaselines.modelratchet.io", workload_ns, "--subresource=status"),
        ("create", "secrets", workload_ns),
        ("list", "secrets", workload_ns),  # only named Secrets can be read, never enumerated
        ("update", "deployments.apps", workload_ns),
        ("get", "pods", workload_ns),
        ("delete", "events", workload_ns),
        ("delete", "leases.coordination.k8s.io", rel.namespace),
        ("update", "leases.coordination.k8s.io/someone-elses-lease", rel.namespace),
        ("create", "leases.coordination.k8s.io", workload_ns),
        ("get", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ]
    if scope == "namespace":
        denied += [
            ("list", "deployments.apps", "default"),
            ("get", "secrets", "default"),
            ("get", "modelrollouts.modelratchet.io", "default"),
        ]
    wrong = [("allowed", c) for c in allowed if not rel.can(*c)] + [("denied", c) for c in denied if rel.can(*c)]
    assert not wrong, f"RBAC of {rel.sa} is not as documented: should be {wrong}"


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_install_and_run_the_operator_as_its_service_account(
    local_cluster: LocalCluster,
    kube_api: Any,
    prometheus: Any,
    namespace: str,
    release_factory: Any,
    data_plane: Any,
    tmp_path: Path,
    scope: str,
) -> None:
    rel: Release = release_factory(f"mr-{scope[:2]}", f"{namespace}-sys")
    values = ["--set", f"prometheus.address={prometheus.url}", "--set", f"rbac.scope={scope}"]
    if scope == "namespace":
        values += ["--set", f"watchNamespaces={{{namespace}}}"]
    seconds = rel.install(*values)
    _figure(f"helm install --wait ({scope} scope): {seconds:.1f} s")
    dep = json.loads(local_cluster.kubectl("get", "deployment", rel.fullname, "-n", rel.namespace, "-o", "json").stdout)
    assert dep["status"].get("availableReplicas") == 1, dep["status"]

    _assert_least_privilege(rel, namespace, scope)

    # The real operator, authenticated as the ServiceAccount, configured as the chart configures it.
    # The API server drops empty values, so an env var without value nor valueFrom is "".
    env = {
        e["name"]: e.get("value", "")
        for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" not in e
    }
    identity = f"test-{os.getpid()}"
    operator = OperatorProcess(
        rel.kubeconfig(tmp_path / "operator.kubeconfig"),
        prometheus.url,
        namespaces=[n for n in env["MODELRATCHET_NAMESPACES"].split(",") if n],
        log_dir=tmp_path,
        extra_env={
            "MODELRATCHET_LEASE_NAMESPACE": env["MODELRATCHET_LEASE_NAMESPACE"],
            "MODELRATCHET_LEASE_NAME": env["MODELRATCHET_LEASE_NAME"],
            "POD_NAME": identity,
        },
    )
    # Pods that serve behind a Service, traffic through the gateway.
    scenario = Scenario(kube_api, namespace, prometheus, model=f"digits-{namespace}", log_dir=tmp_path,
                        data_plane=data_plane)
    receiver = WebhookReceiver()
    operator.start()
    try:
        scenario.start_servers()
        scenario.deploy_target(V1)
        scenario.start_traffic()
        # Secrets the operator must read: a Prometheus bearer token (the local Prometheus ignores it)
        # and a webhook URL.
        local_cluster.kubectl("create", "secret", "generic", "prometheus-token", "-n", namespace,
                              "--from-literal=token=not-checked")
        local_cluster.kubectl("create", "secret", "generic", "hook", "-n", namespace,
                              f"--from-literal=url={receiver.url}")
        baseline = digits_baseline(scenario.model)
        baseline["prometheus"] = {"bearerTokenSecretRef": {"name": "prometheus-token", "key": "token"}}
        scenario.create("modelbaselines", "digits", baseline)
        notifications = [{"webhook": {"secretRef": {"name": "hook", "key": "url"}}}]
        scenario.create("modelrollouts", "digits",
                        rollout_spec(scenario.target, "digits", V2, notifications=notifications))
        status = scenario.wait_phase("digits", "Promoted", timeout=120)
        assert scenario.target_checkpoint() == V2 and scenario.canary() is None
        assert status["stableCheckpoint"] == V2

        scenario.patch_spec("modelrollouts", "digits", {"checkpoint": V3})
        status = scenario.wait_phase("digits", "RolledBack", timeout=120)
        assert scenario.target_checkpoint() == V2 and scenario.canary() is None
        assert V3 in status["rejectedCheckpoints"]
        assert {"Promoted", "RolledBack"} <= {r for r, _ in scenario.events("digits")}
        wait_for(lambda: {"promoted", "rolledBack"} <= receiver.kinds(), timeout=30,
                 message="promoted and rolledBack notifications")

        lease = json.loads(local_cluster.kubectl(
            "get", "lease", env["MODELRATCHET_LEASE_NAME"], "-n", rel.namespace, "-o", "json").stdout)
        assert lease["spec"]["holderIdentity"] == identity
        # This process did the work (not some other operator sharing the cluster).
        metrics = operator.metrics()

        def count(prefix: str) -> float:
            return sum(v for k, v in metrics.items() if k.startswith(prefix) and f'namespace="{namespace}"' in k)

        assert count("modelratchet_promotions_total") == 1
        assert count("modelratchet_rollbacks_total{") == 1
        assert count("modelratchet_reconcile_errors_total") == 0
    finally:
        scenario.close()
        operator.stop()
        receiver.close()
    log = operator.log_path.read_text(errors="replace")
    refused = re.compile(r"\b403\b|forbidden|not enough permissions", re.IGNORECASE)
    denied = [line for line in log.splitlines() if refused.search(line)]
    assert not denied, "the operator was denied something:\n" + "\n".join(denied[:20])
    assert "is now the leader" in log
