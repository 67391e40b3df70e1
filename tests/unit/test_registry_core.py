"""The registry in the pure core: an MLflow alias names the candidate (and an outage keeps the last one it
named), verdicts are recorded before they are written, written once, retried until they are, and say why."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from modelratchet.api.rollout import ModelRolloutStatus
from modelratchet.registry import core
from modelratchet.registry.core import RegistryObservation, ResolvedVersion, WriteResult
from modelratchet.rollout import AnalysisReport, World
from rollout_sim import Sim, at, cond, iso, make_spec, metric, report

STEPS = [{"setWeight": 25}, {"analyze": {"duration": "1m"}}]
SOURCE = {"mlflow": {"model": "digits"}}


def seen(version: str, uri: str, *aliases: str) -> RegistryObservation:
    return RegistryObservation("digits", "challenger", ResolvedVersion(version, uri, aliases or ("challenger",)))


DOWN = RegistryObservation("digits", "challenger", None, error="connection refused", reason="RegistryUnavailable")


@dataclass
class RegistrySim(Sim):
    """The simulated world plus what the MLflow alias names this tick."""

    registry: RegistryObservation | None = None

    def observe(self, analysis: AnalysisReport | None = None) -> World:
        return replace(super().observe(analysis), registry=self.registry)


def sim(**extra: Any) -> RegistrySim:
    spec = make_spec(STEPS, checkpoint=None, source=SOURCE, **extra)
    return RegistrySim(spec, target_checkpoint="file:///m/v1", registry=seen("1", "file:///m/v1"))


def tags(write: Any) -> dict[str, str]:
    return {t.key: t.value for t in write.tags}


# ---------------------------------------------------------------------------------------------- resolution


def test_the_alias_names_the_candidate_and_moving_it_starts_a_rollout() -> None:
    s = sim()
    s.start()
    assert s.phase == "Idle", "the alias names what already serves: nothing to roll out"
    assert s.status is not None and s.status.registry is not None
    assert s.status.registry.candidate is not None and s.status.registry.candidate.version == "1"
    assert cond(s.status, "RegistrySynced").status == "True"

    s.registry = seen("2", "file:///m/v2", "challenger", "staging")
    t = s.tick(1)
    assert t.status.phase == "Progressing" and t.status.canary_checkpoint == "file:///m/v2"
    cand = t.status.registry.candidate if t.status.registry else None
    assert cand is not None and (cand.version, cand.aliases) == ("2", ["challenger", "staging"])
    known = {k.checkpoint: k.version for k in (t.status.registry.known or [])} if t.status.registry else {}
    assert known == {"file:///m/v1": "1", "file:///m/v2": "2"}


def test_never_resolved_is_a_reference_problem_not_a_rollout() -> None:
    s = RegistrySim(make_spec(STEPS, checkpoint=None, source=SOURCE), registry=DOWN)
    t = s.tick()
    ready = cond(t.status, "Ready")
    assert (ready.status, ready.reason) == ("False", "RegistryUnavailable")
    assert "MLflow model 'digits' alias 'challenger': connection refused" in ready.message
    assert t.status.canary_checkpoint is None
    synced = cond(t.status, "RegistrySynced")
    assert (synced.status, synced.reason) == ("False", "RegistryUnavailable")


def test_an_outage_keeps_the_last_resolved_candidate_and_still_rolls_back() -> None:
    s = sim()
    s.start()
    s.registry = seen("2", "file:///m/v2")
    s.tick(1)
    s.registry = DOWN  # MLflow goes away mid-rollout
    s.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    t = s.run_until(lambda x: x.phase == "RolledBack")
    assert t.status.rejected_checkpoints == ["file:///m/v2"]
    assert s.target_checkpoint == "file:///m/v1"
    synced = cond(t.status, "RegistrySynced")
    assert synced.status == "False" and "1 verdict write(s) pending" in synced.message
    assert [w.version for w in core.due(t.status)] == ["2"]


def test_resolution_of_a_different_alias_does_not_carry_over() -> None:
    status = ModelRolloutStatus()
    status.registry = core.note_resolution(None, seen("2", "file:///m/v2"), iso(0))
    spec = make_spec(STEPS, checkpoint=None, source={"mlflow": {"model": "digits", "alias": "other"}})
    desired, problem, reason = core.desired_checkpoint(spec, status, None)
    assert desired is None and reason == "RegistryUnavailable" and problem is not None and "'other'" in problem


# ---------------------------------------------------------------------------------------------- verdicts


def promoted_sim(**extra: Any) -> RegistrySim:
    s = sim(**extra)
    s.start()
    s.registry = seen("2", "file:///m/v2")
    s.run_until(lambda x: x.phase == "Promoted")
    return s


def test_a_promotion_moves_champion_and_tags_the_version_with_the_analysis() -> None:
    s = promoted_sim()
    assert s.status is not None
    (w,) = core.due(s.status)
    assert (w.version, w.verdict, w.set_alias) == ("2", "promoted", "champion")
    t = tags(w)
    assert t["modelratchet.verdict"] == "promoted"
    assert t["modelratchet.decidedAt"] == w.recorded_at
    assert "modelratchet.rejected" not in t
    entry = next(h for h in s.status.history or [] if h.checkpoint == "file:///m/v2")
    assert t["modelratchet.historyId"] == str(entry.id)
    assert json.loads(t["modelratchet.metrics"])[0]["metric"] == "accuracy"
    assert cond(s.status, "RegistrySynced").reason == "WritePending"


def test_a_rollback_tags_the_version_rejected_and_leaves_champion() -> None:
    s = sim(registry={"promotedAlias": "prod", "rejectedTag": "quality.rejected"})
    s.start()
    s.registry = seen("3", "file:///m/v3")
    s.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    s.run_until(lambda x: x.phase == "RolledBack")
    assert s.status is not None
    (w,) = core.due(s.status)
    assert (w.version, w.verdict, w.set_alias) == ("3", "rolledBack", None)
    assert tags(w)["quality.rejected"] == "true"
    assert tags(w)["modelratchet.verdict"] == "rolledBack"
    assert "accuracy fell" in tags(w)["modelratchet.reason"]


def test_a_revert_moves_champion_back_to_the_version_serving_again() -> None:
    s = promoted_sim(postPromotion={"watch": "10m"})
    assert s.status is not None
    s.status = core.apply_results(s.status, [WriteResult(w.id) for w in core.due(s.status)], iso(100))
    s.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    s.run_until(lambda x: x.phase == "RolledBack")
    writes = core.due(s.status)
    assert [(w.version, w.verdict, w.set_alias) for w in writes] == [
        ("2", "reverted", None),
        ("1", "restored", "champion"),
    ]
    assert tags(writes[0])["modelratchet.rejected"] == "true"


def test_writes_are_made_once_retried_while_failing_and_bounded() -> None:
    s = sim()
    s.start()
    s.registry = seen("2", "file:///m/v2")
    s.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    s.run_until(lambda x: x.phase == "RolledBack")
    status = s.status
    assert status is not None
    (w,) = core.due(status)
    failed = core.apply_results(status, [WriteResult(w.id, error="503 Service Unavailable")], iso(50))
    (again,) = core.due(failed)
    assert (again.attempts, again.last_error) == (1, "503 Service Unavailable")
    # A failing registry is not asked in a loop: 10 s after the first failure, then doubling up to 5 minutes.
    assert core.due(failed, at(59)) == [] and core.due(failed, at(60)) == [again]
    twice = core.apply_results(failed, [WriteResult(w.id, error="503")], iso(60))
    assert core.due(twice, at(79)) == [] and len(core.due(twice, at(80))) == 1
    # Failed for want of an answer and the registry answers again: it catches up 10 s after the last try.
    away = core.apply_results(twice, [WriteResult(w.id, error="unreachable", reason="RegistryUnavailable")], iso(80))
    assert core.due(away, at(105)) == [] and len(core.due(away, at(105), answering=True)) == 1
    assert core.due(away, at(89), answering=True) == []
    many_failures = twice.model_copy(deep=True)
    assert many_failures.registry is not None and many_failures.registry.writes is not None
    many_failures.registry.writes[0].attempts = 30
    assert core.due(many_failures, at(60 + 299)) == [] and len(core.due(many_failures, at(60 + 300))) == 1
    condition = core.synced_condition(failed, DOWN)
    assert condition[0] == "False" and "connection refused" in condition[2]
    condition = core.synced_condition(failed, seen("2", "file:///m/v2"))
    assert condition[:2] == ("False", "WriteFailed") and "503" in condition[2]

    done = core.apply_results(twice, [WriteResult(w.id)], iso(80))
    assert core.due(done) == []
    assert done.registry is not None and done.registry.writes is not None
    assert done.registry.writes[0].written_at == iso(80) and done.registry.writes[0].attempts == 3
    # Applying the same result again changes nothing: a write is dated once.
    assert core.apply_results(done, [WriteResult(w.id)], iso(70)) == done
    # A replayed decision on the same stored status records nothing twice.
    s.status = done
    assert core.due(s.tick(1).status) == []

    many = done.model_copy(deep=True)
    for i in range(30):
        core.record_verdict(s.spec, many, "rolledBack", "file:///m/v2", f"again {i}", iso(80 + i))
    assert many.registry is not None and len(many.registry.writes or []) == core.WRITES_LIMIT
    assert len(core.due(many)) == core.WRITES_LIMIT


def test_metrics_tag_stays_within_mlflows_limit() -> None:
    s = promoted_sim()
    assert s.status is not None and s.status.history
    s.status.history[0].metrics = [metric(name=f"m{i}" + "x" * 200) for i in range(60)]
    core.record_verdict(s.spec, s.status, "rolledBack", s.status.history[0].checkpoint, "x" * 9000, iso(9))
    w = core.due(s.status)[-1]
    assert all(len(t.value) <= core.TAG_VALUE_LIMIT for t in w.tags)
    assert len(json.loads(tags(w)["modelratchet.metrics"])) < 60


def test_a_literal_checkpoint_writes_nothing_and_disabled_write_back_neither() -> None:
    plain = Sim(make_spec(STEPS))
    plain.start()
    plain.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    plain.run_until(lambda x: x.phase == "RolledBack")
    assert plain.status is not None and plain.status.registry is None
    assert not any(c.type == "RegistrySynced" for c in plain.status.conditions or [])

    off = sim(registry={"enabled": False})
    off.start()
    off.registry = seen("2", "file:///m/v2")
    off.script = [report("failed", "accuracy fell", metrics=[metric(value=0.5)])]
    off.run_until(lambda x: x.phase == "RolledBack")
    assert off.status is not None and core.due(off.status) == []
