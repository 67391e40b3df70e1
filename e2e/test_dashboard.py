"""The dashboard in a real browser (headless Chromium over the DevTools Protocol) during real rollouts on the
local cluster: the overview follows a rollout live, the rollout page charts every analysis, the promote button
finishes a paused rollout, and a checkpoint carrying markup stays text. Screenshots go to e2e/artifacts/dashboard/
(or $MODELRATCHET_ARTIFACTS/dashboard)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness.browser import Browser, first_paint_and_weight
from e2e.harness.components import REPO_ROOT
from e2e.harness.dashboard import DashboardProcess
from e2e.harness.scenario import V1, V2, V3, Scenario, digits_baseline, rollout_spec

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# A checkpoint URI an attacker with write access to the spec could pick: it must render as text.
XSS = "s3://models/digits/v2<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
ARTIFACTS = Path(os.environ.get("MODELRATCHET_ARTIFACTS") or REPO_ROOT / "e2e" / "artifacts") / "dashboard"


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser(width=1280, height=900)
    yield b
    b.close()


@pytest.fixture
def dashboard(local_cluster: Any, namespace: str, tmp_path: Path) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(Path(local_cluster.kubeconfig), "-n", namespace, log_dir=tmp_path)
    yield proc
    proc.stop()


def _row(field: str, key: str) -> str:
    """JS: the text of one cell of the overview row of ``key`` ('' while the row is absent)."""
    return (f"((document.getElementById({key!r}) || {{querySelector: () => null}})"
            f".querySelector('[data-field={field}]')?.textContent.trim() ?? '')")


def test_overview_follows_a_rollout_live_and_promote_finishes_it(
    scenario: Scenario, dashboard: DashboardProcess, browser: Browser
) -> None:
    page = browser.page
    scenario.publish(XSS, scenario.files[V2])  # the better model, under the hostile name
    page.navigate(dashboard.url + "/")
    page.wait_for("document.getElementById('live-state').textContent.includes('on')", 30, "live stream open")
    page.evaluate("window.loadedOnce = 'yes'")  # survives only as long as the document does: no reload

    scenario.create("modelbaselines", "digits", digits_baseline(scenario.model))
    steps = [{"setWeight": 25}, {"analyze": {"duration": "6s"}}, {"pause": {}}, {"analyze": {"duration": "4s"}}]
    scenario.create("modelrollouts", "digits", rollout_spec(scenario.target, "digits", XSS, steps=steps))
    key = f"row-{scenario.ns}/digits"
    page.wait_for(f"{_row('phase', key)} === 'Progressing'", 60, "the new rollout listed as Progressing")
    page.wait_for(f"{_row('phase', key)} === 'Paused'", 90, "the phase change to Paused shown live")
    assert page.evaluate("window.loadedOnce") == "yes", "the overview was reloaded"
    assert page.evaluate(f"{_row('candidate', key)}") == XSS
    assert page.evaluate(f"{_row('stable', key)}") == V1
    assert page.evaluate("document.querySelectorAll('#rollouts script, #rollouts img').length") == 0
    page.screenshot(ARTIFACTS / "overview-paused.png")

    # The rollout page while paused: no analysis runs, so the history is fixed.
    status = scenario.status("digits")
    entries = [h for h in status["history"] if h["checkpoint"] == XSS]
    assert entries, "analyses recorded before the pause"
    page.navigate(f"{dashboard.url}/rollouts/{scenario.ns}/digits")
    charts = page.evaluate(
        "[...document.querySelectorAll('svg.chart:not(.ci)')].map(s => [s.dataset.metric, "
        "[...s.querySelectorAll('g.pt')].map(g => Number(g.dataset.historyId))])"
    )
    assert [c[0] for c in charts] == ["accuracy", "latency_p90"], "one chart per metric"
    expected = sorted(h["id"] for h in entries)
    for metric, ids in charts:
        assert ids == expected, f"{metric}: a point per history entry"
    assert page.evaluate("document.getElementById('candidate').textContent") == XSS
    assert page.evaluate("[...document.querySelectorAll('li.step')].map(l => l.dataset.state)") == [
        "done", "done", "current", "pending"
    ]
    assert page.evaluate("window.pwned") is None and not page.dialogs, "markup from the cluster never ran"
    assert page.evaluate("document.querySelectorAll('main script, main img').length") == 0
    figures = first_paint_and_weight(page)
    print(f"\n[figure] rollout page: {figures}")
    page.screenshot(ARTIFACTS / "rollout-paused.png")

    page.click_and_wait_load("button#promote")
    notice = page.evaluate("document.getElementById('notice')?.textContent ?? document.body.innerText")
    assert "promote of" in notice, notice
    page.evaluate("window.loadedOnce = 'yes'")
    # The page follows the rollout on its own: the last analysis step, then the promotion.
    page.wait_for("document.querySelector('h1 .phase').textContent === 'Promoted'", 90, "Promoted shown live")
    assert page.evaluate("window.loadedOnce") == "yes", "the rollout page was reloaded"
    assert "promote of" in page.evaluate("document.getElementById('notice').textContent"), "the answer stays"
    scenario.wait_phase("digits", "Promoted", timeout=30)
    assert scenario.target_checkpoint() == XSS
    page.wait_for("[...document.querySelectorAll('li.step')].every(l => l.dataset.state === 'done')", 30)
    assert page.evaluate("window.pwned") is None and not page.dialogs
    page.screenshot(ARTIFACTS / "rollout-promoted.png")
    assert not page.console_errors, page.console_errors


def test_rollout_page_of_a_regressed_checkpoint(
    scenario: Scenario, dashboard: DashboardProcess, browser: Browser
) -> None:
    """The demo's regressed checkpoint, rolled back: its failed analysis marked on the accuracy chart."""
    scenario.create("modelbaselines", "digits", digits_baseline(scenario.model))
    scenario.create("modelrollouts", "digits", rollout_spec(scenario.target, "digits", V3))
    status = scenario.wait_phase("digits", "RolledBack", timeout=120)
    page = browser.page
    page.navigate(f"{dashboard.url}/rollouts/{scenario.ns}/digits")
    failed = page.evaluate("[...document.querySelectorAll('svg.chart[data-metric=accuracy] g.pt.failed')]"
                           ".map(g => Number(g.dataset.historyId))")
    assert failed == [h["id"] for h in reversed(status["history"]) if h["verdict"] == "failed"]
    assert page.evaluate("document.querySelector('h1 .phase').textContent") == "RolledBack"
    stopped = next(h["step"] for h in status["history"] if h["verdict"] == "failed")
    states = page.evaluate("[...document.querySelectorAll('li.step')].map(l => l.dataset.state)")
    assert states.index("stopped") == stopped and states[:stopped] == ["done"] * stopped
    assert "retry" in page.evaluate("[...document.querySelectorAll('.actions button')].map(b => b.id).join()")
    page.screenshot(ARTIFACTS / "rollout-rolled-back.png")


# ------------------------------------------------------------------------------------- the user's own RBAC


def _user_kubeconfig(kube_api: Any, admin: Path, namespace: str, name: str, rules: list[dict[str, Any]],
                     directory: Path) -> tuple[Path, str]:
    """A ServiceAccount holding ``rules`` in ``namespace`` and a kubeconfig that authenticates as it; returns the
    kubeconfig and the RoleBinding's name (delete it to take the rights away)."""
    from kubernetes import client

    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    })
    request = {"spec": {"audiences": [], "expirationSeconds": 600}}
    token = core.create_namespaced_service_account_token(name, namespace, request).status.token
    config = json.loads(json.dumps(yaml.safe_load(admin.read_text())))
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = name
    path = directory / f"kubeconfig-{name}"
    path.write_text(json.dumps(config))
    return path, name


READ = [
    {"apiGroups": ["modelratchet.io"], "resources": ["modelrollouts", "modelbaselines"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
]
GATE = {"apiGroups": ["modelratchet.io"], "resources": ["modelrollouts/status"], "verbs": ["patch"]}


def test_actions_follow_the_users_rbac(
    local_cluster: Any, kube_api: Any, crds: Any, namespace: str, browser: Browser, tmp_path: Path
) -> None:
    """No operator: a paused rollout as the operator would have recorded it. A reader sees no buttons (read-only
    is the default where the status cannot be patched); a user whose right to patch is revoked after the page
    loaded gets the cluster's refusal on the page, and nothing is written."""
    from kubernetes import client

    custom = client.CustomObjectsApi(kube_api)
    spec = rollout_spec("digits-serving", "digits", V2, steps=[{"setWeight": 25}, {"pause": {}}])
    custom.create_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace, "modelrollouts", {
        "apiVersion": "modelratchet.io/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "digits"},
        "spec": spec})
    custom.patch_namespaced_custom_object_status("modelratchet.io", "v1alpha1", namespace, "modelrollouts", "digits", {
        "status": {"phase": "Paused", "stableCheckpoint": V1, "canaryCheckpoint": V2, "currentStep": 1,
                   "canaryWeight": 25, "observedGeneration": 1}})
    page = browser.page

    reader, _ = _user_kubeconfig(kube_api, Path(local_cluster.kubeconfig), namespace, "reader", READ, tmp_path)
    viewer = DashboardProcess(reader, "-n", namespace, log_dir=tmp_path / "reader")
    try:
        page.navigate(f"{viewer.url}/rollouts/{namespace}/digits")
        assert page.evaluate("document.querySelector('h1 .phase').textContent") == "Paused"
        assert page.evaluate("document.querySelectorAll('.actions button, form').length") == 0
    finally:
        viewer.stop()

    gater, binding = _user_kubeconfig(kube_api, Path(local_cluster.kubeconfig), namespace, "gater", [*READ, GATE],
                                      tmp_path)
    dash = DashboardProcess(gater, "-n", namespace, log_dir=tmp_path / "gater")
    try:
        page.navigate(f"{dash.url}/rollouts/{namespace}/digits")
        assert page.evaluate("[...document.querySelectorAll('.actions button')].map(b => b.id)") == ["promote", "abort"]
        role = client.RbacAuthorizationV1Api(kube_api)
        role.patch_namespaced_role(binding, namespace, {"rules": READ})  # the right to patch is gone
        page.click_and_wait_load("button#promote")
        notice = page.evaluate("document.getElementById('notice').textContent")
        assert "refused by the cluster's RBAC" in notice and "forbidden" in notice, notice
        status = custom.get_namespaced_custom_object("modelratchet.io", "v1alpha1", namespace, "modelrollouts",
                                                     "digits")["status"]
        assert "gate" not in status, "nothing was written"
        page.screenshot(ARTIFACTS / "refused.png", full_page=False)
    finally:
        dash.stop()
