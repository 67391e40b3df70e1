"""`make test`'s runner (hack/run_tests.py) and the timing records that the setup steps leave for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e import build
from e2e.harness.components import COMPONENTS
from hack import run_tests
from hack.run_tests import DirResult, Row

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
  <testcase classname="tests.unit.test_a" name="test_1" file="tests/unit/test_a.py" time="1.5"/>
  <testcase classname="tests.unit.test_a" name="test_2" file="tests/unit/test_a.py" time="0.5">
    <failure message="assert 1 == 2"/>
  </testcase>
  <testcase classname="tests.unit.test_a.TestX" name="test_3" file="tests/unit/test_a.py" time="0.25">
    <skipped message="no"/>
  </testcase>
  <testcase classname="tests.integration.test_b" name="test_4" file="tests/integration/test_b.py" time="12">
    <error message="teardown"/>
  </testcase>
  <testcase classname="e2e.test_rollouts" name="test_5" file="e2e/test_rollouts.py" time="30"/>
  <testcase classname="tests.examples.test_c" name="test_6" time="2"/>
</testsuite></testsuites>
"""


def test_results_are_grouped_by_test_directory(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    assert run_tests.per_directory(junit) == {
        "tests/unit": DirResult(passed=1, failed=1, skipped=1, seconds=2.25),
        "tests/integration": DirResult(failed=1, seconds=12.0),
        "e2e": DirResult(passed=1, seconds=30.0),
        "tests/examples": DirResult(passed=1, seconds=2.0),  # no file attribute: read from the class name
    }


@pytest.mark.parametrize(
    ("path", "group"),
    [("tests/unit/test_a.py", "tests/unit"), ("e2e/test_rollouts.py", "e2e"), ("test_top.py", ".")],
)
def test_group_of(path: str, group: str) -> None:
    assert run_tests.group_of(path) == group


ALL_RAN = {d: DirResult(passed=1) for d in run_tests.TEST_DIRS}


def test_a_green_run_exits_zero() -> None:
    assert run_tests.verdict(0, ALL_RAN, run_tests.TEST_DIRS) == (0, [])


def test_no_tests_collected_is_a_failure() -> None:
    rc, problems = run_tests.verdict(5, {}, run_tests.TEST_DIRS)
    assert rc == 5 and "pytest collected no tests" in problems


def test_a_directory_that_ran_nothing_fails_a_run_that_pytest_called_green() -> None:
    results = {**ALL_RAN, "tests/examples": DirResult(skipped=0)}
    assert run_tests.verdict(0, results, run_tests.TEST_DIRS) == (1, ["no test ran in tests/examples"])
    # With explicit pytest arguments (a subset on purpose), only pytest's own verdict counts.
    assert run_tests.verdict(0, {"tests/unit": DirResult(passed=3)}, ()) == (0, [])


def test_pytest_failures_keep_their_exit_code() -> None:
    assert run_tests.verdict(1, ALL_RAN, run_tests.TEST_DIRS) == (1, ["pytest exited 1"])


def test_the_table_lists_every_step_with_its_seconds(tmp_path: Path) -> None:
    timings = tmp_path / "t.jsonl"
    timings.write_text('{"step": "Debian packages", "seconds": 3, "detail": "already installed"}\n\n')
    rows = [Row("setup: venv", 41.26, "up to date"), *run_tests.read_timings(timings), Row("tests/unit", 30.0)]
    table = run_tests.render(rows).splitlines()
    assert table[3].split() == ["setup:", "venv", "41.3", "up", "to", "date"]
    assert table[4].split() == ["Debian", "packages", "3.0", "already", "installed"]
    assert table[5].split() == ["tests/unit", "30.0"]


def test_go_builds_start_with_the_longest_and_every_component_has_a_measurement() -> None:
    assert set(build.COLD_SECONDS) == set(COMPONENTS)
    order = build.build_order(sorted(COMPONENTS))
    assert order[0] == "traefik"  # the longest cold build
    assert [build.COLD_SECONDS[n] for n in order] == sorted(build.COLD_SECONDS.values(), reverse=True)
    assert build.build_order(["new", "kwok"]) == ["kwok", "new"]


def test_a_go_build_timing_is_a_json_line_for_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    timings = tmp_path / "t.jsonl"
    monkeypatch.setenv("MODELRATCHET_TIMINGS", str(timings))
    build.record_timing("go: kwok", 214.96, "cold")
    build.record_timing("go: helm", 0.01, "warm")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == 'timing: {"step": "go: kwok", "seconds": 215.0, "detail": "cold"}'
    assert [json.loads(line)["step"] for line in timings.read_text().splitlines()] == ["go: kwok", "go: helm"]
    assert run_tests.read_timings(timings)[0] == Row("go: kwok", 215.0, "cold")
