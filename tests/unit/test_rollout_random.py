"""Seeded random walks through the rollout state machine: random steps and policies, random verdicts, gates,
spec edits, broken references, lost canaries and scaling, checking invariants after every tick."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest
from modelratchet.api.baseline import Verdict
from modelratchet.api.rollout import ModelRolloutStatus
from modelratchet.rollout import AnalysisReport, AnalysisRequest, analysis_due
from modelratchet.rollout.machine import ERROR_REQUEUE_MAX, ts
from rollout_sim import Sim, make_spec, report

CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
VERDICTS: list[Verdict] = ["passed", "passed", "passed", "passed", "failed", "warning", "inconclusive"]


def random_sim(rng: random.Random) -> Sim:
    steps: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 5)):
        kind = rng.choice(["weight", "analyze", "gate", "timed"])
        if kind == "weight":
            steps.append({"setWeight": rng.choice([0, 10, 25, 50, 100])})
        elif kind == "analyze":
            steps.append({"analyze": {"duration": rng.choice(["10s", "30s", "1m", "2m"])}})
        elif kind == "gate":
            steps.append({"pause": {}})
        else:
            steps.append({"pause": {"duration": rng.choice(["0s", "20s", "1m"])}})
    analysis: dict[str, Any] = {
        "interval": rng.choice(["10s", "30s"]),
        "failureLimit": rng.choice([0, 1]),
        "inconclusiveLimit": rng.choice([0, 2]),
        "onInconclusive": rng.choice(["rollback", "hold", "proceed"]),
        "warningPolicy": rng.choice(["proceed", "block"]),
    }
    if rng.random() < 0.5:
        analysis["escalateAfter"] = rng.choice([1, 2, 3])
    extra: dict[str, Any] = {"historyLimit": rng.choice([1, 3, 50])}
    if rng.random() < 0.5:
        extra["postPromotion"] = {"watch": rng.choice(["30s", "2m"])}
    if rng.random() < 0.5:
        extra["cooldown"] = rng.choice(["20s", "2m"])
    sim = Sim(
        make_spec(steps, analysis=analysis, **extra),
        canary_delay=rng.choice([0, 1, 2]),
        target_delay=rng.choice([0, 1, 2]),
    )

    def analyst(_: AnalysisRequest) -> AnalysisReport:
        return report(rng.choice(VERDICTS), pending=rng.random() < 0.2, decided=rng.random() < 0.2)

    sim.analyst = analyst
    return sim


def disturb(sim: Sim, rng: random.Random) -> None:
    r = rng.random()
    if r < 0.05:
        sim.gate(rng.choice(["promote", "abort", "retry"]), checkpoint=rng.choice([None, None, sim.spec.checkpoint]))
    elif r < 0.08:
        sim.set_spec(checkpoint=rng.choice(["v1", "v2", "v3", "v4", "v5"]))
    elif r < 0.10:
        sim.target_exists = not sim.target_exists
    elif r < 0.12:
        sim.baseline_error = None if sim.baseline_error else "ModelBaseline 'model' not found"
    elif r < 0.13:
        sim.canary = None
    elif r < 0.14:
        sim.target_replicas = rng.randint(0, 10)
    elif r < 0.15:
        sim.set_spec(historyLimit=rng.choice([1, 2, 50]))


def check_conditions(prev: ModelRolloutStatus | None, s: ModelRolloutStatus, now_s: str) -> None:
    types = [c.type for c in s.conditions or []]
    assert len(types) == len(set(types))
    for c in s.conditions or []:
        assert CAMEL.match(c.type) and CAMEL.match(c.reason), c
        old = next((o for o in (prev.conditions if prev else None) or [] if o.type == c.type), None)
        if old is None or old.status != c.status:
            assert c.last_transition_time == now_s, (old, c)
        else:
            assert c.last_transition_time == old.last_transition_time, (old, c)


@pytest.mark.parametrize("seed", range(30))
def test_random_walk_keeps_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    sim = random_sim(rng)
    prev: ModelRolloutStatus | None = None
    max_id = 0
    retried: set[str] = set()
    for i in range(250):
        disturb(sim, rng)
        if sim.status is not None and sim.status.gate is not None and sim.status.gate.action == "retry":
            retried.add(sim.status.gate.checkpoint or sim.spec.checkpoint)
        rejected_before = set((sim.status.rejected_checkpoints if sim.status else None) or [])
        dt = rng.choice([0, 1, 5, 10, 30, 60])

        # Deterministic: the same inputs twice give the same decision.
        later = sim.now + timedelta(seconds=dt)
        request = analysis_due(sim.spec, sim.current_status(), later)
        rep = sim.analyst(request) if sim.analyst and request else None
        sim.now = later
        a, b = sim.decide(rep), sim.decide(rep)
        assert a.status == b.status and a.actions == b.actions and a.requeue_after == b.requeue_after
        sim.now -= timedelta(seconds=dt)
        sim.script = [rep] if rep else []
        t = sim.tick(dt)
        assert t.status == a.status

        s = t.status
        where = (seed, i)
        assert 0.2 <= t.decision.requeue_after <= ERROR_REQUEUE_MAX, where
        ids = [h.id for h in s.history or []]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)), where
        assert len(ids) <= sim.spec.history_limit, where
        assert len([x for x in ids if x > max_id]) <= 1, where  # at most one new entry per tick
        max_id = max([max_id, *ids])
        check_conditions(prev, s, ts(t.now))
        assert s.observed_generation == sim.generation
        if s.phase in ("Progressing", "Paused"):
            assert s.canary_checkpoint and s.current_step is not None, where
            paused = next(c for c in s.conditions or [] if c.type == "Paused")
            assert (paused.status == "True") == (s.phase == "Paused"), where
            if s.canary_checkpoint in rejected_before:
                assert s.canary_checkpoint in retried, where  # never again unless retried
        if s.stable_checkpoint:
            assert s.stable_checkpoint not in (s.rejected_checkpoints or []), where
        good = s.last_good_checkpoints or []
        assert len(good) == len(set(good)) and "" not in good, where
        if sim.target_exists and not sim.baseline_error and s.phase in ("Idle", "RolledBack") and s.stable_checkpoint:
            # At rest, the world is back to stable with no canary.
            assert sim.target_checkpoint == s.stable_checkpoint and sim.canary is None, where
        prev = s
