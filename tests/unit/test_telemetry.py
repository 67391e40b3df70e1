"""The operator's /metrics: a deleted rollout leaves no series behind; the by-phase gauges survive 16 writers."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter as Tally
from collections.abc import Iterator

import pytest
from modelratchet import telemetry
from prometheus_client import generate_latest


def _series(namespace: str) -> list[str]:
    text = generate_latest(telemetry.REGISTRY).decode()
    return [line for line in text.splitlines() if not line.startswith("#") and f'namespace="{namespace}"' in line]


def _value(name: str, **labels: str) -> float | None:
    return telemetry.REGISTRY.get_sample_value(name, labels)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads as often as possible so unguarded read-modify-writes collide."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_a_deleted_rollout_leaves_no_series() -> None:
    ns = "t-deleted"
    telemetry.observe_phase(ns, "a", "Progressing")
    telemetry.observe_phase(ns, "b", "Progressing")
    for r in ("a", "b"):
        telemetry.CANARY_WEIGHT.labels(ns, r).set(10)
        telemetry.ANALYSES.labels(ns, r, "passed").inc()
        telemetry.METRIC_VALUE.labels(ns, r, "accuracy", "candidate").set(0.9)
        telemetry.PROMOTIONS.labels(ns, r).inc()
        telemetry.ROLLBACKS.labels(ns, r, "AnalysisFailed").inc()
    telemetry.observe_phase(ns, "a", "Promoted")
    assert _value("modelratchet_rollouts", namespace=ns, phase="Promoted") == 1

    telemetry.forget_rollout(ns, "a")

    left = _series(ns)
    assert not [s for s in left if 'rollout="a"' in s], left
    assert [s for s in left if 'rollout="b"' in s], "the other rollout keeps its series"
    assert _value("modelratchet_rollouts", namespace=ns, phase="Promoted") == 0
    assert _value("modelratchet_rollouts", namespace=ns, phase="Progressing") == 1

    telemetry.observe_phase(ns, "b", None)  # gone (e.g. found deleted by a reconcile)
    assert _series(ns) == [], "the namespace's last rollout took its by-phase series along"


def test_a_phase_change_keeps_one_info_series() -> None:
    ns = "t-phase"
    for phase in ("Idle", "Progressing", "Paused", "Progressing", "Promoted"):
        telemetry.observe_phase(ns, "r", phase)
    info = [s for s in _series(ns) if s.startswith("modelratchet_rollout_phase_info")]
    assert info == [f'modelratchet_rollout_phase_info{{namespace="{ns}",phase="Promoted",rollout="r"}} 1.0'], info
    telemetry.forget_rollout(ns, "r")


def test_sixteen_workers_keep_the_phase_gauges_consistent(fast_switching: None) -> None:
    namespaces = [f"t-hammer-{i}" for i in range(3)]
    rollouts = [f"r{i}" for i in range(20)]
    phases = ["Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Failed", None]
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(1500):
                telemetry.observe_phase(rng.choice(namespaces), rng.choice(rollouts), rng.choice(phases))
        except BaseException as e:  # the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Every rollout seen has exactly one phase series, and the counts agree with them.
    for ns in namespaces:
        info = Tally[str]()
        for r in rollouts:
            ones = [
                p for p in phases if p and _value("modelratchet_rollout_phase_info", namespace=ns, rollout=r, phase=p)
            ]
            assert len(ones) <= 1, (ns, r, ones)
            info.update(ones)
        for p in phases:
            if p:
                assert (_value("modelratchet_rollouts", namespace=ns, phase=p) or 0) == info[p], (ns, p)
    for ns in namespaces:
        for r in rollouts:
            telemetry.forget_rollout(ns, r)
        assert _series(ns) == []
