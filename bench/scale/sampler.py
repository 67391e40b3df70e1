"""An in-process sampling profiler for the operator under load (no dependency, no ptrace).

Every 10 ms it reads each thread's stack (sys._current_frames) and that thread's CPU clock; a stack counts only
if its thread used CPU since the previous sample, so the profile shows where CPU goes, not where threads wait.
Every few seconds it writes, to the given path, the functions with the most CPU samples (self and inclusive) and
the stacks folded one per line (flamegraph.pl's format) next to it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

PERIOD = 0.01
WRITE_EVERY = 5.0


def _where(frame: FrameType) -> str:
    code = frame.f_code
    parts = code.co_filename.split("/site-packages/")[-1].split("/modelratchet/")[-1]
    return f"{parts}:{code.co_name}"


def _stack(frame: FrameType | None) -> list[str]:
    out: list[str] = []
    while frame is not None:
        out.append(_where(frame))
        frame = frame.f_back
    return out[::-1]  # root first


class Sampler:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.folded: Counter[str] = Counter()
        self.self_: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.samples = 0
        self.wall: Counter[str] = Counter()  # reconcile workers' stacks whether on CPU or waiting
        self.wall_samples = 0
        self._cpu: dict[int, float] = {}

    def _thread_cpu(self, ident: int) -> float | None:
        native = next((t.native_id for t in threading.enumerate() if t.ident == ident), None)
        if native is None:
            return None
        try:
            with open(f"/proc/self/task/{native}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / 100.0
        except OSError:
            return None

    def sample(self) -> None:
        me = threading.get_ident()
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            if names.get(ident, "").startswith("reconcile"):
                self.wall_samples += 1
                for name in set(_stack(frame)):
                    self.wall[name] += 1
            cpu = self._thread_cpu(ident)
            if cpu is None:
                continue
            before = self._cpu.get(ident)
            self._cpu[ident] = cpu
            if before is None or cpu <= before:
                continue  # this thread waited (or ran less than a clock tick) since the last sample
            stack = _stack(frame)
            self.samples += 1
            self.folded[";".join(stack)] += 1
            self.self_[stack[-1]] += 1
            for name in set(stack):
                self.inclusive[name] += 1

    def write(self) -> None:
        lines = [f"cpu samples: {self.samples} (period {PERIOD * 1000:g} ms, a sample = a thread on CPU)", ""]
        lines.append("self:")
        lines += [f"{n:8d} {100 * n / max(1, self.samples):5.1f}%  {k}" for k, n in self.self_.most_common(40)]
        lines += ["", "inclusive:"]
        lines += [f"{n:8d} {100 * n / max(1, self.samples):5.1f}%  {k}" for k, n in self.inclusive.most_common(80)]
        lines += ["", f"reconcile workers, wall clock (on CPU or waiting), {self.wall_samples} samples:"]
        lines += [f"{n:8d} {100 * n / max(1, self.wall_samples):5.1f}%  {k}" for k, n in self.wall.most_common(60)]
        self.path.write_text("\n".join(lines) + "\n")
        self.path.with_suffix(".folded").write_text("".join(f"{k} {n}\n" for k, n in self.folded.items()))

    def run(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(PERIOD)
            self.sample()
            if time.monotonic() - last > WRITE_EVERY:
                self.write()
                last = time.monotonic()


def start(path: str) -> None:
    """Profiles this process into ``path`` with its pid added (a restarted operator gets its own file)."""
    target = Path(path)
    sampler = Sampler(target.with_name(f"{target.stem}-{os.getpid()}{target.suffix}"))
    threading.Thread(target=sampler.run, name="bench-sampler", daemon=True).start()
