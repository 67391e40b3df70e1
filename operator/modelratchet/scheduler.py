"""Per-object reconcile scheduling: each object is looked at by one worker at a time, at the time it asked for.

Kopf's daemons and timers would pin a finalizer on every object (so nothing could be deleted while the
operator is down); this keeps the same guarantees — one task per object, never overlapping — without one.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
LIMIT_RETRY = 0.25  # seconds: when an object held back by its kind's limit is tried again
Work = Callable[[Key], float | None]  # returns seconds until the next look, None to forget the object


class Scheduler:
    def __init__(
        self,
        work: Work,
        *,
        workers: int = 8,
        max_interval: float = 5.0,
        backoff_max: float = 60.0,
        is_leader: Callable[[], bool] = lambda: True,
        standby_interval: float = 1.0,
        uncapped: frozenset[str] = frozenset(),
        limits: dict[str, int] | None = None,
    ) -> None:
        self._work = work
        # Kinds whose work asks for its own next look, not capped to max_interval: everything they read is watched,
        # so a change pokes them and no periodic look has to catch it (ModelBaselines, whose look lists rollouts).
        self._uncapped = uncapped
        # At most this many objects of a kind worked on at once; the rest wait in the schedule, not in a worker, so
        # a burst of one kind (every baseline listing every rollout) never takes the workers the rollouts need.
        self._limits = dict(limits or {})
        self._busy: dict[str, int] = {}
        # Asked right before each piece of work runs: a replica that lost the lease while the work waited in the
        # queue (or while the process was frozen) must not start it.
        self._is_leader = is_leader
        self._standby_interval = standby_interval
        self._max_interval = max_interval
        self._backoff_max = backoff_max
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._seq = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def poke(self, key: Key, delay: float = 0.0) -> None:
        """Look at the object no later than ``delay`` seconds from now (sooner if already due sooner)."""
        at = time.monotonic() + delay
        with self._lock:
            if key in self._running:
                self._dirty.add(key)  # something changed while it ran: look again right after
                return
            if key in self._due and self._due[key] <= at:
                return
            self._due[key] = at
            self._seq += 1
            heapq.heappush(self._heap, (at, self._seq, key))
        self._wake.set()

    def forget(self, key: Key) -> None:
        with self._lock:
            self._due.pop(key, None)
            self._dirty.discard(key)
            self._failures.pop(key, None)

    def known(self) -> list[Key]:
        with self._lock:
            return sorted(set(self._due) | self._running)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            timeout = 1.0
            now = time.monotonic()
            ready: list[Key] = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    at, _, key = heapq.heappop(self._heap)
                    if self._due.get(key) != at:
                        continue  # superseded entry
                    del self._due[key]
                    if key in self._running:
                        # Poked after this loop handed it out and before it was marked running: look again right
                        # after the run. Keeping the due time without its heap entry would make every later poke
                        # a no-op, and the object would never be looked at again.
                        self._dirty.add(key)
                        continue
                    ready.append(key)
                if self._heap:
                    timeout = min(timeout, max(0.0, self._heap[0][0] - now))
            if ready and not self._is_leader():
                for key in ready:  # not the leader: keep the schedule, do nothing
                    self.poke(key, self._standby_interval)
                self._wake.wait(self._standby_interval)
                continue
            deferred: list[Key] = []
            for key in ready:
                with self._lock:
                    limit = self._limits.get(key[0])
                    if limit is not None and self._busy.get(key[0], 0) >= limit:
                        deferred.append(key)
                        continue
                    self._running.add(key)
                    self._busy[key[0]] = self._busy.get(key[0], 0) + 1
                self._pool.submit(self._run, key)
            for key in deferred:
                self.poke(key, LIMIT_RETRY)
            self._wake.wait(timeout)

    def _release(self, key: Key) -> bool:
        """The object is no longer worked on; returns whether it was poked meanwhile. Call with the lock held."""
        self._running.discard(key)
        self._busy[key[0]] = max(0, self._busy.get(key[0], 0) - 1)
        again = key in self._dirty
        self._dirty.discard(key)
        return again

    def _run(self, key: Key) -> None:
        delay: float | None
        failed = False
        if not self._is_leader():  # lost the lease since the loop handed this out
            with self._lock:
                self._release(key)
            self.poke(key, self._standby_interval)
            return
        try:
            delay = self._work(key)
            self._failures.pop(key, None)
        except Exception:  # one object's failure must never stop the others
            failed = True
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            delay = min(self._backoff_max, 0.5 * 2**n)
            log.exception("reconcile of %s/%s/%s failed (attempt %d); retrying in %.1fs", *key, n, delay)
        with self._lock:
            again = self._release(key)
        if delay is None and not again:
            self.forget(key)
            return
        if delay is None:
            delay = 0.0
        if failed:
            self.poke(key, delay)  # back off even if poked meanwhile: a failing object must not spin
        else:
            cap = math.inf if key[0] in self._uncapped else self._max_interval
            self.poke(key, 0.0 if again else min(delay, cap))
