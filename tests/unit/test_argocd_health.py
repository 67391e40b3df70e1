"""The Argo CD health checks, run by a real Lua interpreter on ModelRollout and ModelBaseline objects."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from modelratchet.api.baseline import LastValidation, ModelBaselineStatus
from modelratchet.api.common import Condition
from modelratchet.api.rollout import ModelRolloutStatus
from modelratchet.baselines import baseline_status
from modelratchet.settings import OperatorSettings
from rollout_sim import Sim, make_spec, report

ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"
ROLLOUT_LUA = (ARGOCD / "health" / "modelratchet.io_ModelRollout.lua").read_text()
BASELINE_LUA = (ARGOCD / "health" / "modelratchet.io_ModelBaseline.lua").read_text()
# Argo CD runs health scripts with gopher-lua, a Lua 5.1; 5.4 guards against depending on 5.1 quirks.
LUA_VERSIONS = ["lua51", "lua54"]
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Unknown"}
T = "2025-03-01T12:00:00Z"

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------------- running Lua


def to_lua(lua: Any, value: Any) -> Any:
    """A JSON-shaped Python value as Lua sees it in Argo CD: tables for objects and arrays (from 1), floats for
    every number, and null fields absent."""
    if isinstance(value, dict):
        table = lua.table()
        for k, v in value.items():
            if v is not None:
                table[k] = to_lua(lua, v)
        return table
    if isinstance(value, list):
        table = lua.table()
        for i, v in enumerate(value, start=1):
            table[i] = to_lua(lua, v)
        return table
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def run_health(script: str, obj: Obj, version: str = "lua51") -> tuple[str, str]:
    module = importlib.import_module(f"lupa.{version}")
    lua = module.LuaRuntime(unpack_returned_tuples=True)
    # What Argo CD's sandbox leaves out must not be needed: it opens only the base and table libraries (and a
    # safe os), so there is no string or math library and strings have no methods (util/lua/lua.go).
    lua.execute("debug.setmetatable('', nil); string = nil; math = nil; os = nil; io = nil; debug = nil;"
                " require = nil; dofile = nil; loadfile = nil")
    lua.globals().obj = to_lua(lua, obj)
    hs = lua.execute(script)
    status, message = hs["status"], hs["message"]
    assert isinstance(status, str) and status in STATUSES, status
    assert isinstance(message, str) and message.strip(), f"empty message for {status}"
    return status, message


@pytest.fixture(params=LUA_VERSIONS)
def lua_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def condition(type_: str, status: str, reason: str = "Because", message: str = "") -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message, last_transition_time=T)


def rollout(status: ModelRolloutStatus | None, generation: int = 2, steps: int = 4) -> Obj:
    obj: Obj = {
        "apiVersion": "modelratchet.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation},
        "spec": {"checkpoint": "v43", "steps": [{"setWeight": 10 * (i + 1)} for i in range(steps)]},
    }
    if status is not None:
        obj["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return obj


def baseline(status: ModelBaselineStatus | None, generation: int = 2) -> Obj:
    obj: Obj = {
        "apiVersion": "modelratchet.io/v1alpha1",
        "kind": "ModelBaseline",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation},
        "spec": {"model": "fraud", "metrics": [{"name": "accuracy", "threshold": {"type": "min", "value": 0.9}}]},
    }
    if status is not None:
        obj["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return obj


# ---------------------------------------------------------------------------------------------- ModelRollout

PHASES = [None, "Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Failed"]
READY = [None, "True", "False", "Unknown"]
BY_PHASE = {
    "Idle": "Healthy",
    "Promoted": "Healthy",
    "Progressing": "Progressing",
    "Paused": "Progressing",  # without a Paused condition naming a person's gate: see the script's header
    "RolledBack": "Degraded",
}


def expected_rollout_health(phase: str | None, ready: str | None, observed: bool) -> str:
    if phase is None:
        return "Progressing"
    if phase == "Failed":
        return "Degraded"
    if not observed:
        return "Progressing"
    if ready == "False":
        return "Degraded"
    return BY_PHASE[phase]


@pytest.mark.parametrize(("phase", "ready", "observed"), list(itertools.product(PHASES, READY, [True, False])))
def test_rollout_every_phase_and_condition(
    phase: str | None, ready: str | None, observed: bool, lua_version: str
) -> None:
    conditions = [] if ready is None else [condition("Ready", ready, "TargetNotFound", "Deployment 'x' not found")]
    status = ModelRolloutStatus(
        phase=phase,
        observed_generation=2 if observed else 1,
        message=f"{phase} message" if phase else None,
        stable_checkpoint="v42",
        conditions=conditions or None,
    )
    health, message = run_health(ROLLOUT_LUA, rollout(status), lua_version)
    assert health == expected_rollout_health(phase, ready, observed), message


def test_rollout_without_status(lua_version: str) -> None:
    assert run_health(ROLLOUT_LUA, rollout(None), lua_version) == (
        "Progressing",
        "Waiting for the operator to observe this ModelRollout",
    )


def test_rollout_spec_change_not_observed_yet(lua_version: str) -> None:
    status = ModelRolloutStatus(phase="Promoted", observed_generation=3, message="promoted v42")
    assert run_health(ROLLOUT_LUA, rollout(status, generation=4), lua_version) == (
        "Progressing",
        "Waiting for the operator to observe generation 4",  # an integer, though Lua got 4.0
    )
    no_observed = ModelRolloutStatus(phase="Idle")
    assert run_health(ROLLOUT_LUA, rollout(no_observed), lua_version)[0] == "Progressing"


@pytest.mark.parametrize("generation", [1, 10, 1234567, 2**40])
def test_whole_numbers_are_written_without_the_string_or_math_library(generation: int, lua_version: str) -> None:
    status = ModelRolloutStatus(phase="Promoted", observed_generation=0, message="promoted v42")
    assert run_health(ROLLOUT_LUA, rollout(status, generation=generation), lua_version)[1] == (
        f"Waiting for the operator to observe generation {generation}"
    )
    mb = ModelBaselineStatus(observed_generation=0)
    assert run_health(BASELINE_LUA, baseline(mb, generation=generation), lua_version)[1] == (
        f"Waiting for the operator to validate generation {generation}"
    )


def test_rollout_progressing_says_where_it_is(lua_version: str) -> None:
    status = ModelRolloutStatus(
        phase="Progressing",
        observed_generation=2,
        message="step 1: analyze 5m",
        canary_checkpoint="s3://m/v43",
        canary_weight=25,
        current_step=1,
    )
    assert run_health(ROLLOUT_LUA, rollout(status), lua_version) == (
        "Progressing",
        "step 2/4, canary s3://m/v43 at 25%: step 1: analyze 5m",
    )
    status.current_step = 4
    status.message = None
    status.conditions = [condition("Progressing", "True", "StepAdvanced", "promoting s3://m/v43")]
    assert run_health(ROLLOUT_LUA, rollout(status), lua_version) == (
        "Progressing",
        "all 4 steps done, canary s3://m/v43 at 25%: promoting s3://m/v43",
    )


@pytest.mark.parametrize(
    ("reason", "health"),
    [("ManualGate", "Suspended"), ("WarningBlocked", "Suspended"), ("TimedPause", "Progressing"),
     ("WaitingForData", "Progressing")],
)
def test_rollout_paused_for_a_person_is_suspended(reason: str, health: str, lua_version: str) -> None:
    """A manual gate or a blocking warning waits for `modelratchet promote` or `abort`: Suspended, as Argo CD shows
    a paused Argo Rollout. A timed pause or a wait for data goes on by itself: Progressing."""
    text = "paused at step 2: `modelratchet promote` to continue, `abort` to roll back"
    status = ModelRolloutStatus(
        phase="Paused",
        observed_generation=2,
        message=text,
        canary_checkpoint="v43",
        canary_weight=50,
        current_step=2,
        conditions=[condition("Paused", "True", reason, text)],
    )
    assert run_health(ROLLOUT_LUA, rollout(status), lua_version) == (health, f"Paused ({reason}): {text}")


def test_rollout_paused_without_message_or_condition(lua_version: str) -> None:
    status = ModelRolloutStatus(
        phase="Paused", observed_generation=2, canary_checkpoint="v43", canary_weight=50, current_step=2
    )
    assert run_health(ROLLOUT_LUA, rollout(status), lua_version) == (
        "Progressing",
        "Paused: step 3/4, canary v43 at 50%",
    )


def test_rollout_settled_messages(lua_version: str) -> None:
    promoted = ModelRolloutStatus(phase="Promoted", observed_generation=2, stable_checkpoint="v43")
    assert run_health(ROLLOUT_LUA, rollout(promoted), lua_version) == ("Healthy", "Serving v43")
    promoted.message = "promoted v43 (was v42); watching until 2025-03-01T12:30:00Z"
    promoted.post_promotion_until = "2025-03-01T12:30:00Z"
    assert run_health(ROLLOUT_LUA, rollout(promoted), lua_version) == ("Healthy", promoted.message)

    idle = ModelRolloutStatus(phase="Idle", observed_generation=2)
    assert run_health(ROLLOUT_LUA, rollout(idle), lua_version) == ("Healthy", "Idle")

    text = "rolled back v43, serving v42: analysis failed: accuracy 0.81 < 0.9"
    rolled_back = ModelRolloutStatus(
        phase="RolledBack",
        observed_generation=2,
        conditions=[condition("RolledBack", "True", "AnalysisFailed", text)],
    )
    assert run_health(ROLLOUT_LUA, rollout(rolled_back), lua_version) == ("Degraded", text)
    # Later the operator says what to do while spec.checkpoint still asks for the rejected one: both are shown.
    rolled_back.message = "spec.checkpoint v43 was rejected; v42 keeps serving. Revert the commit that set v43"
    assert run_health(ROLLOUT_LUA, rollout(rolled_back), lua_version) == ("Degraded", f"{text}. {rolled_back.message}")
    rolled_back.conditions = None
    assert run_health(ROLLOUT_LUA, rollout(rolled_back), lua_version) == ("Degraded", rolled_back.message)
    rolled_back.message = None
    assert run_health(ROLLOUT_LUA, rollout(rolled_back), lua_version) == (
        "Degraded",
        "The candidate checkpoint was rolled back",
    )

    # The operator could not read the spec: it says so without an observedGeneration.
    failed = ModelRolloutStatus(phase="Failed", message="spec.steps: Field required")
    assert run_health(ROLLOUT_LUA, rollout(failed), lua_version) == ("Degraded", "spec.steps: Field required")


def test_rollout_broken_references_are_degraded(lua_version: str) -> None:
    status = ModelRolloutStatus(
        phase="Progressing",
        observed_generation=2,
        conditions=[condition("Ready", "False", "BaselineNotFound")],
    )
    assert run_health(ROLLOUT_LUA, rollout(status), lua_version) == ("Degraded", "BaselineNotFound")


def test_rollout_unknown_phase(lua_version: str) -> None:
    obj = rollout(ModelRolloutStatus(observed_generation=2))
    obj["status"]["phase"] = "Hibernating"
    assert run_health(ROLLOUT_LUA, obj, lua_version) == ("Unknown", "Unrecognised phase Hibernating")


def test_rollout_integers_work_too() -> None:
    """Lua 5.3+ distinguishes integers; the script must not care how a number arrives."""
    import lupa.lua54

    lua = lupa.lua54.LuaRuntime(unpack_returned_tuples=True)
    lua.execute("debug.setmetatable('', nil); string = nil; math = nil")
    obj = rollout(ModelRolloutStatus(phase="Progressing", observed_generation=2, canary_weight=10, current_step=0))
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(ROLLOUT_LUA)
    assert (hs["status"], hs["message"]) == ("Progressing", "step 1/4: Rolling out")


# -------------------------------------------------------------- ModelRollout statuses the state machine writes


def health_of(sim: Sim) -> tuple[str, str]:
    obj = rollout(sim.status, generation=sim.generation, steps=len(sim.spec.steps))
    return run_health(ROLLOUT_LUA, obj)


def test_health_through_a_promoted_rollout() -> None:
    sim = Sim(make_spec([{"setWeight": 25}, {"pause": {}}, {"analyze": {"duration": "1m"}}], checkpoint="v1"))
    sim.tick()
    assert health_of(sim) == ("Healthy", "Serving v1")

    sim.set_spec(checkpoint="v2")
    assert health_of(sim) == ("Progressing", "Waiting for the operator to observe generation 2")
    sim.tick(1)
    assert health_of(sim)[0] == "Progressing"
    sim.run_until(lambda s: s.phase == "Paused")
    health, message = health_of(sim)
    assert health == "Suspended" and message.startswith("Paused (ManualGate): ")
    assert "modelratchet promote" in message

    sim.gate("promote", "v2")
    sim.run_until(lambda s: s.phase == "Promoted", dt=10)
    assert health_of(sim) == ("Healthy", sim.status.message if sim.status else "")


def test_health_through_a_rolled_back_rollout() -> None:
    sim = Sim(make_spec(), script=[report("failed", "accuracy 0.81 < 0.9")])
    sim.start()
    assert health_of(sim)[0] == "Progressing"
    sim.run_until(lambda s: s.phase == "RolledBack", dt=10)
    health, message = health_of(sim)
    assert health == "Degraded" and "accuracy 0.81 < 0.9" in message
    # While spec.checkpoint still names it, Argo CD shows why and what to do in git.
    sim.tick(10)
    health, message = health_of(sim)
    assert health == "Degraded" and "accuracy 0.81 < 0.9" in message
    assert "revert the commit" in message and "commit a new checkpoint" in message


def test_health_when_the_target_disappears() -> None:
    sim = Sim(make_spec())
    sim.start()
    sim.target_exists = False
    sim.tick(1)
    assert health_of(sim) == ("Degraded", "Deployment 'serving' not found")


# ---------------------------------------------------------------------------------------------- ModelBaseline


def test_baseline_without_status(lua_version: str) -> None:
    assert run_health(BASELINE_LUA, baseline(None), lua_version) == (
        "Progressing",
        "Waiting for the operator to validate this ModelBaseline",
    )


@pytest.mark.parametrize(
    ("ready", "observed", "verdict", "expected"),
    [
        (
            ready,
            observed,
            verdict,
            "Progressing"
            if not observed or ready in (None, "Unknown")
            else {"True": "Healthy", "False": "Degraded"}[ready],
        )
        for ready, observed, verdict in itertools.product(
            [None, "True", "False", "Unknown"], [True, False], [None, "passed", "warning", "failed", "inconclusive"]
        )
    ],
)
def test_baseline_every_condition_and_verdict(
    ready: str | None, observed: bool, verdict: str | None, expected: str, lua_version: str
) -> None:
    status = ModelBaselineStatus(
        observed_generation=2 if observed else 1,
        conditions=[condition("Ready", ready, "Valid", "3 metrics")] if ready else None,
        last_validation=LastValidation(time=T, verdict=verdict, checkpoint="v43") if verdict else None,
    )
    health, message = run_health(BASELINE_LUA, baseline(status), lua_version)
    assert health == expected, message
    if observed and verdict:
        # A failed candidate does not make the baseline unhealthy; it only shows in the message.
        assert message.endswith(f"; last validation: {verdict} for v43 at {T}")


def test_baseline_messages(lua_version: str) -> None:
    invalid = ModelBaselineStatus(
        observed_generation=2,
        conditions=[condition("Ready", "False", "Invalid", "spec.metrics.0.threshold: tiers must increase")],
    )
    assert run_health(BASELINE_LUA, baseline(invalid), lua_version) == (
        "Degraded",
        "spec.metrics.0.threshold: tiers must increase",
    )
    no_message = ModelBaselineStatus(observed_generation=2, conditions=[condition("Ready", "False", "Invalid")])
    assert run_health(BASELINE_LUA, baseline(no_message), lua_version) == ("Degraded", "Invalid")
    valid = ModelBaselineStatus(observed_generation=2, conditions=[condition("Ready", "True", "Valid")])
    assert run_health(BASELINE_LUA, baseline(valid), lua_version) == ("Healthy", "Valid")


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ([{"name": "accuracy", "threshold": {"type": "min", "value": 0.9}}], ("Healthy", "1 metrics")),
        ([{"name": "accuracy", "threshold": {"type": "delta", "value": 0.1}}], ("Degraded", None)),
    ],
)
def test_baseline_statuses_the_operator_writes(metrics: list[Obj], expected: tuple[str, str | None]) -> None:
    obj = baseline(None, generation=1)
    obj["spec"]["metrics"] = metrics
    obj["status"] = baseline_status(obj, [], datetime(2025, 3, 1, tzinfo=UTC))
    health, message = run_health(BASELINE_LUA, obj)
    assert health == expected[0]
    if expected[1] is not None:
        assert message == expected[1]
    else:
        assert "delta and ratio thresholds need a baseline" in message


# ---------------------------------------------------------------------------------------------- the cm patch


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("argocd_render", ARGOCD / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cm_patch_is_rendered_from_the_lua_files() -> None:
    render = load_render()
    committed = (ARGOCD / "argocd-cm-patch.yaml").read_text()
    assert render.render() == committed, "run python deploy/argocd/render.py"
    assert render.main(["--check"]) == 0

    patch = yaml.safe_load(committed)
    assert (patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"]) == (
        "ConfigMap",
        "argocd-cm",
        "argocd",
    )
    data = patch["data"]
    assert data["resource.customizations.health.modelratchet.io_ModelRollout"] == ROLLOUT_LUA
    assert data["resource.customizations.health.modelratchet.io_ModelBaseline"] == BASELINE_LUA
    ignore = yaml.safe_load(data["resource.customizations.ignoreDifferences.apps_Deployment"])
    assert ignore == {"managedFieldsManagers": [OperatorSettings().field_manager]}


def test_application_ignores_the_operators_fields() -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert {"group": "apps", "kind": "Deployment", "managedFieldsManagers": [OperatorSettings().field_manager]} in app[
        "spec"
    ]["ignoreDifferences"]
    route = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
             "managedFieldsManagers": [OperatorSettings().field_manager]}
    assert route in app["spec"]["ignoreDifferences"], "the router's HTTPRoute rules are not drift either"
    assert {"RespectIgnoreDifferences=true", "ServerSideApply=true"} <= set(app["spec"]["syncPolicy"]["syncOptions"])
    examples = Path(__file__).resolve().parents[2] / app["spec"]["source"]["path"]
    assert examples.is_dir()
