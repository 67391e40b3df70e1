"""Waiting on conditions with a deadline, so tests never sleep and hope."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_UNSET = object()


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.2,
    message: str = "",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Calls `predicate` until it returns a truthy value and returns that value.

    Exceptions listed in `ignore` count as "not yet" (e.g. connection refused while a server
    starts). On timeout raises TimeoutError naming `message` and the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last: object = _UNSET
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            observed = "nothing (predicate never returned)" if last is _UNSET else repr(last)
            what = message or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"timed out after {timeout:.1f}s ({attempts} attempts) waiting for {what}; "
                               f"last observed: {observed}")
        time.sleep(min(interval, remaining))
