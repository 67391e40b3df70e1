"""GitOps for real: Argo CD syncs the serving stack (Deployment, Services, ModelBaseline, ModelRollout) from a git
repository onto the local cluster, with the Application as deploy/argocd/application.yaml ships it (server-side
apply, RespectIgnoreDifferences=true, ignoreDifferences by managedFieldsManagers: [modelratchet]) and the project's
health checks in argocd-cm. The operator, the model servers, the gateway and Prometheus are the e2e harness's.

What Argo CD shows is read where it keeps it: the Application's status (sync, health, and each resource's health
as the controller computed it with the project's Lua, --persist-resource-health).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from e2e.harness.argocd import (
    NAMESPACE,
    GitRepo,
    LocalArgoCD,
    health_status,
    resource,
    sync_status,
    synced_revision,
)
from e2e.harness.components import REPO_ROOT
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import (
    GROUP,
    ROLE_LABEL,
    V1,
    V2,
    V3,
    VERSION,
    Scenario,
    digits_baseline,
    http_route,
    rollout_spec,
    service,
    serving_deployment,
)
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

APPLICATION = REPO_ROOT / "deploy" / "argocd" / "application.yaml"
ROLLOUT = "digits"
MANAGER = "modelratchet"  # the operator's field manager
ARGOCD_MANAGER = "argocd-controller"  # Argo CD's, with server-side apply

Obj = dict[str, Any]


def _rollout(sc: Scenario, checkpoint: str, **spec: Any) -> Obj:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelRollout", "metadata": {"name": ROLLOUT},
            "spec": rollout_spec(sc.target, ROLLOUT, checkpoint, **spec)}


def _application(name: str, namespace: str, repo: GitRepo, *, self_heal: bool) -> Obj:
    """The shipped Application, pointed at the test's repository and namespace."""
    app: Obj = yaml.safe_load(APPLICATION.read_text())
    app["metadata"] = {"name": name, "namespace": NAMESPACE}  # no resources finalizer: the namespace goes anyway
    app["spec"]["source"] = {"repoURL": repo.url, "targetRevision": "main", "path": "stack"}
    app["spec"]["destination"]["namespace"] = namespace
    app["spec"]["syncPolicy"]["automated"]["selfHeal"] = self_heal
    return app


def _rollout_health(app: Obj) -> tuple[str | None, str | None]:
    health = resource(app, "ModelRollout", ROLLOUT).get("health") or {}
    return health.get("status"), health.get("message")


def _settled(app: Obj, revision: str) -> bool:
    """Synced to `revision` and Healthy, with no operation running."""
    op = (app.get("status") or {}).get("operationState") or {}
    return (sync_status(app) == "Synced" and health_status(app) == "Healthy" and synced_revision(app) == revision
            and op.get("phase") in (None, "Succeeded"))


class HealthLog(threading.Thread):
    """Polls the Application and records each change of the ModelRollout's health and of the Application's sync
    and health, with the time since start."""

    def __init__(self, argo: LocalArgoCD, name: str) -> None:
        super().__init__(daemon=True, name=f"health-{name}")
        self.argo = argo
        self.name_ = name
        self.transitions: list[tuple[float, str, str | None, str | None]] = []
        self.stop_event = threading.Event()
        self.started = time.monotonic()
        self.last: dict[str, tuple[str | None, str | None]] = {}

    def poll(self) -> None:
        try:
            app = self.argo.application(self.name_)
        except Exception:  # a failed read is retried on the next poll
            return
        now = time.monotonic() - self.started
        views = {"ModelRollout": _rollout_health(app), "Application": (sync_status(app), health_status(app))}
        for what, view in views.items():
            if view != self.last.get(what):
                self.last[what] = view
                self.transitions.append((now, what, *view))

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.poll()
            self.stop_event.wait(0.25)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.poll()  # what the test saw last is in the log too

    def rollout_statuses(self) -> list[str | None]:
        """The ModelRollout's health statuses in order, consecutive repeats folded."""
        out: list[str | None] = []
        for _, what, status, _ in self.transitions:
            if what == "ModelRollout" and (not out or out[-1] != status):
                out.append(status)
        return out

    def print(self, title: str) -> None:
        print(f"\n[argocd] {title}")
        for t, what, a, b in self.transitions:
            print(f"  {t:6.1f}s {what:12} {a} | {b}")


@contextlib.contextmanager
def health_log(argo: LocalArgoCD, app: str, title: str) -> Iterator[HealthLog]:
    """Records what Argo CD shows while the block runs, and prints it afterwards (also when the block fails)."""
    log = HealthLog(argo, app)
    log.start()
    try:
        yield log
    finally:
        log.stop()
        log.print(title)


class GitOpsStack:
    """The serving stack in a git repository, synced by an Argo CD Application into the scenario's namespace."""

    def __init__(self, sc: Scenario, argo: LocalArgoCD, repo_dir: Path, *, self_heal: bool = False,
                 route_to: str | None = None, **rollout: Any) -> None:
        self.sc = sc
        self.argo = argo
        self.repo = GitRepo(repo_dir).init()
        self.name = sc.ns
        self.self_heal = self_heal
        self.route_to = route_to or sc.target  # the Service the HTTPRoute's rule sends to, as committed
        self.rollout_overrides = rollout

    def files(self, checkpoint: str) -> dict[str, Any]:
        sc = self.sc
        assert sc.data_plane is not None
        return {
            # The checkpoint in the Deployment is what the first sync creates it with; later ones are the operator's.
            "stack/deployment.yaml": serving_deployment(sc.target, V1, 3, model=sc.model, store=sc.store,
                                                        rollout=ROLLOUT),
            "stack/services.yaml": [service(sc.target, {"app": sc.target}),
                                    service(sc.stable_service, {"app": sc.target, ROLE_LABEL: "stable"})],
            "stack/baseline.yaml": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelBaseline",
                                    "metadata": {"name": ROLLOUT}, "spec": digits_baseline(sc.model)},
            "stack/rollout.yaml": _rollout(sc, checkpoint, **self.rollout_overrides),
            "stack/route.yaml": http_route(sc.route, [sc.host], sc.data_plane.parent_ref(), self.route_rules()),
        }

    def route_rules(self) -> list[Obj]:
        """The HTTPRoute's rule as committed: with the defaults the API server fills in written out, or Argo CD's
        diff (client-side, which does not know a CRD's defaults) shows the route OutOfSync for ever."""
        return [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"group": "", "kind": "Service", "name": self.route_to, "port": 80, "weight": 1}]}]

    def up(self) -> str:
        """First commit (V1 everywhere), the Application, traffic through the gateway; returns the commit."""
        sha = self.repo.commit(self.files(V1), "serving stack on v1")
        self.argo.create_application(_application(self.name, self.sc.ns, self.repo, self_heal=self.self_heal))
        self.wait_settled(sha, timeout=120)
        assert self.sc.status(ROLLOUT)["stableCheckpoint"] == V1
        assert self.sc.data_plane is not None
        self.sc.data_plane.gateway.wait_route(self.sc.ns, self.sc.route)
        self.sc.data_plane.wait_routed(self.sc.host)
        self.sc.start_traffic()
        return sha

    def commit_checkpoint(self, checkpoint: str, message: str) -> str:
        """Commits a new spec.checkpoint and tells Argo CD, as a git webhook would."""
        sha = self.repo.commit({"stack/rollout.yaml": _rollout(self.sc, checkpoint, **self.rollout_overrides)},
                               message)
        self.argo.refresh(self.name)
        return sha

    def app(self) -> Obj:
        return self.argo.application(self.name)

    def wait_synced(self, revision: str, timeout: float = 60.0) -> Obj:
        return self.argo.wait_app(self.name, lambda a: sync_status(a) == "Synced" and synced_revision(a) == revision
                                  and ((a.get("status") or {}).get("operationState") or {}).get("phase")
                                  in (None, "Succeeded"), timeout, f"{self.name} synced to {revision[:8]}")

    def wait_settled(self, revision: str, timeout: float = 60.0) -> Obj:
        return self.argo.wait_app(self.name, lambda a: _settled(a, revision), timeout,
                                  f"{self.name} Synced and Healthy at {revision[:8]}")

    def wait_rollout_health(self, status: str, timeout: float = 30.0) -> Obj:
        return self.argo.wait_app(self.name, lambda a: _rollout_health(a)[0] == status, timeout,
                                  f"ModelRollout {status} in Argo CD")

    def history(self) -> list[Obj]:
        return list((self.app().get("status") or {}).get("history") or [])

    def close(self) -> None:
        self.argo.delete_application(self.name)


@pytest.fixture
def gitops_scenario(kube_api: Any, namespace: str, prometheus: Any, operator: OperatorProcess, data_plane: Any,
                    tmp_path: Path) -> Iterator[Scenario]:
    """Every checkpoint servable from the model store; the stack itself comes from git."""
    sc = Scenario(kube_api, namespace, prometheus, model=f"digits-{namespace}", log_dir=tmp_path,
                  data_plane=data_plane)
    sc.start_servers()
    yield sc
    sc.close()
    if not operator.alive():
        pytest.fail(f"the operator died:\n{operator.log_tail()}")


@pytest.fixture
def stack_factory(gitops_scenario: Scenario, argocd: LocalArgoCD, tmp_path: Path) -> Iterator[Any]:
    stacks: list[GitOpsStack] = []

    def make(**kwargs: Any) -> GitOpsStack:
        stack = GitOpsStack(gitops_scenario, argocd, tmp_path / "repo", **kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()
    argocd.check_running()


def _condition(status: Obj, type_: str) -> Obj:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def _rollout_starts(sc: Scenario) -> int:
    return [r for r, _ in sc.events(ROLLOUT)].count("RolloutStarted")


def _reconciles(operator: OperatorProcess) -> float:
    return operator.metrics().get("modelratchet_reconcile_duration_seconds_count", 0.0)


# ---------------------------------------------------------------------------------------------- 1. commit -> promote


def test_commit_promotes_and_the_application_ends_synced_and_healthy(stack_factory: Any) -> None:
    stack: GitOpsStack = stack_factory()
    stack.up()
    with health_log(stack.argo, stack.name, "commit -> promote") as log:
        sha = stack.commit_checkpoint(V2, "roll out v2")
        stack.sc.wait_phase(ROLLOUT, "Promoted", timeout=120)
        app = stack.wait_settled(sha, timeout=60)
        stack.wait_rollout_health("Healthy")
    assert stack.sc.target_checkpoint() == V2
    # Git still says v1 in the Deployment: the field the operator owns is not drift.
    git_deployment = stack.repo.read("stack/deployment.yaml")[0]
    assert git_deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == V1
    assert resource(app, "Deployment", stack.sc.target).get("status") == "Synced"
    statuses = log.rollout_statuses()
    assert "Progressing" in statuses and statuses[-1] == "Healthy", statuses
    assert statuses.index("Progressing") < len(statuses) - 1
    messages = [m for _, what, s, m in log.transitions if what == "ModelRollout" and s == "Progressing"]
    assert any(m and V2 in m for m in messages), messages


# ---------------------------------------------------------------------------------------------- 2. regressed


def _roll_back_v3(stack: GitOpsStack) -> tuple[str, Obj]:
    stack.up()
    sha = stack.commit_checkpoint(V3, "roll out v3")
    stack.sc.wait_phase(ROLLOUT, "RolledBack", timeout=120)
    app = stack.argo.wait_app(stack.name, lambda a: _rollout_health(a)[0] == "Degraded"
                              and synced_revision(a) == sha, 60, "ModelRollout Degraded")
    return sha, app


def test_regressed_commit_is_rolled_back_and_a_forced_resync_does_not_bring_it_back(
    stack_factory: Any, operator: OperatorProcess
) -> None:
    stack: GitOpsStack = stack_factory()
    with health_log(stack.argo, stack.name, "regressed commit, forced re-sync") as log:
        sha, app = _roll_back_v3(stack)
        health, message = _rollout_health(app)
        status = stack.sc.status(ROLLOUT)
        assert V3 in status["rejectedCheckpoints"] and stack.sc.target_checkpoint() == V1
        assert health == "Degraded" and message and "accuracy" in message, message
        assert health_status(app) == "Degraded" and sync_status(app) == "Synced"
        # What to do in git, in the status Argo CD shows.
        wait_for(lambda: "revert" in (_rollout_health(stack.app())[1] or ""), timeout=30,
                 message="the health message says what to do in git")
        message = _rollout_health(stack.app())[1] or ""
        assert "revert" in message and "commit" in message and V3 in message, message
        assert "revert" in stack.sc.status(ROLLOUT)["message"]

        # A forced re-sync: hard refresh, then a sync of the same commit.
        generation = stack.sc.target_generation()
        starts = _rollout_starts(stack.sc)
        before = len(stack.history())
        stack.argo.refresh(stack.name, hard=True)
        stack.argo.sync(stack.name, sha)
        stack.argo.wait_app(stack.name, lambda a: len((a.get("status") or {}).get("history") or []) > before
                            and ((a.get("status") or {}).get("operationState") or {}).get("phase") == "Succeeded",
                            60, "the forced sync to finish")
        looks = _reconciles(operator)
        wait_for(lambda: _reconciles(operator) >= looks + 3, timeout=30, message="three more reconciles")
    assert stack.sc.canary() is None, "no canary of the rejected checkpoint"
    assert stack.sc.target_checkpoint() == V1 and stack.sc.target_generation() == generation
    assert _rollout_starts(stack.sc) == starts
    status = stack.sc.status(ROLLOUT)
    assert status["phase"] == "RolledBack" and V3 in status["rejectedCheckpoints"]
    assert _rollout_health(stack.app())[0] == "Degraded"
    assert "Degraded" in log.rollout_statuses()


# ---------------------------------------------------------------------------------------------- 3. revert


def test_git_revert_returns_to_synced_healthy_without_a_new_rollout(stack_factory: Any) -> None:
    stack: GitOpsStack = stack_factory()
    bad, _ = _roll_back_v3(stack)
    generation = stack.sc.target_generation()
    starts = _rollout_starts(stack.sc)
    with health_log(stack.argo, stack.name, "git revert") as log:
        reverted = stack.repo.revert(bad)
        stack.argo.refresh(stack.name)
        app = stack.wait_settled(reverted, timeout=60)
        stack.wait_rollout_health("Healthy")
    status = stack.sc.status(ROLLOUT)
    assert status["phase"] == "Idle" and status["stableCheckpoint"] == V1
    assert stack.sc.canary() is None and stack.sc.target_checkpoint() == V1
    assert stack.sc.target_generation() == generation, "the serving Deployment was not touched"
    assert _rollout_starts(stack.sc) == starts, "no rollout of the checkpoint already serving"
    assert not [m for _, what, _, m in log.transitions if what == "ModelRollout" and m and "canary" in m]
    assert log.rollout_statuses()[-1] == "Healthy"
    assert health_status(app) == "Healthy"


# ---------------------------------------------------------------------------------------------- 4. manual gate


def test_pause_is_suspended_and_promote_finishes_without_drift_or_git_edit(stack_factory: Any,
                                                                          kube_api: Any) -> None:
    stack: GitOpsStack = stack_factory(steps=[{"setWeight": 25}, {"pause": {}}, {"analyze": {"duration": "4s"}}])
    stack.up()
    with health_log(stack.argo, stack.name, "manual gate") as log:
        sha = stack.commit_checkpoint(V2, "roll out v2 behind a manual gate")
        stack.sc.wait_phase(ROLLOUT, "Paused", timeout=90)
        app = stack.wait_rollout_health("Suspended")
        assert "modelratchet promote" in (_rollout_health(app)[1] or "")
        assert health_status(app) == "Suspended" and sync_status(app) == "Synced"
        env = {"KUBECONFIG": str(stack.argo.cluster.kubeconfig)}
        proc = subprocess.run([sys.executable, "-m", "modelratchet.cli.main", "promote", ROLLOUT, "-n", stack.sc.ns,
                               "--wait"], capture_output=True, text=True, timeout=90, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        stack.sc.wait_phase(ROLLOUT, "Promoted", timeout=60)
        app = stack.wait_settled(sha, timeout=60)
        stack.wait_rollout_health("Healthy")
    assert stack.repo.head() == sha, "nothing was committed"
    assert stack.sc.target_checkpoint() == V2
    assert all(r.get("status") == "Synced" for r in (app.get("status") or {}).get("resources") or []), app
    assert log.rollout_statuses()[-2:] == ["Suspended", "Healthy"] or "Suspended" in log.rollout_statuses()


# ---------------------------------------------------------------------------------------------- 5. self-heal


@dataclass
class Write:
    t: float
    kind: str
    name: str
    event: str
    managers: tuple[str, ...]
    generation: int | None


class WriteLog:
    """Every change to the namespace's Deployments, Services and HTTPRoutes, attributed to the field managers that
    wrote it: those whose managedFields entry (not the status subresource's) is new or has a new time. A manager
    whose fields another one took over with a forced apply has a smaller field set but the same time: not a write."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.writes: list[Write] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        custom = client.CustomObjectsApi(api)
        self._kinds: list[tuple[str, Any, tuple[Any, ...]]] = [
            ("Deployment", client.AppsV1Api(api).list_namespaced_deployment, (namespace,)),
            ("Service", client.CoreV1Api(api).list_namespaced_service, (namespace,)),
            ("HTTPRoute", custom.list_namespaced_custom_object,
             ("gateway.networking.k8s.io", "v1", namespace, "httproutes")),
        ]
        self._listed = [threading.Event() for _ in self._kinds]
        self._threads = [threading.Thread(target=self._watch, args=(*kind, listed), daemon=True)
                         for kind, listed in zip(self._kinds, self._listed, strict=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()
        for listed in self._listed:
            assert listed.wait(30), "the namespace's objects listed"

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    @staticmethod
    def _times(meta: Obj) -> dict[tuple[str, str], Any]:
        return {(m.get("manager", "?"), m.get("operation", "?")): m.get("time")
                for m in meta.get("managedFields") or [] if m.get("subresource") != "status"}

    def _watch(self, kind: str, lister: Any, args: tuple[Any, ...], listed: threading.Event) -> None:
        # What was there before the log started is the starting point, not a write.
        first = json.loads(lister(*args, _preload_content=False).data)
        seen = {o["metadata"]["name"]: self._times(o["metadata"]) for o in first["items"]}
        version = first["metadata"]["resourceVersion"]
        listed.set()
        w = watch.Watch()  # type: ignore[no-untyped-call]
        while not self._stop.is_set():
            for ev in w.stream(lister, *args, resource_version=version,  # type: ignore[no-untyped-call]
                               timeout_seconds=1):
                meta = ev["raw_object"]["metadata"]
                version = meta["resourceVersion"]
                times = self._times(meta)
                before = seen.get(meta["name"], {})
                writers = tuple(sorted({k[0] for k, t in times.items() if before.get(k) != t}))
                seen[meta["name"]] = times
                if writers or ev["type"] == "DELETED":
                    self.writes.append(Write(time.monotonic() - self.started, kind, meta["name"], ev["type"],
                                             writers, meta.get("generation")))

    def by(self, manager: str, *, after: float = 0.0) -> list[Write]:
        return [w for w in self.writes if manager in w.managers and w.t >= after]


def _reconcile_count(argo: LocalArgoCD) -> float:
    """Reconciliations of Applications by the controller (argocd_app_reconcile is a histogram per namespace)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in argo.metrics().splitlines()
               if line.startswith("argocd_app_reconcile_count"))


def _sync_count(argo: LocalArgoCD, app: str) -> float:
    total = 0.0
    for line in argo.metrics().splitlines():
        if line.startswith("argocd_app_sync_total{") and f'name="{app}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_self_heal_does_not_fight_the_operator(stack_factory: Any, gitops_scenario: Scenario, kube_api: Any) -> None:
    """With trafficRouting.gatewayAPI, so the operator writes all it can: a canary Deployment and Service, the
    weights in the HTTPRoute's rules (which git also holds), and the target's checkpoint."""
    sc = gitops_scenario
    routing = {"gatewayAPI": {"httpRoute": sc.route, "stableService": sc.stable_service}, "canaryReplicas": 1}
    stack: GitOpsStack = stack_factory(self_heal=True, route_to=sc.stable_service, trafficRouting=routing)
    stack.up()
    writes = WriteLog(kube_api, sc.ns)
    writes.start()
    syncs_before = _sync_count(stack.argo, stack.name)
    try:
        with health_log(stack.argo, stack.name, "self-heal on") as log:
            sha = stack.commit_checkpoint(V2, "roll out v2 with self-heal on")
            promoted = sc.wait_phase(ROLLOUT, "Promoted", timeout=120)
            stack.wait_settled(sha, timeout=60)
            settled_at = time.monotonic() - writes.started
            syncs_settled = _sync_count(stack.argo, stack.name)
            # Two more full reconciliations by Argo CD (it is the only Application): it stays Synced and Healthy,
            # neither side writes again and Argo CD does not sync again.
            reconciles = _reconcile_count(stack.argo)

            def two_more_reconciles() -> bool:
                app = stack.app()
                assert _settled(app, sha), (sync_status(app), health_status(app))
                return _reconcile_count(stack.argo) >= reconciles + 2

            wait_for(two_more_reconciles, timeout=4 * stack.argo.resync_seconds + 30, interval=0.5,
                     message="two more reconciliations by Argo CD")
    finally:
        writes.stop()
    syncs = _sync_count(stack.argo, stack.name) - syncs_before
    operator_writes = writes.by(MANAGER)
    argocd_writes = writes.by(ARGOCD_MANAGER)
    print(f"\n[argocd] self-heal: {syncs:.0f} Argo CD sync(s) during the rollout; "
          f"{len(operator_writes)} operator write(s), {len(argocd_writes)} Argo CD write(s)")
    for w in writes.writes:
        print(f"  {w.t:6.1f}s {w.event:8} {w.kind:10} {w.name:24} gen {w.generation} by {','.join(w.managers)}")
    assert promoted["stableCheckpoint"] == V2 and sc.target_checkpoint() == V2
    # One sync: the commit. No self-heal of the operator's fields, no ping-pong.
    assert syncs == 1, syncs
    assert _sync_count(stack.argo, stack.name) == syncs_settled
    assert not writes.by(MANAGER, after=settled_at) and not writes.by(ARGOCD_MANAGER, after=settled_at)
    # The operator wrote everything a rollout writes; Argo CD wrote none of it once the rollout had begun.
    canary = f"{sc.target}-canary"
    wrote = {(w.kind, w.name) for w in operator_writes}
    assert {("Deployment", canary), ("Service", canary), ("HTTPRoute", sc.route), ("Deployment", sc.target)} <= wrote
    began = min(w.t for w in operator_writes)
    assert not [w for w in argocd_writes if w.t >= began], argocd_writes
    # The route is as git has it again, and the Application says so.
    route = sc.custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", sc.ns, "httproutes", sc.route)
    assert route["spec"]["rules"] == stack.route_rules(), route["spec"]["rules"]
    assert resource(stack.app(), "HTTPRoute", sc.route).get("status") == "Synced"
    assert "Progressing" in log.rollout_statuses()


# ---------------------------------------------------------------------------------------------- the shipped example


def test_the_example_application_selects_the_example_manifests(argocd: LocalArgoCD, namespace: str,
                                                               tmp_path: Path) -> None:
    """deploy/argocd/application.yaml as shipped (its directory include) on this tree's examples/: the repo-server
    renders exactly the manifests, not the metrics files next to them. Compared only, not synced."""
    examples = REPO_ROOT / "examples"
    files = {str(p.relative_to(REPO_ROOT)): p.read_text() for p in sorted(examples.rglob("*"))
             if p.is_file() and p.suffix in (".yaml", ".json")}
    repo = GitRepo(tmp_path / "repo").init()
    sha = repo.commit(files, "examples")
    app: Obj = yaml.safe_load(APPLICATION.read_text())
    app["metadata"] = {"name": namespace, "namespace": NAMESPACE}
    app["spec"]["source"]["repoURL"] = repo.url
    app["spec"]["destination"]["namespace"] = namespace
    del app["spec"]["syncPolicy"]["automated"]
    argocd.create_application(app)
    try:
        app = argocd.wait_app(namespace, lambda a: synced_revision(a) == sha
                              and bool((a.get("status") or {}).get("resources")), 60, "the example compared")
    finally:
        argocd.delete_application(namespace)
    expected = sorted(
        (d["kind"], d["metadata"]["name"])
        for pattern in ("baselines/*.yaml", "model-server/k8s/*.yaml")
        for f in sorted(examples.glob(pattern))
        for d in yaml.safe_load_all(f.read_text()) if d
    )
    got = sorted((r["kind"], r["name"]) for r in app["status"]["resources"])
    assert got == expected
    assert {"ModelRollout", "ModelBaseline", "Deployment", "Service"} <= {k for k, _ in got}
    assert sync_status(app) == "OutOfSync"


def test_argocd_cli_runs_the_health_checks_offline(tmp_path: Path) -> None:
    """What the README tells users to try before installing: `argocd admin settings resource-overrides health` with
    the patch, in Argo CD's own Lua sandbox, without a cluster."""
    from e2e.harness.components import MissingBinaryError, bin_path
    from e2e.harness.fixtures import _fail_missing

    try:
        argocd = bin_path("argocd")
    except MissingBinaryError as exc:
        _fail_missing(exc)
    cases = {
        "Suspended": {"phase": "Paused", "observedGeneration": 3, "message": "paused: `modelratchet promote`",
                      "conditions": [{"type": "Paused", "status": "True", "reason": "ManualGate", "message": "m",
                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        "Progressing": {"phase": "Promoted", "observedGeneration": 2},  # generation 3 not observed yet
    }
    for expected, status in cases.items():
        obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelRollout",
               "metadata": {"name": "digits", "namespace": "ml", "generation": 3},
               "spec": {"checkpoint": "v2", "steps": [{"setWeight": 25}, {"pause": {}}]}, "status": status}
        path = tmp_path / f"{expected}.yaml"
        path.write_text(yaml.safe_dump(obj))
        proc = subprocess.run([str(argocd), "admin", "settings", "resource-overrides", "health", str(path),
                               "--argocd-cm-path", str(REPO_ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml")],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "ARGOCD_BINARY_NAME":
                                                                               "argocd"}, check=False)
        assert proc.returncode == 0, proc.stderr
        assert f"STATUS: {expected}" in proc.stdout, proc.stdout + proc.stderr
    assert "MESSAGE: Waiting for the operator to observe generation 3" in proc.stdout, proc.stdout
