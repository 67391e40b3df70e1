"""Reading the files a CLI command is given, with one clear message per problem instead of a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from modelratchet.api.errors import validation_problems

if TYPE_CHECKING:
    from modelratchet.api.baseline import ModelBaseline, ModelBaselineSpec
    from modelratchet.gates.observation import Observation

STDIN = "-"


class BadInput(Exception):
    """The input cannot be used; ``problems`` holds one line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def label(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def read_text(path: str) -> str:
    if path == STDIN:
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise BadInput([f"cannot read {path}: {e.strerror or e}"]) from None
    except UnicodeDecodeError:
        raise BadInput([f"cannot read {path}: not UTF-8 text"]) from None


def _yaml_documents(text: str, where: str) -> list[Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise BadInput([f"{where}: invalid YAML: {what}{at}"]) from None


def load_baseline(path: str) -> ModelBaseline:
    """The first ModelBaseline document of a (multi-document) manifest, validated as the API server would."""
    from pydantic import ValidationError

    from modelratchet.api.baseline import ModelBaseline

    where = label(path)
    docs = _yaml_documents(read_text(path), where)
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ModelBaseline"]
    if not found:
        # A single document without a kind is taken as the ModelBaseline it was meant to be.
        unkinded = [d for d in docs if isinstance(d, dict) and "kind" not in d]
        if len(docs) == 1 and unkinded:
            found = unkinded
        else:
            kinds = sorted({str(d.get("kind")) for d in docs if isinstance(d, dict)})
            seen = f" (found: {', '.join(kinds)})" if kinds else ""
            raise BadInput([f"{where}: no ModelBaseline document{seen}"])
    try:
        # Strict: a quoted "0.5" is a string to the API server too, not a number.
        return ModelBaseline.model_validate(found[0], strict=True)
    except ValidationError as e:
        raise BadInput(f"{where}: {p}" for p in validation_problems(e)) from None


def load_json_object(path: str) -> dict[str, Any]:
    where = label(path)
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput([f"{where}: invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})"]) from None
    if not isinstance(data, dict):
        raise BadInput([f"{where}: expected a JSON object of metric name to number, got {type(data).__name__}"])
    return data


def _samples(raw: list[Any], where: str, name: str) -> Observation | str:
    """Per-request samples (a mannWhitney metric's list of numbers), or what is wrong with them."""
    from modelratchet.gates.observation import Observation

    if not raw or any(isinstance(x, bool) or not isinstance(x, int | float) for x in raw):
        return f"{where}: {name}: expected a non-empty list of numbers (per-request samples)"
    try:
        return Observation(series=tuple(float(x) for x in raw))
    except OverflowError:
        return f"{where}: {name}: number out of range"


def metric_values(
    data: Mapping[str, Any], spec: ModelBaselineSpec, where: str, *, baseline: bool = False
) -> tuple[dict[str, float | Observation | None], list[str]]:
    """The values of the metrics the spec checks, and the problems found.

    Keys the spec does not check are left alone (a metrics file may carry a training date); null means
    not measured. Supplied baseline values must be usable: a ratio needs a non-zero one. A metric judged by
    mannWhitney may be given as a list of per-request samples, which its rank test then judges.
    """
    values: dict[str, float | Observation | None] = {}
    problems: list[str] = []
    for metric in spec.metrics:
        if metric.name not in data:
            continue
        raw = data[metric.name]
        if raw is None:
            values[metric.name] = None
            continue
        if isinstance(raw, list) and metric.judge is not None and metric.judge.type == "mannWhitney":
            samples = _samples(raw, where, metric.name)
            if isinstance(samples, str):
                problems.append(samples)
            else:
                values[metric.name] = samples
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            problems.append(f"{where}: {metric.name}: expected a number, got {json.dumps(raw)}")
            continue
        try:
            value = float(raw)
        except OverflowError:
            problems.append(f"{where}: {metric.name}: number out of range")
            continue
        if baseline and metric.threshold.type == "ratio" and value == 0:
            problems.append(f"{where}: {metric.name}: a ratio threshold needs a non-zero baseline, got 0")
            continue
        values[metric.name] = value
    return values, problems
