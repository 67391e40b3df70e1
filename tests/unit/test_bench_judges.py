"""The judges benchmark's smoke run: it runs, prints its table and targets, and keeps A/A rollbacks rare."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_quick_benchmark_prints_the_table_and_holds_alpha(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.judges", "--quick", "--jobs", "2", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "rollback  promote  undec." in out and "modelratchet" in out and "kayenta MW @0.98" in out
    assert "TARGETS" in out
    png = tmp_path / "judges_quick.png"
    assert png.is_file() and png.stat().st_size > 10_000
    assert f"plot: {png}" in out

    with (tmp_path / "judges_quick.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    aa = [r for r in rows if r["rule"] == "modelratchet" and r["kind"] == "aa" and "efficiency" not in r["case"]]
    assert len(aa) == 4
    for r in aa:
        # alpha is 1%; a loose bound for the small smoke-run samples.
        assert float(r["rollback"]) <= 0.05, r
    regressions = [r for r in rows if r["rule"] == "modelratchet" and r["kind"] == "regression"]
    assert regressions and all(float(r["rollback"]) >= 0.5 for r in regressions if "drift" not in r["case"])
