"""End to end with a real MLflow model registry: the ModelRollout takes its candidate from the registered model's
`challenger` alias, and writes its verdicts back (read here with MLflow's own client): a better version is
promoted and `champion` moves to it; a regressed one is rolled back, `champion` stays and the version is tagged
rejected; with MLflow stopped mid-rollout the rollback still happens and the write catches up when it returns.

Versions are the example server's checkpoints (trained with scikit-learn), logged as run artifacts and
registered; their storage location (a file:// URI in MLflow's artifact directory) is what the pods load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.cluster import free_port
from e2e.harness.components import MissingBinaryError
from e2e.harness.fixtures import _fail_missing
from e2e.harness.mlflow import SESSION_PORT, LocalMlflow, MlflowClientProcess
from e2e.harness.model_servers import checkpoint_file
from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import Scenario, digits_baseline, rollout_spec
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(900)]

FILES = ("v1-good", "v2-better", "v3-regressed")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMlflow]:
    server = LocalMlflow(tmp_path_factory.mktemp("mlflow"), port=SESSION_PORT)
    try:
        server.start()
    except MissingBinaryError as exc:
        _fail_missing(exc)
    print(f"\n[mlflow] server up in {server.startup_seconds[0]:.1f} s at {server.url}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow(mlflow_server: LocalMlflow) -> Iterator[MlflowClientProcess]:
    started = time.monotonic()
    client = MlflowClientProcess(mlflow_server.url, mlflow_server.workdir / "client.log")
    print(f"\n[mlflow] client {client.mlflow_version} ready in {time.monotonic() - started:.1f} s")
    yield client
    client.close()


class Registry:
    """One registered model per test, with the example checkpoints as versions; `champion` on v1-good."""

    def __init__(self, client: MlflowClientProcess, model: str) -> None:
        self.client, self.model = client, model
        started = time.monotonic()
        self.versions = {name: client.register(model, checkpoint_file(name)) for name in FILES}
        client.set_alias(model, "champion", self.version("v1-good"))
        client.set_alias(model, "challenger", self.version("v1-good"))
        print(f"\n[mlflow] {len(FILES)} versions registered in {time.monotonic() - started:.1f} s")

    def version(self, name: str) -> str:
        return self.versions[name]["version"]

    def source(self, name: str) -> str:
        return self.versions[name]["source"]

    def tags(self, name: str) -> dict[str, str]:
        return dict(self.client.version(self.model, self.version(name))["tags"])


@pytest.fixture
def world(
    kube_api: Any, namespace: str, prometheus: Any, operator: OperatorProcess, data_plane: Any,
    mlflow: MlflowClientProcess, tmp_path: Path,
) -> Iterator[tuple[Scenario, Registry]]:
    model = f"digits-{namespace}"
    registry = Registry(mlflow, model)
    sc = Scenario(kube_api, namespace, prometheus, model=model, log_dir=tmp_path, data_plane=data_plane)
    sc.start_servers()
    sc.deploy_target(registry.source("v1-good"))  # serving the champion
    sc.start_traffic()
    sc.create("modelbaselines", "digits", digits_baseline(model))
    spec = rollout_spec(sc.target, "digits", "unused")
    del spec["checkpoint"]
    spec["source"] = {"mlflow": {"model": model, "alias": "challenger"}}
    sc.create("modelrollouts", "digits", spec)
    # The alias names what already serves: nothing to roll out, the registry is in sync.
    sc.wait_phase("digits", "Idle", timeout=60, also=lambda s: _condition(s, "RegistrySynced").get("status") == "True")
    yield sc, registry
    sc.close()
    if not operator.alive():
        pytest.fail(f"the operator died:\n{operator.log_tail()}")


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def _synced(status: dict[str, Any]) -> bool:
    return _condition(status, "RegistrySynced").get("status") == "True"


def _print_tags(label: str, tags: dict[str, str]) -> None:
    print(f"\n[mlflow] tags of {label} as MlflowClient.get_model_version reads them:")
    for key in sorted(tags):
        print(f"    {key} = {tags[key]}")


def test_a_better_version_is_promoted_and_champion_moves(world: tuple[Scenario, Registry]) -> None:
    sc, reg = world
    started = time.monotonic()
    reg.client.set_alias(reg.model, "challenger", reg.version("v2-better"))
    sc.wait_phase("digits", "Progressing", timeout=60)
    status = sc.wait_phase("digits", "Promoted", timeout=180)
    promoted = time.monotonic()
    assert sc.target_checkpoint() == reg.source("v2-better")
    assert status["registry"]["candidate"]["version"] == reg.version("v2-better")
    wait_for(lambda: reg.client.alias(reg.model, "champion") == reg.version("v2-better"), timeout=60,
             message="champion moved to the promoted version")
    written = time.monotonic()
    status = sc.wait_phase("digits", "Promoted", timeout=30, also=_synced)
    tags = reg.tags("v2-better")
    _print_tags(f"version {reg.version('v2-better')} (promoted)", tags)
    assert tags["modelratchet.verdict"] == "promoted"
    assert tags["modelratchet.rollout"] == f"{sc.ns}/digits"
    entry = next(h for h in status["history"] if h["checkpoint"] == reg.source("v2-better"))
    assert tags["modelratchet.historyId"] == str(entry["id"])
    metrics = {m["metric"]: m for m in json.loads(tags["modelratchet.metrics"])}
    assert metrics["accuracy"]["value"] == next(m["value"] for m in entry["metrics"] if m["metric"] == "accuracy")
    assert "baseline" in metrics["accuracy"]
    assert "modelratchet.rejected" not in tags
    print(f"\n[figure] alias moved -> Promoted {promoted - started:.1f} s, Promoted -> champion moved "
          f"{written - promoted:.1f} s")


def test_a_regressed_version_is_rolled_back_champion_stays_and_it_is_tagged_rejected(
    world: tuple[Scenario, Registry],
) -> None:
    sc, reg = world
    started = time.monotonic()
    reg.client.set_alias(reg.model, "challenger", reg.version("v3-regressed"))
    status = sc.wait_phase("digits", "RolledBack", timeout=180)
    rolled = time.monotonic()
    assert sc.target_checkpoint() == reg.source("v1-good")
    assert reg.source("v3-regressed") in status["rejectedCheckpoints"]
    wait_for(lambda: reg.tags("v3-regressed").get("modelratchet.rejected") == "true", timeout=60,
             message="the rejected version is tagged")
    written = time.monotonic()
    assert reg.client.alias(reg.model, "champion") == reg.version("v1-good"), "champion stays where it was"
    tags = reg.tags("v3-regressed")
    _print_tags(f"version {reg.version('v3-regressed')} (rolled back)", tags)
    assert tags["modelratchet.verdict"] == "rolledBack"
    assert "accuracy" in tags["modelratchet.reason"]
    assert next(m for m in json.loads(tags["modelratchet.metrics"]) if m["metric"] == "accuracy")["outcome"] == "failed"
    sc.wait_phase("digits", "RolledBack", timeout=30, also=_synced)
    print(f"\n[figure] alias moved -> RolledBack {rolled - started:.1f} s, RolledBack -> tags visible "
          f"{written - rolled:.1f} s")


def test_mlflow_down_mid_rollout_the_rollback_happens_and_the_write_catches_up(
    world: tuple[Scenario, Registry], mlflow_server: LocalMlflow,
) -> None:
    sc, reg = world
    reg.client.set_alias(reg.model, "challenger", reg.version("v3-regressed"))
    wait_for(lambda: sc.status("digits").get("canaryCheckpoint") == reg.source("v3-regressed"), timeout=60,
             message="the regressed version is rolling out")
    mlflow_server.stop()
    stopped = time.monotonic()
    try:
        status = sc.wait_phase("digits", "RolledBack", timeout=180)
        rolled = time.monotonic()
        assert sc.target_checkpoint() == reg.source("v1-good")
        status = sc.wait_phase("digits", "RolledBack", timeout=60,
                               also=lambda s: _condition(s, "RegistrySynced").get("status") == "False")
        synced = _condition(status, "RegistrySynced")
        print(f"\n[mlflow] while down: RegistrySynced {synced['status']} {synced['reason']}: {synced['message']}")
        assert "unreachable" in synced["message"] and "1 verdict write(s) pending" in synced["message"]
        pending = [w for w in status["registry"]["writes"] if "writtenAt" not in w]
        assert [(w["version"], w["verdict"]) for w in pending] == [(reg.version("v3-regressed"), "rolledBack")]
    finally:
        mlflow_server.start()
    back = time.monotonic()
    status = sc.wait_phase("digits", "RolledBack", timeout=240, also=_synced)
    caught_up = time.monotonic()
    tags = reg.tags("v3-regressed")
    assert tags["modelratchet.rejected"] == "true" and tags["modelratchet.verdict"] == "rolledBack"
    assert reg.client.alias(reg.model, "champion") == reg.version("v1-good")
    write = next(w for w in status["registry"]["writes"] if w["version"] == reg.version("v3-regressed"))
    assert write["attempts"] >= 2 and "writtenAt" in write
    print(f"\n[figure] MLflow stopped -> RolledBack {rolled - stopped:.1f} s (registry down); MLflow back "
          f"(restart {mlflow_server.startup_seconds[-1]:.1f} s) -> write caught up {caught_up - back:.1f} s, "
          f"{write['attempts']} attempts")


def test_the_operators_client_against_the_real_server(mlflow_server: LocalMlflow, mlflow: MlflowClientProcess) -> None:
    """The REST client the operator uses, against the same server: what it reads, what it writes (seen through
    MLflow's own client) and the reasons it gives for what goes wrong."""
    from modelratchet.registry.mlflow import MlflowConnection, RegistryError

    conn = MlflowConnection(mlflow_server.url, timeout=30)
    model = "digits-client-check"
    v = mlflow.register(model, checkpoint_file("v1-good"))
    mlflow.set_alias(model, "challenger", v["version"])
    resolved = conn.alias(model, "challenger")
    assert (resolved.version, resolved.checkpoint, resolved.aliases) == (v["version"], v["source"], ("challenger",))
    conn.set_tag(model, v["version"], "modelratchet.verdict", "promoted")
    conn.set_alias(model, "champion", v["version"])
    seen = mlflow.version(model, v["version"])
    assert seen["tags"] == {"modelratchet.verdict": "promoted"}
    assert sorted(seen["aliases"]) == ["challenger", "champion"]
    assert conn.tags(model, v["version"]) == {"modelratchet.verdict": "promoted"}
    with pytest.raises(RegistryError) as missing:
        conn.alias(model, "nope")
    assert missing.value.reason == "AliasNotFound" and "nope" in str(missing.value)
    with pytest.raises(RegistryError) as no_model:
        conn.alias("no-such-model", "challenger")
    assert no_model.value.reason == "AliasNotFound"
    with pytest.raises(RegistryError) as refused:
        MlflowConnection(f"http://127.0.0.1:{free_port()}", timeout=5).alias(model, "challenger")
    assert refused.value.reason == "RegistryUnavailable" and "unreachable" in str(refused.value)
