"""`make test` (what CI runs): set up, run the whole suite in one pytest session, say where the time went.

    python3 hack/run_tests.py [pytest args]

Steps: `make venv` (hack/install-venv.sh), `make tools` (e2e/setup.sh: Debian packages and the Go
components), then `.venv/bin/python -m pytest --junitxml ...`. One session, so the local cluster that
tests/integration and e2e share starts once. Setup steps append JSON lines ({"step", "seconds",
"detail"}) to $MODELRATCHET_TIMINGS; the per-directory test times come from the JUnit report.

Exits non-zero when a setup step fails, when pytest does (including 5: nothing collected), and, on a
run without arguments, when one of the test directories ran no test at all (a directory that silently
stopped being collected must not look like a pass).

Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_DIRS = ("tests/unit", "tests/examples", "tests/integration", "e2e")
CI_BUDGET_SECONDS = 5400  # one .ci/run must finish within 90 minutes


@dataclass
class Row:
    step: str
    seconds: float
    detail: str = ""


@dataclass
class DirResult:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def group_of(path: str) -> str:
    """The test directory a test file belongs to: tests/<dir> or the top-level folder (e2e)."""
    parts = Path(path).parts
    if len(parts) >= 3 and parts[0] == "tests":
        return f"{parts[0]}/{parts[1]}"
    return parts[0] if len(parts) >= 2 else "."


def per_directory(junit_xml: Path) -> dict[str, DirResult]:
    """Counts and summed durations (setup + call + teardown) per test directory, from pytest's JUnit XML."""
    results: dict[str, DirResult] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        # xunit1 reports carry the file; collection errors have none and land in ".".
        path = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        r = results.setdefault(group_of(path), DirResult())
        r.seconds += float(case.get("time") or 0)
        if case.find("failure") is not None or case.find("error") is not None:
            r.failed += 1
        elif case.find("skipped") is not None:
            r.skipped += 1
        else:
            r.passed += 1
    return results


def verdict(pytest_rc: int, results: dict[str, DirResult], expected: tuple[str, ...]) -> tuple[int, list[str]]:
    """The exit code for the run, and why it is not zero."""
    problems = []
    if pytest_rc == 5:
        problems.append("pytest collected no tests")
    elif pytest_rc != 0:
        problems.append(f"pytest exited {pytest_rc}")
    empty = [d for d in expected if not results.get(d, DirResult()).total]
    if empty:
        problems.append(f"no test ran in {', '.join(empty)}")
    if sum(r.failed for r in results.values()) and pytest_rc == 0:
        problems.append("the JUnit report has failures although pytest exited 0")
    if not problems:
        return 0, []
    return (pytest_rc if pytest_rc != 0 else 1), problems


def read_timings(path: Path) -> list[Row]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            rows.append(Row(str(rec["step"]), float(rec["seconds"]), str(rec.get("detail", ""))))
    return rows


def render(rows: list[Row]) -> str:
    width = max(len(r.step) for r in rows) + 2
    lines = ["", "== time by step " + "=" * 60, f"{'step':<{width}}{'seconds':>9}  detail"]
    lines += [f"{r.step:<{width}}{r.seconds:>9.1f}  {r.detail}".rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def timed(rows: list[Row], step: str, cmd: list[str], env: dict[str, str]) -> int:
    started = time.monotonic()
    print(f"==> {step}: {' '.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    rows.append(Row(step, time.monotonic() - started, "" if rc == 0 else f"FAILED (exit {rc})"))
    return rc


def main(argv: list[str]) -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="modelratchet-test-"))
    timings = work / "timings.jsonl"
    junit = work / "junit.xml"
    env = {**os.environ, "MODELRATCHET_TIMINGS": str(timings)}
    make = os.environ.get("MAKE", "make")
    rows: list[Row] = []

    rc = timed(rows, "setup: venv", [make, "--no-print-directory", "venv"], env)
    if rc == 0:
        rc = timed(rows, "setup: tools", [make, "--no-print-directory", "tools"], env)
    # Sub-steps recorded by the setup scripts, shown under the step that ran them.
    recorded = read_timings(timings)
    venv_detail = next((r.detail for r in recorded if r.step == "venv"), "up to date")
    if rows[0].detail == "":
        rows[0].detail = venv_detail
    rows += [Row(f"  {r.step}", r.seconds, r.detail) for r in recorded if r.step != "venv"]

    results: dict[str, DirResult] = {}
    if rc == 0:
        cmd = [str(ROOT / ".venv/bin/python"), "-m", "pytest", f"--junitxml={junit}", "-o", "junit_family=xunit1"]
        pytest_started = time.monotonic()
        print(f"==> tests: {' '.join([*cmd, *argv])}", flush=True)
        pytest_rc = subprocess.run([*cmd, *argv], cwd=ROOT, env=env).returncode
        pytest_seconds = time.monotonic() - pytest_started
        results = per_directory(junit) if junit.is_file() else {}
        for d in sorted(results, key=lambda d: (TEST_DIRS.index(d) if d in TEST_DIRS else len(TEST_DIRS), d)):
            r = results[d]
            rows.append(Row(d, r.seconds, f"{r.passed} passed, {r.failed} failed, {r.skipped} skipped"))
        rows.append(Row("pytest startup and collection", pytest_seconds - sum(r.seconds for r in results.values())))
        rc, problems = verdict(pytest_rc, results, () if argv else TEST_DIRS)
    else:
        problems = ["setup failed; no test ran"]

    total = time.monotonic() - started
    rows.append(Row("total", total, f"{total / CI_BUDGET_SECONDS:.0%} of the {CI_BUDGET_SECONDS} s CI budget"))
    print(render(rows), end="")
    for p in problems:
        print(f"FAILED: {p}")
    passed, failed, skipped = (sum(getattr(r, k) for r in results.values()) for k in ("passed", "failed", "skipped"))
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
