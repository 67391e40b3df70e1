"""TrafficDriver: weighted split across real servers, bounded rate and duration, live weights."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_io import load_checkpoint

from e2e.harness import model_servers
from e2e.harness.model_servers import (
    ModelServerFleet,
    TrafficDriver,
    checkpoint_file,
    scrape_metrics,
    static_weights,
)
from e2e.harness.wait import wait_for

CHECKPOINTS = {"s3://models/digits/v1": "v1-good", "s3://models/digits/v2": "v2-better"}
V1, V2 = CHECKPOINTS
HANG_GUARD = 30.0  # seconds a wait may take before the test fails as hung; not a measurement


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerFleet]:
    files = {label: checkpoint_file(name) for label, name in CHECKPOINTS.items()}
    with ModelServerFleet(files, log_dir=tmp_path_factory.mktemp("servers")) as f:
        yield f


def _counters(fleet: ModelServerFleet) -> dict[str, dict[str, float]]:
    return {label: scrape_metrics(url) for label, url in fleet.urls().items()}


def _binomial_tolerance(n: int, p: float, sigmas: float = 4.0) -> float:
    """Half-width of a +-4 sigma band for a proportion: a false failure has probability ~6e-5."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def test_split_follows_weights_and_servers_count_every_request(fleet: ModelServerFleet) -> None:
    before = _counters(fleet)
    n = 800
    driver = TrafficDriver(fleet.urls, static_weights({V1: 3, V2: 1}), rate=200, max_requests=n, max_duration=60)
    driver.start()
    driver.join(timeout=60)
    assert not driver.is_alive(), "the driver stops by itself after max_requests"

    stats = driver.stats()
    assert stats.sent == stats.ok == n
    assert stats.failed == stats.unroutable == stats.weight_errors == 0
    # Each request picks V1 with probability 3/4, independently: its count is Binomial(n, 0.75).
    share = stats.per_label[V1].sent / n
    assert share == pytest.approx(0.75, abs=_binomial_tolerance(n, 0.75))

    after = _counters(fleet)
    for label, s in stats.per_label.items():
        for series, expected in (("model_predictions_total", s.ok), ("model_correct_total", s.correct)):
            assert after[label][series] - before[label][series] == expected, (label, series)
        # Samples are drawn uniformly from the held-out split, so live accuracy estimates held-out accuracy.
        heldout = load_checkpoint(checkpoint_file(CHECKPOINTS[label])).metadata["heldout_accuracy"]
        assert s.correct / s.ok == pytest.approx(heldout, abs=_binomial_tolerance(s.ok, heldout))


class SteppedClock:
    """The driver's clock (in place of its time module), moved forward only by the driver's own waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class SteppedEvent(threading.Event):
    """The driver's stop event: waiting N seconds moves the clock N seconds on at once, unless stopped."""

    def __init__(self, clock: SteppedClock) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None or self.is_set():
            return super().wait(timeout)
        self.clock.now += timeout
        return self.is_set()


def test_sends_at_its_rate_and_stops_by_itself_after_max_duration(
    fleet: ModelServerFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paced on a clock only its waits move, the driver's counts are exact, however loaded the machine is."""
    clock = SteppedClock()
    monkeypatch.setattr(model_servers, "time", clock)
    # 16 requests/s for 1 s: a tick at 0, 1/16, ..., 15/16 s (exact in binary), none at the deadline.
    driver = TrafficDriver(fleet.urls, static_weights({V2: 1}), rate=16, max_duration=1.0)
    driver._stop_event = SteppedEvent(clock)
    driver.start()
    driver.join(timeout=HANG_GUARD)
    assert not driver.is_alive(), "the driver stops by itself at max_duration"
    assert clock.now == 1.0  # it waited out its duration, and nothing after it
    stats = driver.stats()
    assert (stats.sent, stats.dropped, stats.unroutable) == (16, 0, 0)  # one request per tick, never a burst
    # Every request was answered or failed before the driver ended: it waits for what it sent.
    assert stats.ok + stats.failed == 16


def test_stop_ends_the_wait_between_requests(fleet: ModelServerFleet) -> None:
    # One request per 1000 s: after the first, the driver waits for the next tick, which only stop() can cut short.
    driver = TrafficDriver(fleet.urls, static_weights({V1: 1}), rate=0.001, max_duration=3600)
    driver.start()
    wait_for(lambda: driver.stats().ok == 1, timeout=HANG_GUARD, message="the first request answered")
    driver.stop(timeout=HANG_GUARD)  # a hang guard far below the 1000 s wait
    assert not driver.is_alive(), "stop() returns with the driver's thread joined"
    stats = driver.stats()
    assert (stats.sent, stats.ok) == (1, 1)


def test_weights_are_reread(fleet: ModelServerFleet) -> None:
    current = {V1: 1.0}
    driver = TrafficDriver(fleet.urls, lambda: dict(current), rate=200, max_duration=60, weights_interval=0.05)
    with driver:
        wait_for(lambda: driver.stats().per_label[V1].sent >= 20, timeout=10, message="traffic to v1")
        current.clear()
        current[V2] = 1.0
        wait_for(lambda: V2 in driver.stats().per_label and driver.stats().per_label[V2].sent >= 50, timeout=10)
        v1_sent = driver.stats().per_label[V1].sent
        wait_for(lambda: driver.stats().per_label[V2].sent >= 100, timeout=10, message="more traffic to v2")
        assert driver.stats().per_label[V1].sent == v1_sent


def test_failing_weights_keep_the_last_split(fleet: ModelServerFleet) -> None:
    calls = {"n": 0}

    def flaky() -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("apiserver unavailable")
        return {V2: 1.0}

    with TrafficDriver(fleet.urls, flaky, rate=100, max_duration=30, weights_interval=0.05) as driver:
        wait_for(lambda: driver.stats().weight_errors >= 3, timeout=10, message="weights errors")
        wait_for(lambda: driver.stats().per_label[V2].sent >= 20, timeout=10, message="traffic despite errors")


def test_unknown_or_zero_weights_send_nothing(fleet: ModelServerFleet) -> None:
    weights = static_weights({"s3://models/digits/v9": 1.0, V1: 0.0})
    with TrafficDriver(fleet.urls, weights, rate=100, max_duration=30) as driver:
        wait_for(lambda: driver.stats().unroutable >= 10, timeout=10, message="unroutable ticks")
    assert driver.stats().sent == 0


def test_only_loopback_targets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        TrafficDriver({"x": "http://10.1.2.3:8080"}, static_weights({"x": 1}))
    with pytest.raises(ValueError, match="loopback"):
        ModelServerFleet(host="0.0.0.0", log_dir=tmp_path)
