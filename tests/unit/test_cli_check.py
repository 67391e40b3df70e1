"""`modelratchet check`: exit codes, output formats and bad input, in-process and as the installed script."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from modelratchet.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "baselines"
FRAUD = str(EXAMPLES / "fraud-detector.yaml")
SCRIPT = Path(sys.executable).parent / "modelratchet"


def ex(name: str) -> str:
    return str(EXAMPLES / name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["check", *argv])
    except SystemExit as e:  # argparse usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, content: str | dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# ------------------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (
            [
                "--baseline",
                FRAUD,
                "--metrics",
                ex("fraud-detector.candidate.json"),
                "--baseline-metrics",
                ex("fraud-detector.stable.json"),
            ],
            0,
        ),
        (
            [
                "--baseline",
                FRAUD,
                "--metrics",
                ex("fraud-detector.regressed.json"),
                "--baseline-metrics",
                ex("fraud-detector.stable.json"),
            ],
            1,
        ),
        # elo is live: without the stable run's value it is inconclusive, which fails closed ...
        (["--baseline", FRAUD, "--metrics", ex("fraud-detector.candidate.json")], 1),
        # ... unless missing data is ignored.
        (["--baseline", FRAUD, "--metrics", ex("fraud-detector.candidate.json"), "--on-missing", "ignore"], 0),
        (["--baseline", ex("llm-finetune.yaml"), "--metrics", ex("llm-finetune.candidate.json")], 0),
        (["--baseline", ex("llm-finetune.yaml"), "--metrics", ex("llm-finetune.warning.json")], 0),
        (["--baseline", ex("llm-finetune.yaml"), "--metrics", ex("llm-finetune.warning.json"), "--fail-on-warning"], 1),
        (
            [
                "--baseline",
                ex("llm-finetune.yaml"),
                "--metrics",
                ex("llm-finetune.candidate.json"),
                "--fail-on-warning",
            ],
            0,
        ),
        (
            [
                "--baseline",
                ex("digits.yaml"),
                "--metrics",
                ex("digits.candidate.json"),
                "--baseline-metrics",
                ex("digits.stable.json"),
            ],
            0,
        ),
        (
            [
                "--baseline",
                ex("intent-classifier.yaml"),
                "--metrics",
                ex("intent-classifier.new.json"),
                "--baseline-metrics",
                ex("intent-classifier.old.json"),
            ],
            0,
        ),
        # Old and new swapped: accuracy and F1 dropped by 0.05 and 0.04.
        (
            [
                "--baseline",
                ex("intent-classifier.yaml"),
                "--metrics",
                ex("intent-classifier.old.json"),
                "--baseline-metrics",
                ex("intent-classifier.new.json"),
            ],
            1,
        ),
    ],
)
def test_exit_codes(capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> None:
    got, _, err = run(capsys, *argv)
    assert (got, err) == (code, "")


def test_on_missing_in_the_manifest_and_the_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    manifest = (EXAMPLES / "llm-finetune.yaml").read_text().replace("  metrics:", "  onMissing: ignore\n  metrics:", 1)
    fail_open = write(tmp_path, "open.yaml", manifest)
    partial = write(tmp_path, "partial.json", {"eval_loss": 0.43})
    assert run(capsys, "--baseline", fail_open, "--metrics", partial)[0] == 0
    assert run(capsys, "--baseline", fail_open, "--metrics", partial, "--on-missing", "fail")[0] == 1
    assert run(capsys, "--baseline", ex("llm-finetune.yaml"), "--metrics", partial)[0] == 1


def test_null_means_not_measured(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    metrics = write(tmp_path, "m.json", {"eval_loss": None, "perplexity": 1.5, "eval_accuracy": 0.92})
    code, out, _ = run(capsys, "--baseline", ex("llm-finetune.yaml"), "--metrics", metrics, "--format", "json")
    assert code == 1
    assert json.loads(out)["results"][0]["outcome"] == "inconclusive"


def test_nan_is_inconclusive_and_json_stays_valid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    metrics = write(tmp_path, "m.json", '{"eval_loss": NaN, "perplexity": 1.5, "eval_accuracy": Infinity}')
    code, out, _ = run(capsys, "--baseline", ex("llm-finetune.yaml"), "--metrics", metrics, "--format", "json")
    doc = json.loads(out)  # strict JSON: no NaN leaks into the output
    assert code == 1
    assert [(r["value"], r["outcome"]) for r in doc["results"]] == [
        (None, "inconclusive"),
        (1.5, "passed"),
        (None, "inconclusive"),
    ]
    assert ": NaN" not in out and "Infinity" not in out


# ----------------------------------------------------------------------------------------------- output


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "--baseline",
        FRAUD,
        "--metrics",
        ex("fraud-detector.regressed.json"),
        "--baseline-metrics",
        ex("fraud-detector.stable.json"),
        "--format",
        "json",
    )
    assert code == 1
    doc = json.loads(out)
    assert list(doc) == ["model", "status", "results", "summary"]
    assert (doc["model"], doc["status"]) == ("fraud-detector", "failed")
    assert doc["summary"] == "1 passed, 2 failed (accuracy, elo), 0 inconclusive"
    keys = ["metric", "value", "baseline", "delta", "classification", "outcome", "severity", "threshold", "message"]
    assert all(list(r) == keys for r in doc["results"])
    assert doc["results"] == [
        {
            "metric": "eval_loss",
            "value": 0.47,
            "baseline": 0.45,
            "delta": 0.02,
            "classification": "regressed",
            "outcome": "passed",
            "severity": "critical",
            "threshold": {"type": "max", "value": 0.5, "symmetric": False},
            "message": "eval_loss: 0.47 <= 0.50 (max)",
        },
        {
            "metric": "accuracy",
            "value": 0.87,
            "baseline": 0.92,
            "delta": -0.05,
            "classification": "regressed",
            "outcome": "failed",
            "severity": "critical",
            "threshold": {"type": "ratio", "value": 0.05, "symmetric": False},
            "message": "accuracy: 0.87 is 5.4% below baseline 0.92, more than 5% (ratio)",
        },
        {
            "metric": "elo",
            "value": 1450,
            "baseline": 1485,
            "delta": -35,
            "classification": "regressed",
            "outcome": "failed",
            "severity": "critical",
            "threshold": {"type": "delta", "value": 30, "symmetric": False},
            "message": "elo: dropped 35 from 1485, beyond 30 (delta, critical tier)",
        },
    ]


def test_json_status_values(capsys: pytest.CaptureFixture[str]) -> None:
    statuses = []
    for metrics in ("llm-finetune.candidate.json", "llm-finetune.warning.json"):
        _, out, _ = run(capsys, "--baseline", ex("llm-finetune.yaml"), "--metrics", ex(metrics), "--format", "json")
        statuses.append(json.loads(out)["status"])
    assert statuses == ["passed", "warning"]


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "--baseline",
        FRAUD,
        "--metrics",
        ex("fraud-detector.candidate.json"),
        "--baseline-metrics",
        ex("fraud-detector.stable.json"),
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "ModelBaseline fraud-detector: PASSED"
    assert lines[1] == "  3 passed, 0 failed, 0 inconclusive"
    assert lines[3].split() == ["METRIC", "VALUE", "BASELINE", "DELTA", "CHANGE", "OUTCOME", "SEVERITY", "DETAIL"]
    assert lines[4].split()[:7] == ["eval_loss", "0.43", "0.45", "-0.02", "improved", "passed", "critical"]
    assert lines[4].endswith("0.43 <= 0.50 (max)")
    assert lines[6].split()[:7] == ["elo", "1490", "1485", "+5", "improved", "passed", "critical"]
    assert lines[-1] == "ignored (not in the baseline): learning_rate, train_loss"


def test_text_output_of_an_inconclusive_check(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--baseline", FRAUD, "--metrics", ex("fraud-detector.candidate.json"))
    assert (
        out.splitlines()[0]
        == "ModelBaseline fraud-detector: FAILED (inconclusive: a check without data counts as failing)"
    )
    assert "baseline missing: no live baseline value for the stable checkpoint" in out


def test_markdown_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "--baseline",
        FRAUD,
        "--metrics",
        ex("fraud-detector.regressed.json"),
        "--baseline-metrics",
        ex("fraud-detector.stable.json"),
        "--format",
        "markdown",
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "### ModelRatchet check: `fraud-detector` — **FAILED**"
    assert "1 passed, 2 failed (accuracy, elo), 0 inconclusive" in lines
    assert "| Metric | Value | Baseline | Delta | Change | Outcome | Severity | Detail |" in lines
    assert "| `eval_loss` | 0.47 | 0.45 | +0.02 | regressed | passed | critical | 0.47 <= 0.50 (max) |" in lines
    assert (
        "| `accuracy` | 0.87 | 0.92 | -0.05 | regressed | **failed** | critical | "
        "0.87 is 5.4% below baseline 0.92, more than 5% (ratio) |"
    ) in lines
    assert (
        "| `elo` | 1450 | 1485 | -35 | regressed | **failed** | critical | "
        "dropped 35 from 1485, beyond 30 (delta, critical tier) |"
    ) in lines


def test_markdown_lists_ignored_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys,
        "--baseline",
        ex("llm-finetune.yaml"),
        "--metrics",
        ex("llm-finetune.candidate.json"),
        "--format",
        "markdown",
    )
    assert out.splitlines()[-1] == "Ignored (not in the baseline): `learning_rate`, `train_loss`"


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys, "stdin", io.StringIO(json.dumps({"eval_loss": 0.43, "perplexity": 1.5, "eval_accuracy": 0.5}))
    )
    code, out, _ = run(capsys, "--baseline", ex("llm-finetune.yaml"), "--metrics", "-", "--format", "json")
    assert code == 1
    assert json.loads(out)["summary"] == "2 passed, 1 failed (eval_accuracy), 0 inconclusive"


def test_baseline_metrics_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"elo": 1500}'))
    code, out, _ = run(
        capsys,
        "--baseline",
        FRAUD,
        "--metrics",
        ex("fraud-detector.candidate.json"),
        "--baseline-metrics",
        "-",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out)["results"][2]["message"] == "elo: dropped 10 from 1500, within 20 (delta)"


def test_multi_document_manifest_uses_the_model_baseline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rollout = "apiVersion: modelratchet.io/v1alpha1\nkind: ModelRollout\nmetadata: {name: x}\nspec: {}\n"
    other = rollout.replace("ModelRollout", "ModelBaseline").replace("spec: {}", "spec: {model: second, metrics: []}")
    manifest = write(
        tmp_path,
        "all.yaml",
        "---\n" + rollout + "---\n" + (EXAMPLES / "llm-finetune.yaml").read_text() + "---\n" + other,
    )
    code, out, err = run(
        capsys, "--baseline", manifest, "--metrics", ex("llm-finetune.candidate.json"), "--format", "json"
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["model"] == "llama-3.2-3b"  # the first ModelBaseline, not the second


def test_a_single_document_without_kind_is_taken_as_the_baseline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = write(
        tmp_path, "b.yaml", "spec:\n  model: x\n  metrics:\n  - {name: acc, threshold: {type: min, value: 0.9}}\n"
    )
    assert run(capsys, "--baseline", manifest, "--metrics", write(tmp_path, "m.json", {"acc": 0.95}))[0] == 0


# -------------------------------------------------------------------------------------------- bad input

GOOD_METRICS = {"eval_loss": 0.43, "perplexity": 1.52, "eval_accuracy": 0.9}


def _manifest(metrics_yaml: str) -> str:
    return (
        "apiVersion: modelratchet.io/v1alpha1\nkind: ModelBaseline\nmetadata: {name: x}\n"
        f"spec:\n  model: x\n  metrics:\n{metrics_yaml}"
    )


OK_METRIC = "  - {name: eval_loss, threshold: {type: max, value: 0.5}}\n"

BAD_MANIFESTS = [
    (
        _manifest(OK_METRIC + "  - {name: perplexity, threshold: {type: maxx, value: 0.5}}\n"),
        "spec.metrics[1].threshold.type: Input should be 'min', 'max', 'delta' or 'ratio'",
    ),
    (
        _manifest(OK_METRIC + "  - {name: eval_accuracy, baseline: 0, threshold: {type: ratio, value: 0.05}}\n"),
        "spec.metrics[1]: eval_accuracy: a ratio threshold needs a non-zero baseline",
    ),
    (
        _manifest("  - {name: eval_loss, threshold: {type: delta, value: 0.5}}\n"),
        "spec.metrics[0]: eval_loss: delta and ratio thresholds need a baseline",
    ),
    (
        _manifest("  - {name: eval_loss, threshold: {type: max, value: '0.5'}}\n"),
        "spec.metrics[0].threshold.value: Input should be a valid number",
    ),
    (
        _manifest("  - {name: eval_loss, treshold: {type: max, value: 0.5}}\n"),
        "spec.metrics[0].treshold: unknown field",
    ),
    (
        _manifest("  - {name: eval_loss, baseline: [1], threshold: {type: max, value: 0.5}}\n"),
        "spec.metrics[0].baseline: Input should be a valid number or Input should be 'live'",
    ),
    (
        _manifest("  - {name: eval_loss, baseline: yes, threshold: {type: max, value: 0.5}}\n"),
        'spec.metrics[0].baseline: baseline must be a number or "live"',
    ),
    (
        _manifest(
            "  - {name: elo, baseline: 1, threshold: {type: delta, tiers: "
            "[{value: 30, severity: critical}, {value: 20, severity: info}]}}\n"
        ),
        "spec.metrics[0].threshold: tiers must be in strictly increasing order of value",
    ),
    (_manifest(""), "spec.metrics: Input should be a valid list"),
    (
        _manifest("").replace("metrics:\n", "metrics: []\n"),
        "spec.metrics: List should have at least 1 item after validation, not 0",
    ),
    (
        "kind: ModelBaseline\nspec:\n  metrics: [{name: a, threshold: {type: min, value: 1}}]\n",
        "spec.model: Field required",
    ),
    (
        "apiVersion: modelratchet.io/v1\nkind: ModelBaseline\n"
        "spec: {model: x, metrics: [{name: a, threshold: {type: min, value: 1}}]}\n",
        "apiVersion: Input should be 'modelratchet.io/v1alpha1'",
    ),
    (
        "apiVersion: modelratchet.io/v1alpha1\nkind: ModelRollout\nspec: {}\n",
        "no ModelBaseline document (found: ModelRollout)",
    ),
    ("", "no ModelBaseline document"),
    ("spec: [unclosed\n", "invalid YAML"),
    ("kind: ModelBaseline\nspec:\n\tmodel: x\n", "invalid YAML"),
]


@pytest.mark.parametrize(("manifest", "problem"), BAD_MANIFESTS)
def test_bad_manifest(capsys: pytest.CaptureFixture[str], tmp_path: Path, manifest: str, problem: str) -> None:
    path = write(tmp_path, "bad.yaml", manifest)
    code, out, err = run(capsys, "--baseline", path, "--metrics", write(tmp_path, "m.json", GOOD_METRICS))
    assert code == 2
    assert out == ""
    assert f"modelratchet check: {path}: {problem}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("metrics", "baseline_metrics", "problem"),
    [
        (
            "{not json",
            None,
            "m.json: invalid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        ("[0.9]", None, "m.json: expected a JSON object of metric name to number, got list"),
        ({**GOOD_METRICS, "eval_loss": "0.43"}, None, 'm.json: eval_loss: expected a number, got "0.43"'),
        ({**GOOD_METRICS, "eval_loss": True}, None, "m.json: eval_loss: expected a number, got true"),
        ({**GOOD_METRICS, "eval_loss": [0.43]}, None, "m.json: eval_loss: expected a number, got [0.43]"),
        (
            {**GOOD_METRICS, "eval_loss": {"value": 0.43}},
            None,
            'm.json: eval_loss: expected a number, got {"value": 0.43}',
        ),
        ('{"eval_loss": 1e999999}', None, None),  # Python reads it as inf: inconclusive, not bad input
        (
            GOOD_METRICS,
            {"eval_accuracy": 0},
            "b.json: eval_accuracy: a ratio threshold needs a non-zero baseline, got 0",
        ),
        (
            GOOD_METRICS,
            {"eval_accuracy": 0.0},
            "b.json: eval_accuracy: a ratio threshold needs a non-zero baseline, got 0",
        ),
        (GOOD_METRICS, {"perplexity": "1.5"}, 'b.json: perplexity: expected a number, got "1.5"'),
        (GOOD_METRICS, {"perplexity": False}, "b.json: perplexity: expected a number, got false"),
        (GOOD_METRICS, "", "b.json: invalid JSON: Expecting value (line 1, column 1)"),
    ],
)
def test_bad_metrics(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    metrics: str | dict[str, Any],
    baseline_metrics: str | dict[str, Any] | None,
    problem: str | None,
) -> None:
    argv = ["--baseline", ex("llm-finetune.yaml"), "--metrics", write(tmp_path, "m.json", metrics)]
    if baseline_metrics is not None:
        argv += ["--baseline-metrics", write(tmp_path, "b.json", baseline_metrics)]
    code, _, err = run(capsys, *argv)
    assert "Traceback" not in err
    if problem is None:
        assert (code, err) == (1, "")
        return
    assert code == 2
    assert f"modelratchet check: {tmp_path}/{problem}" in err.splitlines()


def test_every_problem_gets_its_own_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    metrics = write(tmp_path, "m.json", {"eval_loss": "x", "perplexity": None, "eval_accuracy": True})
    baseline = write(tmp_path, "b.json", {"eval_accuracy": 0})
    code, _, err = run(
        capsys, "--baseline", ex("llm-finetune.yaml"), "--metrics", metrics, "--baseline-metrics", baseline
    )
    assert code == 2
    assert err.splitlines() == [
        f'modelratchet check: {metrics}: eval_loss: expected a number, got "x"',
        f"modelratchet check: {metrics}: eval_accuracy: expected a number, got true",
        f"modelratchet check: {baseline}: eval_accuracy: a ratio threshold needs a non-zero baseline, got 0",
    ]


def test_non_numeric_values_of_unchecked_keys_are_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    # intent-classifier.new.json carries "training_date": a string the baseline does not check.
    code, out, err = run(
        capsys,
        "--baseline",
        ex("intent-classifier.yaml"),
        "--metrics",
        ex("intent-classifier.new.json"),
        "--baseline-metrics",
        ex("intent-classifier.old.json"),
    )
    assert (code, err) == (0, "")
    assert "training_date" in out.splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (
            ["--baseline", "/nonexistent/b.yaml", "--metrics", ex("llm-finetune.candidate.json")],
            "cannot read /nonexistent/b.yaml: No such file or directory",
        ),
        (
            ["--baseline", ex("llm-finetune.yaml"), "--metrics", "/nonexistent/m.json"],
            "cannot read /nonexistent/m.json: No such file or directory",
        ),
        (
            ["--baseline", str(EXAMPLES), "--metrics", ex("llm-finetune.candidate.json")],
            f"cannot read {EXAMPLES}: Is a directory",
        ),
        (
            ["--baseline", ex("llm-finetune.yaml"), "--metrics", "-", "--baseline-metrics", "-"],
            "only one input can be read from stdin (-)",
        ),
    ],
)
def test_unreadable_input(capsys: pytest.CaptureFixture[str], argv: list[str], problem: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"modelratchet check: {problem}"]


def test_all_file_problems_are_reported_together(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--baseline", "/nonexistent/b.yaml", "--metrics", write(tmp_path, "m.json", "[]"))
    assert code == 2
    assert len(err.splitlines()) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--metrics", "m.json"],
        ["--baseline", FRAUD],
        ["--baseline", FRAUD, "--metrics", "m.json", "--format", "yaml"],
        ["--baseline", FRAUD, "--metrics", "m.json", "--on-missing", "maybe"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage:" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------- the installed script


def script(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *argv], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_console_script() -> None:
    regressed = script(
        "check",
        "--baseline",
        FRAUD,
        "--metrics",
        "-",
        "--baseline-metrics",
        ex("fraud-detector.stable.json"),
        "--format",
        "json",
        stdin=(EXAMPLES / "fraud-detector.regressed.json").read_text(),
    )
    assert regressed.returncode == 1, regressed.stderr
    assert json.loads(regressed.stdout)["status"] == "failed"
    passing = script(
        "check",
        "--baseline",
        ex("digits.yaml"),
        "--metrics",
        ex("digits.candidate.json"),
        "--baseline-metrics",
        ex("digits.stable.json"),
    )
    assert passing.returncode == 0, passing.stderr
    assert passing.stdout.startswith("ModelBaseline digits: PASSED")
    bad = script("check", "--baseline", FRAUD, "--metrics", "-", stdin='{"eval_loss": "low"}')
    assert bad.returncode == 2
    assert bad.stderr == 'modelratchet check: <stdin>: eval_loss: expected a number, got "low"\n'


def test_kubectl_plugin_name() -> None:
    plugin = SCRIPT.with_name("kubectl-modelratchet")
    done = subprocess.run([str(plugin), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: kubectl modelratchet")


def _big_baseline(tmp_path: Path, n: int) -> tuple[str, str, str]:
    kinds = [
        ("max", "lowerIsBetter", "{type: max, value: 0.5}", "baseline: 0.45"),
        ("min", "higherIsBetter", "{type: min, value: 0.8}", "baseline: 0.9"),
        (
            "delta",
            "higherIsBetter",
            "{type: delta, tiers: [{value: 20, severity: info}, {value: 30, severity: critical}]}",
            "baseline: live",
        ),
        ("ratio", "higherIsBetter", "{type: ratio, value: 0.05}", "baseline: 0.92"),
    ]
    lines, metrics, stable = [], {}, {}
    for i in range(n):
        kind, direction, threshold, baseline = kinds[i % len(kinds)]
        lines.append(f"  - {{name: m{i}_{kind}, direction: {direction}, {baseline}, threshold: {threshold}}}\n")
        metrics[f"m{i}_{kind}"] = {"max": 0.43, "min": 0.91, "delta": 1470.0, "ratio": 0.9}[kind]
        if kind == "delta":
            stable[f"m{i}_{kind}"] = 1485.0
    return (
        write(tmp_path, "big.yaml", _manifest("".join(lines))),
        write(tmp_path, "big.json", metrics),
        write(tmp_path, "big-stable.json", stable),
    )


def test_a_large_check_loads_no_cluster_or_stats_code(tmp_path: Path) -> None:
    """What keeps `check` quick in CI is what it imports; its wall-clock time is a figure: python -m bench.cli_check."""
    manifest, metrics, stable = _big_baseline(tmp_path, 48)
    argv = ["check", "--baseline", manifest, "--metrics", metrics, "--baseline-metrics", stable, "--format", "json"]
    done = script(*argv)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["results"]) == 48
    probe = (
        "import sys; from modelratchet.cli.main import main; code = main(sys.argv[1:]); "
        "heavy = {'kopf', 'kubernetes', 'scipy', 'numpy'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), file=sys.stderr); sys.exit(code)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    # The whole check ran in the probe (not an early exit that imports little), and pulled in none of them.
    assert loaded.returncode == 0, loaded.stderr
    assert len(json.loads(loaded.stdout)["results"]) == 48
    assert loaded.stderr.strip() == "[]"


# --------------------------------------------------------------------------------------------- crds


def test_crds_check_passes_on_the_committed_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--check", str(ROOT / "crds")]) == 0


def test_crds_writes_and_detects_stale_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["crds", "--check", str(tmp_path)]) == 1
    assert main(["crds", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "modelbaselines-policy.yaml", "modelbaselines.yaml", "modelrollouts-policy.yaml", "modelrollouts.yaml",
        "status-policy.yaml"]
    assert main(["crds", "--check", str(tmp_path)]) == 0
    (tmp_path / "modelrollouts.yaml").write_text("stale")
    assert main(["crds", "--check", str(tmp_path)]) == 1
    assert "stale CRD manifests" in capsys.readouterr().err
