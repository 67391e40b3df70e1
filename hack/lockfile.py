"""Reads the hash-pinned lock files (requirements.lock, requirements-dev.lock).

Standard library only: it runs in the Docker build stage and in a virtualenv before anything is installed.

    python hack/lockfile.py select LOCK NAME...   print those entries (with their hashes) as a requirements file
    python hack/lockfile.py unlocked LOCK         print distributions installed in this interpreter's
                                                  site-packages that LOCK does not list (pip and the project
                                                  itself are installed outside the lock and never listed)
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Installed by venv/ensurepip and by `pip install -e .` respectively, not from the lock.
OUTSIDE_THE_LOCK = frozenset({"pip", "modelratchet"})

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)$")
_HASH = re.compile(r"^--hash=(?P<algo>[a-z0-9]+):(?P<digest>[0-9a-f]+)$")


def normalize(name: str) -> str:
    """PEP 503 name normalization: `PyYAML`, `pyyaml` and `py_yaml` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Entry:
    name: str  # normalized
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>", in file order

    def render(self) -> str:
        return " \\\n    ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


class LockError(ValueError):
    """A lock line that is not `name==version` followed by `--hash=` options."""


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse(text: str) -> dict[str, Entry]:
    """Entries by normalized name. Strict: only exact pins, no markers, URLs, options or duplicates,
    because anything looser would let pip pick something the lock does not name."""
    entries: dict[str, Entry] = {}
    for line in _logical_lines(text):
        first, *options = line.split()
        pin = _PIN.match(first)
        if pin is None:
            raise LockError(f"not an exact pin: {line!r}")
        hashes = []
        for opt in options:
            h = _HASH.match(opt)
            if h is None:
                raise LockError(f"unexpected {opt!r} in {first!r}")
            hashes.append(f"{h['algo']}:{h['digest']}")
        name = normalize(pin["name"])
        if name in entries:
            raise LockError(f"{name} is pinned twice")
        entries[name] = Entry(name, pin["version"], tuple(hashes))
    return entries


def read(path: str | Path) -> dict[str, Entry]:
    return parse(Path(path).read_text())


def installed() -> dict[str, str]:
    """Distributions in this interpreter's site-packages: normalized name -> version.

    Only site-packages, not sys.path: the test suite puts the source tree (with its egg-info) on the path.
    """
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=paths)}


def main(argv: list[str]) -> int:
    match argv:
        case ["select", lock, *names] if names:
            entries = read(lock)
            missing = [n for n in names if normalize(n) not in entries]
            if missing:
                print(f"{lock} does not pin {', '.join(missing)}", file=sys.stderr)
                return 1
            for n in names:
                print(entries[normalize(n)].render())
            return 0
        case ["unlocked", lock]:
            entries = read(lock)
            for name in sorted(set(installed()) - set(entries) - OUTSIDE_THE_LOCK):
                print(name)
            return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
