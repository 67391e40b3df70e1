"""A bounded queue split into lanes, one per receiver, served by a few workers.

A worker takes the head of a lane and keeps that lane to itself until the delivery (with its retries) ends, so
one receiver gets its messages in order and a slow or dead receiver holds at most one worker while the others
keep serving everyone else.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class LaneQueue(Generic[K, T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        lock = threading.Lock()
        # Separate conditions on one lock: a new item wakes one worker, not every worker and every flush.
        self._work = threading.Condition(lock)
        self._idle = threading.Condition(lock)
        self._lanes: dict[K, deque[tuple[int, T]]] = {}
        self._ready: deque[K] = deque()  # lanes with items and no worker
        self._busy: set[K] = set()
        self._pending = 0
        self._seq = itertools.count()
        self._closed = False

    def put(self, key: K, item: T) -> T | None:
        """Queue ``item`` on lane ``key``; when full, the oldest queued item of any lane makes room and is returned."""
        with self._work:
            dropped = self._drop_oldest() if self._pending >= self.maxsize else None
            self._lanes.setdefault(key, deque()).append((next(self._seq), item))
            self._pending += 1
            if key not in self._busy and key not in self._ready:
                self._ready.append(key)
                self._work.notify()
            return dropped

    def _drop_oldest(self) -> T:
        key = min(self._lanes, key=lambda k: self._lanes[k][0][0])
        lane = self._lanes[key]
        _, item = lane.popleft()
        self._pending -= 1
        if not lane:
            del self._lanes[key]
            if key in self._ready:
                self._ready.remove(key)
        return item

    def take(self) -> tuple[K, T] | None:
        """Block until a lane without a worker has an item; the lane is then busy until ``done``. None once closed."""
        with self._work:
            self._work.wait_for(lambda: self._ready or self._closed)
            if self._closed:
                return None
            key = self._ready.popleft()
            lane = self._lanes[key]
            _, item = lane.popleft()
            if not lane:
                del self._lanes[key]
            self._pending -= 1
            self._busy.add(key)
            return key, item

    def done(self, key: K) -> None:
        with self._work:
            self._busy.discard(key)
            if key in self._lanes:
                self._ready.append(key)  # to the back: lanes take turns
                self._work.notify()
            elif self._pending == 0 and not self._busy:
                self._idle.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being delivered; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0 and not self._busy, timeout)

    def close(self) -> None:
        with self._work:
            self._closed = True
            self._work.notify_all()

    def __len__(self) -> int:
        with self._work:
            return self._pending
