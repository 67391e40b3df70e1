"""Leader election: expiry on the monotonic clock, a renew deadline shorter than the lease, and never two leaders."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet.kube import resources as res
from modelratchet.kube.leader import LeaseElector, NotLeader, ensure_leader


class Clock:
    """A monotonic clock the test moves by hand (one for the whole 'machine')."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLeases:
    """The Lease part of CoordinationV1Api, with the API server's compare-and-swap on resourceVersion."""

    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.stale_read: client.V1Lease | None = None

    def _check(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))
        if self.down:
            raise ApiException(status=503, reason="Service Unavailable")

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> client.V1Lease:
        self._check("read", kwargs)
        if self.stale_read is not None:
            stale, self.stale_read = self.stale_read, None
            return stale
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.lease)

    def _store(self, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        stored = copy.deepcopy(body)
        stored.metadata.resource_version = str(self.version)
        self.lease = stored
        return copy.deepcopy(stored)

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease, **kwargs: Any) -> client.V1Lease:
        self._check("create", kwargs)
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease, **kwargs: Any
    ) -> client.V1Lease:
        self._check("replace", kwargs)
        assert self.lease is not None
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._store(body)


def elector(api: FakeLeases, clock: Clock, identity: str, **timings: float) -> LeaseElector:
    t = {"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0} | timings
    return LeaseElector(
        api,  # type: ignore[arg-type]
        namespace="ops",
        name="leader",
        identity=identity,
        request_timeout=7.0,
        clock=clock,
        **t,
    )


def test_a_frozen_leader_stops_acting_before_another_can_start() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    b.step()
    assert a.is_leader() and not b.is_leader()
    # a freezes (SIGSTOP): it renews nothing more. Walk the clock and check every instant.
    both: list[float] = []
    while not b.is_leader():
        clock.advance(0.5)
        b.step()
        if a.is_leader() and b.is_leader():
            both.append(clock.now)
        assert clock.now < 1000 + 60, "b never took over"
    assert both == [], "two leaders at once"
    assert api.lease is not None and api.lease.spec.holder_identity == "b"
    assert api.lease.spec.lease_transitions == 1
    # a stopped at its renew deadline (10 s); b took over only after the lease duration (15 s) without a change.
    assert clock.now - 1000 >= 15
    # a wakes up (SIGCONT) after the freeze: it knows from the monotonic clock alone that it must not act...
    assert not a.is_leader()
    # ...and its next round finds the lease taken, so it stays a follower.
    a.step()
    assert not a.is_leader() and b.is_leader()


def test_expiry_ignores_the_wall_clock_in_the_lease() -> None:
    """A holder whose clock runs 1 h behind writes old renewTimes: that must not make its lease look expired."""
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    assert api.lease is not None
    api.lease.spec.renew_time = datetime.now(UTC) - timedelta(hours=1)
    api.lease.spec.acquire_time = api.lease.spec.renew_time
    b.step()
    assert not b.is_leader() and api.lease.spec.holder_identity == "a"


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.step()
    assert a.is_leader()
    api.down = True
    for _ in range(4):  # 9.6 s of failed renewals: still within the deadline
        clock.advance(2.4)
        a.step()
    assert a.is_leader()
    clock.advance(0.5)
    a.step()
    assert not a.is_leader()
    api.down = False  # the API server is back and nobody took over: renewing restores leadership
    a.step()
    assert a.is_leader()


def test_a_released_lease_is_taken_at_once() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    b.step()
    a.stop()
    assert not a.is_leader()
    b.step()
    assert b.is_leader()


def test_a_renewal_based_on_a_stale_read_loses() -> None:
    """a read the lease, froze, and b took over meanwhile: a's write of what it read must not make it leader."""
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    b.step()
    stale = copy.deepcopy(api.lease)
    clock.advance(16)
    b.step()
    assert b.is_leader()
    api.stale_read = stale  # what a read before it froze
    a.step()
    assert not a.is_leader()
    assert api.lease is not None and api.lease.spec.holder_identity == "b"


def test_lease_calls_have_a_timeout_bounded_by_the_renew_deadline() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a", lease_duration=3, renew_deadline=2, retry_period=0.5)
    a.step()
    a.step()
    a.stop()
    assert {name for name, _ in api.calls} == {"read", "create", "replace"}
    assert all(kwargs.get("_request_timeout") == 2 for _, kwargs in api.calls), api.calls


@pytest.mark.parametrize(("lease", "renew", "retry"), [(15, 15, 2), (15, 20, 2), (15, 10, 10), (15, 10, 0)])
def test_timings_must_leave_room_between_renew_deadline_and_expiry(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        elector(FakeLeases(), Clock(), "a", lease_duration=lease, renew_deadline=renew, retry_period=retry)


def test_ensure_leader_raises_not_leader() -> None:
    ensure_leader(lambda: True)
    with pytest.raises(NotLeader):
        ensure_leader(lambda: False, "patch of Deployment x")


class _Recorded(Exception):
    pass


def test_the_operator_client_fences_writes_and_adds_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, Any]] = []

    def request(self: Any, method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        sent.append((method, _request_timeout))
        raise _Recorded

    monkeypatch.setattr(client.ApiClient, "call_api", request)
    leading = False
    api = res.OperatorApiClient(request_timeout=4.5, may_write=lambda: leading)
    apps = client.AppsV1Api(api)
    with pytest.raises(_Recorded):
        apps.read_namespaced_deployment("d", "ns")  # reads are never fenced
    with pytest.raises(NotLeader):
        apps.patch_namespaced_deployment("d", "ns", {"spec": {}})
    with pytest.raises(NotLeader):
        apps.delete_namespaced_deployment("d", "ns")
    assert sent == [("GET", 4.5)], "no write left while not leading"
    leading = True
    with pytest.raises(_Recorded):
        apps.patch_namespaced_deployment("d", "ns", {"spec": {}}, _request_timeout=2.0)
    assert sent[-1] == ("PATCH", 2.0), "an explicit timeout wins"
