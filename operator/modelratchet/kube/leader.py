"""Leader election on a coordination.k8s.io Lease, so only one of several replicas acts (client-go's protocol).

Time is judged on this process's monotonic clock only, never on the wall-clock times written in the Lease
(another node's clock may be skewed):

- A candidate takes the lease over only once its record has not changed for ``lease_duration`` on the
  candidate's own clock, counted from when the candidate first saw that record.
- The leader counts itself leader for ``renew_deadline`` (< ``lease_duration``) after the moment it *sent* its
  last successful renewal. Monotonic time keeps running while a process is frozen (SIGSTOP, a paused VM), so a
  leader that wakes up after a long freeze knows at once that it must not act.

A renewal sent at t is seen by the others no earlier than t, so they cannot take over before
t + lease_duration, while the old leader stopped acting at t + renew_deadline: there is never a moment with two
acting leaders (given clocks that run at about the same rate).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from modelratchet import telemetry

from .resources import NotLeader

log = logging.getLogger(__name__)

__all__ = ["LeaseElector", "NotLeader", "ensure_leader"]


def ensure_leader(is_leader: Callable[[], bool], what: str = "write") -> None:
    """Raise NotLeader unless this replica may act right now (check it right before a write)."""
    if not is_leader():
        raise NotLeader(f"not the leader: skipping {what}")


class LeaseElector:
    def __init__(
        self,
        coordination: client.CoordinationV1Api,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                f"lease timings must satisfy 0 < retry period ({retry_period}s) < renew deadline "
                f"({renew_deadline}s) < lease duration ({lease_duration}s)"
            )
        self.api = coordination
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        # A renewal that cannot finish within the renew deadline is useless anyway.
        self.request_timeout = min(request_timeout, renew_deadline)
        self._clock = clock
        self._lock = threading.Lock()
        self._renewed_at: float | None = None  # monotonic time the last successful write of ours was sent
        self._observed: tuple[Any, ...] | None = None  # the lease record last seen
        self._observed_at = 0.0  # monotonic time it was first seen
        self._was_leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- the answer

    def is_leader(self) -> bool:
        """True while the last successful renewal was sent less than renew_deadline ago (monotonic)."""
        with self._lock:
            return self._renewed_at is not None and self._clock() - self._renewed_at < self.renew_deadline

    # ----------------------------------------------------------------------------------------- one round

    def _observe(self, spec: client.V1LeaseSpec, resource_version: str | None) -> None:
        record = (
            resource_version,
            spec.holder_identity,
            spec.renew_time,
            spec.lease_duration_seconds,
            spec.lease_transitions,
        )
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()

    def _create(self, sent: float) -> bool:
        now = datetime.now(UTC)
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=math.ceil(self.lease_duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            created = self.api.create_namespaced_lease(self.namespace, body, _request_timeout=self.request_timeout)
        except ApiException as e:
            if e.status == 409:  # another candidate created it first
                return False
            raise
        self._won(created, sent)
        return True

    def _won(self, lease: client.V1Lease, sent: float) -> None:
        with self._lock:
            self._renewed_at = sent
        self._observe(lease.spec or client.V1LeaseSpec(), lease.metadata.resource_version if lease.metadata else None)
        telemetry.LEASE_RENEWALS.inc()

    def _lost(self) -> None:
        with self._lock:
            self._renewed_at = None

    def try_acquire_or_renew(self) -> bool:
        """One round: renew the lease we hold, or take it over once expired. True when we hold it now."""
        sent = self._clock()  # before any request: the others see our write no earlier than this
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.request_timeout)
        except ApiException as e:
            if e.status != 404:
                raise
            return self._create(sent)
        spec = lease.spec or client.V1LeaseSpec()
        lease.spec = spec
        self._observe(spec, lease.metadata.resource_version if lease.metadata else None)
        holder = spec.holder_identity
        if holder and holder != self.identity:
            # Never shorter than what the holder promised, nor than what we were told to wait.
            duration = max(float(spec.lease_duration_seconds or 0), self.lease_duration)
            if self._clock() - self._observed_at < duration:
                self._lost()
                return False
        now = datetime.now(UTC)  # wall clock only for people reading the Lease; never used to decide
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = math.ceil(self.lease_duration)
        try:
            # resourceVersion in the body makes this a compare-and-swap: two candidates cannot both win.
            replaced = self.api.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=self.request_timeout
            )
        except ApiException as e:
            if e.status == 409:
                return False  # someone else wrote it since we read it; we are not leader until a write succeeds
            raise
        self._won(replaced, sent)
        return True

    def step(self) -> None:
        """One round plus the bookkeeping the loop does; a failed round leaves leadership to the clock."""
        try:
            held = self.try_acquire_or_renew()
        except Exception as e:  # an unreachable API server: is_leader() runs out at the renew deadline
            log.warning("leader election: %s", e)
        else:
            if not held:
                self._lost()
        leading = self.is_leader()
        if leading and not self._was_leading:
            log.info("%s is now the leader (lease %s/%s)", self.identity, self.namespace, self.name)
        elif not leading and self._was_leading:
            log.warning("%s is not the leader any more: standing by", self.identity)
        self._was_leading = leading

    # ----------------------------------------------------------------------------------------- the loop

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.retry_period)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; a leader hands the lease back so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.request_timeout + 1.0)
        leading = self.is_leader()
        self._lost()
        if release and leading:
            self._release()

    def _release(self) -> None:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.request_timeout)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            # client-go's release: an empty holder is free for the taking, with no wait.
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.now(UTC)
            self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=self.request_timeout)
            log.info("%s released the lease", self.identity)
        except Exception as e:  # best effort: the others take over once it expires anyway
            log.warning("could not release the lease: %s", e)
