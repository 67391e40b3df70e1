"""The operator limits glibc's malloc arenas before its threads start, unless the environment says otherwise."""

from __future__ import annotations

import ctypes.util
import platform

import pytest
from modelratchet.cli.run import limit_malloc_arenas


def test_an_explicit_malloc_arena_max_is_left_to_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False


def test_arenas_are_limited_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    glibc = platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c") is not None
    assert limit_malloc_arenas() is glibc
