"""Long-running child processes, each in its own process group, tracked by pidfiles.

A pidfile records the pid together with the kernel start time, so a later `down` (possibly from
another process) never signals an unrelated process that reused the pid.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.harness.wait import wait_for

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGKILL if the owning (test) process dies abruptly."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; it is wrapped in the last pair of parens.
    return stat.rsplit(")", 1)[1].split()[19]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg succeeds while only zombies remain; treat a group of zombies as gone.
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _group_gone(pgid: int) -> bool:
    return not _group_alive(pgid)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of one process in KiB (VmHWM gives the peak); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class ManagedProcess:
    """A child started in a new session (so its pid is also its process group id)."""

    name: str
    pidfile: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        if self.popen is not None:
            return self.popen.pid
        try:
            data = json.loads(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        pid = int(data["pid"])
        return pid if _start_time(pid) == data["start_time"] else None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None

    def signal_group(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    pidfile: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
    pass_fds: Sequence[int] = (),
) -> ManagedProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
            pass_fds=tuple(pass_fds),
        )
    pidfile.write_text(json.dumps({"pid": popen.pid, "start_time": _start_time(popen.pid), "argv": list(argv)}))
    return ManagedProcess(name=name, pidfile=pidfile, popen=popen)


def stop_all(procs: Iterable[ManagedProcess], timeout: float = 10.0) -> None:
    """SIGTERM every group at once, SIGKILL whatever is left after `timeout`, remove pidfiles."""
    procs = list(procs)
    pgids = [p.pid for p in procs]
    for proc in procs:
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc, pgid in zip(procs, pgids, strict=True):
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
        if pgid is None:
            continue
        gone = functools.partial(_group_gone, pgid)
        with contextlib.suppress(TimeoutError):
            wait_for(gone, max(0.0, deadline - time.monotonic()), interval=0.05)
        if not gone():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            if proc.popen is not None:
                proc.popen.wait(5)
            wait_for(gone, 5.0, interval=0.05, message=f"{proc.name} to exit")
    for proc in procs:
        proc.pidfile.unlink(missing_ok=True)


_registered: list[ManagedProcess] = []


def stop_at_exit(proc: ManagedProcess) -> None:
    """Make sure `proc` is stopped when the interpreter exits, whatever path the tests took."""
    if not _registered:
        atexit.register(lambda: stop_all([p for p in _registered if p.alive()], timeout=5.0))
    _registered.append(proc)


def forget(proc: ManagedProcess) -> None:
    with contextlib.suppress(ValueError):
        _registered.remove(proc)


def stop_one(proc: ManagedProcess | None, timeout: float = 15.0) -> None:
    """Stops one process started with `start` (no-op for None) and drops it from the exit-time cleanup."""
    if proc is None:
        return
    stop_all([proc], timeout=timeout)
    forget(proc)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
