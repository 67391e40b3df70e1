"""The per-object scheduler: never overlapping, on time, and resilient to failures."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from modelratchet.scheduler import Key, Scheduler

HANG_GUARD = 10.0  # seconds a wait may take before the test fails as hung; not a measurement


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise TimeoutError("condition not met")


def test_one_object_never_runs_twice_at_once_and_pokes_while_running_rerun() -> None:
    running: dict[Key, int] = defaultdict(int)
    overlap = threading.Event()
    runs: list[Key] = []
    gate = threading.Event()

    def work(key: Key) -> float | None:
        running[key] += 1
        if running[key] > 1:
            overlap.set()
        runs.append(key)
        if len(runs) == 1:
            gate.wait(2)
        running[key] -= 1
        return None  # forget after each run unless poked again

    s = Scheduler(work, workers=4, max_interval=0.5)
    s.start()
    key: Key = ("rollout", "ns", "a")
    s.poke(key)
    wait_until(lambda: len(runs) == 1)
    for _ in range(5):
        s.poke(key)  # while running: marks it dirty, no parallel run
    gate.set()
    wait_until(lambda: len(runs) == 2)
    time.sleep(0.2)
    s.stop()
    assert not overlap.is_set()
    assert len(runs) == 2  # five pokes during a run collapse into exactly one re-run


def test_a_poke_between_hand_out_and_run_is_never_lost() -> None:
    """A watch event that pokes an object after the loop handed it out, before it is marked running: its entry
    comes due while the object runs. The object must be looked at again after the run, and keep its rhythm."""
    key: Key = ("rollout", "ns", "a")
    runs: list[float] = []
    gate = threading.Event()
    raced = threading.Event()
    s: Scheduler

    def is_leader() -> bool:
        # Asked by the loop right after it took the object off the schedule, before it marks it running.
        if runs == [] and not raced.is_set():
            raced.set()
            s.poke(key)
        return True

    def work(k: Key) -> float | None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            gate.wait(HANG_GUARD)
        return 0.05  # the object asks to be looked at again soon

    s = Scheduler(work, workers=2, max_interval=0.5, is_leader=is_leader)
    s.start()
    try:
        s.poke(key)
        wait_until(lambda: len(runs) == 1 and raced.is_set())
        wait_until(lambda: not s._heap)  # the raced entry came due while the object ran, and was taken
        gate.set()
        wait_until(lambda: len(runs) >= 4, timeout=HANG_GUARD)
    finally:
        s.stop()


def test_requeue_delay_is_honoured_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next look the work asks for is scheduled with its delay capped to max_interval; None forgets the object."""
    key: Key = ("rollout", "ns", "a")
    runs: list[Key] = []
    third_done = threading.Event()

    def work(k: Key) -> float | None:
        runs.append(k)
        if len(runs) < 3:
            return 100.0  # capped to max_interval
        third_done.set()
        return None

    s = Scheduler(work, max_interval=0.2)
    requested: list[float] = []  # every delay the object was (re)scheduled with, in order
    poke = s.poke

    def recording_poke(k: Key, delay: float = 0.0) -> None:
        requested.append(delay)
        poke(k, delay)

    monkeypatch.setattr(s, "poke", recording_poke)
    s.start()
    s.poke(key)
    try:
        assert third_done.wait(HANG_GUARD), f"the work ran {runs}, not three times"
        wait_until(lambda: s.known() == [])
    finally:
        s.stop()
    assert runs == [key] * 3
    # The first look was asked for now; each run asked for 100 s and was rescheduled 0.2 s out, not 100 s nor at
    # once; the last returned None and was not rescheduled.
    assert requested == [0.0, 0.2, 0.2]


def test_uncapped_kinds_keep_the_delay_their_work_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind whose reads are all watched (baselines) is looked at again when its work asks, not every
    max_interval; other kinds stay capped."""
    baseline: Key = ("baseline", "ns", "b")
    rollout: Key = ("rollout", "ns", "a")
    done = threading.Event()

    def work(k: Key) -> float | None:
        if k == rollout:
            done.set()
        return 30.0

    s = Scheduler(work, max_interval=0.2, uncapped=frozenset({"baseline"}))
    requested: list[tuple[Key, float]] = []
    poke = s.poke

    def recording_poke(k: Key, delay: float = 0.0) -> None:
        requested.append((k, delay))
        poke(k, delay)

    monkeypatch.setattr(s, "poke", recording_poke)
    s.start()
    s.poke(baseline)
    s.poke(rollout)
    try:
        assert done.wait(HANG_GUARD)
        wait_until(lambda: (baseline, 30.0) in requested and (rollout, 0.2) in requested)
    finally:
        s.stop()
    assert (baseline, 0.2) not in requested and (rollout, 30.0) not in requested


def test_a_kind_at_its_limit_waits_in_the_schedule_and_leaves_the_workers_to_others() -> None:
    """With baselines limited to one at a time, three slow baselines never run together, and a rollout poked
    after them runs while they wait (it is not stuck behind them in the workers)."""
    running: dict[str, int] = defaultdict(int)
    most: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    release = threading.Event()
    rollout_ran = threading.Event()
    done: list[Key] = []

    def work(k: Key) -> float | None:
        with lock:
            running[k[0]] += 1
            most[k[0]] = max(most[k[0]], running[k[0]])
        if k[0] == "rollout":
            rollout_ran.set()
        else:
            release.wait(HANG_GUARD)
        with lock:
            running[k[0]] -= 1
            done.append(k)
        return None

    s = Scheduler(work, workers=4, limits={"baseline": 1})
    s.start()
    try:
        for name in ("a", "b", "c"):
            s.poke(("baseline", "ns", name))
        s.poke(("rollout", "ns", "r"))
        assert rollout_ran.wait(HANG_GUARD), "the rollout waited behind the baselines"
        assert sum(1 for k in done if k[0] == "baseline") == 0  # the first baseline is still held
        release.set()
        wait_until(lambda: len(done) == 4, timeout=HANG_GUARD)
    finally:
        s.stop()
    assert most["baseline"] == 1


def test_a_failing_object_backs_off_and_others_keep_going() -> None:
    counts: dict[str, int] = defaultdict(int)

    def work(key: Key) -> float | None:
        counts[key[2]] += 1
        if key[2] == "bad":
            raise RuntimeError("boom")
        return 0.05

    s = Scheduler(work, max_interval=0.05, backoff_max=0.4)
    s.start()
    s.poke(("rollout", "ns", "bad"))
    s.poke(("rollout", "ns", "good"))
    wait_until(lambda: counts["good"] >= 20)
    s.stop()
    # backoff 1s, 2s... capped at 0.4 s: far fewer attempts than the healthy object's looks.
    assert 1 <= counts["bad"] < counts["good"] / 2


def test_inactive_scheduler_does_no_work_until_leading() -> None:
    counts: list[Key] = []
    leading = threading.Event()
    s = Scheduler(lambda k: counts.append(k) or None, max_interval=0.1, is_leader=leading.is_set, standby_interval=0.05)
    s.start()
    s.poke(("rollout", "ns", "a"))
    time.sleep(0.3)
    assert counts == []
    leading.set()
    wait_until(lambda: len(counts) == 1, timeout=3)
    s.stop()


def test_leadership_is_checked_again_right_before_the_work_runs() -> None:
    """Handed out while leading, but the lease was lost before a worker picked it up: the work must not run."""
    calls = 0
    refused = threading.Event()

    def is_leader() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:  # the loop's check, as it hands the object to a worker
            return True
        refused.set()
        return False

    ran: list[Key] = []
    s = Scheduler(lambda k: ran.append(k) or None, is_leader=is_leader, standby_interval=0.05)
    s.start()
    s.poke(("rollout", "ns", "a"))
    assert refused.wait(3)
    s.stop()
    assert ran == []
    assert ("rollout", "ns", "a") in s.known(), "the object stays scheduled for when this replica leads again"
