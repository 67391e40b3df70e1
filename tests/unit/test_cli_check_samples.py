"""`modelratchet check` with per-request samples: the one place the per-sample Mann-Whitney judge runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelratchet.cli.main import main

BASELINE = """\
apiVersion: modelratchet.io/v1alpha1
kind: ModelBaseline
metadata: {name: m}
spec:
  model: m
  metrics:
    - name: latency
      direction: lowerIsBetter
      baseline: live
      threshold: {type: ratio, value: 0.05}
      judge: {type: mannWhitney}
    - name: accuracy
      baseline: live
      threshold: {type: delta, value: 0.02}
"""


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def latencies(seed: int, median: float) -> list[float]:
    rng = np.random.default_rng(seed)
    values: list[float] = np.exp(np.log(median) + 0.5 * rng.standard_normal(400)).tolist()
    return values


def check(tmp_path: Path, candidate: object, stable: object, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    manifest = tmp_path / "baseline.yaml"
    manifest.write_text(BASELINE)
    argv = ["check", "--baseline", str(manifest), "--format", "json"]
    argv += ["--metrics", write(tmp_path, "c.json", candidate), "--baseline-metrics", write(tmp_path, "b.json", stable)]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {"stderr": err}


def test_samples_are_judged_by_the_rank_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check(
        tmp_path,
        {"latency": latencies(1, 0.12), "accuracy": 0.91},
        {"latency": latencies(2, 0.10), "accuracy": 0.91},
        capsys,
    )
    assert code == 1
    latency = report["results"][0]
    assert latency["outcome"] == "failed" and latency["judge"]["judge"] == "mannWhitney"
    assert latency["judge"]["samples"] == 400 and latency["judge"]["estimate"] > 0.0
    assert "floor on location" in latency["message"]


def test_equal_samples_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check(
        tmp_path, {"latency": latencies(3, 0.10), "accuracy": 0.91}, {"latency": latencies(4, 0.10)}, capsys
    )
    assert report["results"][0]["outcome"] == "passed"
    assert code == 1  # accuracy has no baseline value: inconclusive counts as failing
    assert report["results"][1]["outcome"] == "inconclusive"


def test_a_single_number_is_still_a_value_for_the_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check(tmp_path, {"latency": 0.104, "accuracy": 0.9}, {"latency": 0.1, "accuracy": 0.9}, capsys)
    assert code == 0 and "judge" not in report["results"][0]


@pytest.mark.parametrize("bad", [[], ["0.1"], [True, 0.2]])
def test_samples_must_be_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: list[object]) -> None:
    code, report = check(tmp_path, {"latency": bad}, {"latency": [0.1, 0.2]}, capsys)
    assert code == 2
    assert "latency: expected a non-empty list of numbers (per-request samples)" in report["stderr"]


def test_lists_are_only_for_a_rank_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check(tmp_path, {"latency": [0.1], "accuracy": [0.9, 0.8]}, {"latency": [0.1]}, capsys)
    assert code == 2
    assert "accuracy: expected a number" in report["stderr"]
