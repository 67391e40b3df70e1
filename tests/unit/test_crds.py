"""The CRD manifests: fresh, structural, and faithful to the pydantic models they are generated from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from modelratchet.api import ModelBaseline, ModelRollout
from modelratchet.api.crds import all_crds, render
from modelratchet.api.errors import validation_problems

ROOT = Path(__file__).resolve().parents[2]
FIX = "python -m modelratchet.api.crds  (or: modelratchet crds)"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_committed_crds_are_fresh(name: str) -> None:
    path = ROOT / "crds" / name
    assert path.exists(), f"crds/{name} is missing; run `{FIX}`"
    assert path.read_text() == render(all_crds()[name]), f"crds/{name} is stale; run `{FIX}`"


# --------------------------------------------------------------------------------- structural schemas

# Every key a JSONSchemaProps of apiextensions.k8s.io/v1 knows.
_JSON_SCHEMA_PROPS = {
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not",
    "properties", "additionalProperties", "patternProperties", "dependencies", "additionalItems", "definitions",
    "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
    "x-kubernetes-validations",
}  # fmt: skip
# Allowed by the type, but not by ours: references, unions and titles are what the generator must remove.
_FORBIDDEN = {"$ref", "definitions", "$schema", "id", "anyOf", "oneOf", "allOf", "not", "title", "uniqueItems"}
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


def structural_problems(node: Any, path: str = "") -> list[str]:
    """What the API server would reject in a CRD schema (the rules of structural schemas and more)."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    problems = [f"{path}: unknown key {k}" for k in node if k not in _JSON_SCHEMA_PROPS]
    problems += [f"{path}: {k} is not allowed" for k in node if k in _FORBIDDEN]
    untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") is True or node.get("x-kubernetes-int-or-string")
    kind = node.get("type")
    if kind is None and not untyped_ok:
        problems.append(f"{path}: no type")
    if kind is not None and kind not in _TYPES:
        problems.append(f"{path}: unknown type {kind!r}")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false")
    if "properties" in node and kind != "object":
        problems.append(f"{path}: properties on a {kind}")
    if kind == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    if "items" in node and kind != "array":
        problems.append(f"{path}: items on a {kind}")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and (not isinstance(node[key], bool) or key.replace("exclusiveM", "m") not in node):
            problems.append(f"{path}: {key} must be a boolean next to its bound")
    if kind in _PY_TYPES:
        for value in node.get("enum", []):
            if not isinstance(value, _PY_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
                problems.append(f"{path}: enum value {value!r} is not a {kind}")
        if "default" in node and not isinstance(node["default"], _PY_TYPES[kind]):
            problems.append(f"{path}: default {node['default']!r} is not a {kind}")
    props = node.get("properties", {})
    problems += [f"{path}: required {r!r} is not a property" for r in node.get("required", []) if r not in props]
    for rule in node.get("x-kubernetes-validations", []):
        if not isinstance(rule.get("rule"), str) or not rule.get("message"):
            problems.append(f"{path}: a validation needs a rule and a message")
        if "reason" in rule and rule["reason"] not in _REASONS:
            problems.append(f"{path}: validation reason {rule['reason']!r}")
        if set(rule) - {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}:
            problems.append(f"{path}: unknown validation keys {sorted(rule)}")
    # CEL sees only typed nodes (and int-or-string ones): a rule on or about an untyped node does not compile.
    if kind is None and not node.get("x-kubernetes-int-or-string") and node.get("x-kubernetes-validations"):
        problems.append(f"{path}: CEL rules on an untyped node")
    for name, sub in props.items():
        if "type" not in sub and not sub.get("x-kubernetes-int-or-string"):
            for rule in node.get("x-kubernetes-validations", []):
                if re.search(rf"\bself\.\??{re.escape(name)}\b", str(rule.get("rule", ""))):
                    problems.append(f"{path}: a CEL rule mentions the untyped field {name}")
    if node.get("x-kubernetes-list-type") == "map":
        items = node.get("items", {})
        for key in node.get("x-kubernetes-list-map-keys", []):
            if key not in items.get("required", []) and "default" not in items.get("properties", {}).get(key, {}):
                problems.append(f"{path}: list-map key {key!r} must be required or defaulted")
    elif "x-kubernetes-list-map-keys" in node:
        problems.append(f"{path}: list-map keys without x-kubernetes-list-type: map")
    for name, sub in props.items():
        problems += structural_problems(sub, f"{path}.{name}")
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[]")
    return problems


def _committed(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "crds" / name).read_text())
    return doc


CRDS = {
    "modelbaselines.yaml": ("ModelBaseline", "modelbaselines", "mb"),
    "modelrollouts.yaml": ("ModelRollout", "modelrollouts", "mro"),
}


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name: str) -> None:
    [version] = _committed(name)["spec"]["versions"]
    assert structural_problems(version["schema"]["openAPIV3Schema"], "openAPIV3Schema") == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "root.a: $ref is not allowed"),
        ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}}, "root.a: no type"),
        ({"type": "object", "properties": {"a": {"type": "string", "title": "A"}}}, "root.a: title is not allowed"),
        ({"type": "array"}, "root: array without items"),
        (
            {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "root: properties and additionalProperties together",
        ),
        ({"type": "object", "required": ["a"], "properties": {}}, "root: required 'a' is not a property"),
        (
            {"type": "number", "minimum": 0, "exclusiveMinimum": 0},
            "root: exclusiveMinimum must be a boolean next to its bound",
        ),
        ({"type": "string", "enum": ["a", 1]}, "root: enum value 1 is not a string"),
        ({"type": "object", "properties": {"a": {"type": "string", "examples": []}}}, "root.a: unknown key examples"),
        (
            {
                "type": "object",
                "properties": {"b": {"x-kubernetes-preserve-unknown-fields": True}},
                "x-kubernetes-validations": [{"rule": "has(self.b)", "message": "m"}],
            },
            "root: a CEL rule mentions the untyped field b",
        ),
        (
            {
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-validations": [{"rule": "true", "message": "m"}],
            },
            "root: CEL rules on an untyped node",
        ),
        (
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
            "root: list-map key 'k' must be required or defaulted",
        ),
    ],
)
def test_the_structural_check_catches(schema: dict[str, Any], problem: str) -> None:
    assert problem in structural_problems(schema, "root")


def _resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in json_path.lstrip(".").split("."):
        if node is None or node.get("type") != "object":
            return None
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            return {"x-kubernetes-preserve-unknown-fields": True}
        node = node.get("properties", {}).get(part)
    return node


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crd_shape(name: str) -> None:
    kind, plural, short = CRDS[name]
    crd = _committed(name)
    assert (crd["apiVersion"], crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert set(crd) == {"apiVersion", "kind", "metadata", "spec"}
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{plural}.{spec['group']}"
    assert spec["group"] == "modelratchet.io"
    assert spec["scope"] == "Namespaced"
    assert set(spec) <= {"group", "names", "scope", "versions", "conversion", "preserveUnknownFields"}
    names = spec["names"]
    assert set(names) <= {"plural", "singular", "shortNames", "kind", "listKind", "categories"}
    assert names == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": [short],
        "categories": ["modelratchet"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    root = version["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    assert root["properties"]["metadata"] == {"type": "object"}  # no restrictions beyond name/generateName
    assert {"spec", "status"} <= set(root["properties"])
    columns = version["additionalPrinterColumns"]
    assert columns, "kubectl get should show more than the name"
    assert len({c["name"] for c in columns}) == len(columns)
    for column in columns:
        assert set(column) <= {"name", "type", "jsonPath", "description", "format", "priority"}
        assert column["type"] in {"integer", "number", "string", "boolean", "date"}
        assert column["jsonPath"].startswith(".")
        if column["jsonPath"] != ".metadata.creationTimestamp":
            target = _resolve(root, column["jsonPath"])
            assert target is not None, (
                f"printer column {column['name']} points at {column['jsonPath']}, not in the schema"
            )
            if "type" in target:
                expected = {"date": "string"}.get(column["type"], column["type"])
                assert target["type"] == expected, column


def test_printer_columns() -> None:
    def columns(name: str) -> list[str]:
        return [c["name"] for c in _committed(name)["spec"]["versions"][0]["additionalPrinterColumns"]]

    assert columns("modelbaselines.yaml") == ["Model", "Metrics", "Last-Verdict", "Checkpoint", "Age"]
    assert columns("modelrollouts.yaml") == ["Phase", "Step", "Weight", "Stable", "Canary", "Verdict", "Age"]


def test_metrics_are_a_list_map_keyed_by_name() -> None:
    metrics = _committed("modelbaselines.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]["metrics"]
    assert (metrics["x-kubernetes-list-type"], metrics["x-kubernetes-list-map-keys"]) == ("map", ["name"])


# ----------------------------------------------------------------------------- the DESIGN.md examples

DESIGN_BASELINE = """
apiVersion: modelratchet.io/v1alpha1
kind: ModelBaseline
metadata: {name: fraud-detector, namespace: ml-prod}
spec:
  model: fraud-detector
  neutralBand: 0.01
  metrics:
    - name: eval_loss
      direction: lowerIsBetter
      baseline: 0.45
      threshold: {type: max, value: 0.50}
      severity: critical
      description: Eval loss must stay below 0.50
    - name: accuracy
      baseline: 0.92
      threshold: {type: ratio, value: 0.05}
      query: |
        sum(rate(model_correct_total{model="{{ model }}",checkpoint="{{ checkpoint }}"}[2m]))
        / sum(rate(model_predictions_total{model="{{ model }}",checkpoint="{{ checkpoint }}"}[2m]))
      minSamples: 200
      samplesQuery: sum(increase(model_predictions_total{checkpoint="{{ checkpoint }}"}[10m]))
    - name: elo
      baseline: live
      threshold:
        type: delta
        tiers: [{value: 20, severity: info}, {value: 30, severity: critical}]
"""

DESIGN_ROLLOUT = """
apiVersion: modelratchet.io/v1alpha1
kind: ModelRollout
metadata: {name: fraud-detector, namespace: ml-prod}
spec:
  targetRef: {name: fraud-serving}
  checkpoint: s3://models/fraud/v43
  checkpointFrom: {container: server, env: MODEL_CHECKPOINT}
  baselineRef: {name: fraud-detector}
  steps:
    - setWeight: 10
    - analyze: {duration: 5m}
    - setWeight: 50
    - pause: {}
    - analyze: {duration: 10m}
  analysis:
    interval: 30s
    failureLimit: 0
    inconclusiveLimit: 3
    onInconclusive: rollback
    warningPolicy: proceed
  postPromotion: {watch: 30m}
  notifications: [{webhook: {secretRef: {name: slack-hook, key: url}}}]
status:
  phase: Progressing
  observedGeneration: 3
  stableCheckpoint: s3://models/fraud/v42
  canaryCheckpoint: s3://models/fraud/v43
  currentStep: 1
  canaryWeight: 10
  lastGoodCheckpoints: [s3://models/fraud/v42, s3://models/fraud/v41]
  rejectedCheckpoints: []
  conditions:
    - type: Progressing
      status: "True"
      reason: Analyzing
      message: analyzing
      lastTransitionTime: "2025-01-01T00:00:00Z"
  history:
    - id: 1
      time: "2025-01-01T00:00:30Z"
      checkpoint: s3://models/fraud/v43
      step: 1
      verdict: passed
      metrics:
        - metric: eval_loss
          value: 0.43
          baseline: 0.45
          delta: -0.02
          classification: improved
          outcome: passed
          severity: critical
          threshold: {type: max, value: 0.5}
          message: "eval_loss: 0.43 <= 0.50 (max)"
"""


def test_design_examples_parse() -> None:
    baseline = ModelBaseline.model_validate(yaml.safe_load(DESIGN_BASELINE), strict=True)
    assert [m.name for m in baseline.spec.metrics] == ["eval_loss", "accuracy", "elo"]
    elo = baseline.spec.metrics[2]
    assert elo.is_live and elo.threshold.tiers is not None and [t.value for t in elo.threshold.tiers] == [20, 30]
    assert baseline.spec.on_missing == "fail" and baseline.spec.metrics[1].severity == "critical"
    rollout = ModelRollout.model_validate(yaml.safe_load(DESIGN_ROLLOUT))
    assert [s.set_weight for s in rollout.spec.steps] == [10, None, 50, None, None]
    assert rollout.status is not None and rollout.status.history is not None
    assert rollout.status.history[0].metrics[0].message == "eval_loss: 0.43 <= 0.50 (max)"


def test_example_baseline_is_the_design_one() -> None:
    example = yaml.safe_load((ROOT / "examples" / "baselines" / "fraud-detector.yaml").read_text())
    assert example == yaml.safe_load(DESIGN_BASELINE)


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "baselines").glob("*.yaml")), ids=lambda p: p.name)
def test_example_baselines_are_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        ModelBaseline.model_validate(doc, strict=True)


def _problems(model: type[pydantic.BaseModel], text: str, **changes: Any) -> list[str]:
    doc = yaml.safe_load(text)
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(doc, strict=True)
    return validation_problems(caught.value)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"spec__metrics__1__threshold__type": "percent"},
            "spec.metrics[1].threshold.type: Input should be 'min', 'max', 'delta' or 'ratio'",
        ),
        (
            {"spec__metrics__0__severity": "fatal"},
            "spec.metrics[0].severity: Input should be 'critical', 'warning' or 'info'",
        ),
        (
            {"spec__metrics__0__direction": "up"},
            "spec.metrics[0].direction: Input should be 'higherIsBetter' or 'lowerIsBetter'",
        ),
        (
            {"spec__metrics__1__baseline": "stable"},
            "spec.metrics[1].baseline: baseline must be a number or \"live\", not 'stable'",
        ),
        ({"spec__metrics__1__baseline": 0}, "spec.metrics[1]: accuracy: a ratio threshold needs a non-zero baseline"),
        (
            {"spec__metrics__1__minSamples": -1},
            "spec.metrics[1].minSamples: Input should be greater than or equal to 0",
        ),
        (
            {"spec__metrics__0__name": "eval loss"},
            "spec.metrics[0].name: String should match pattern '^[A-Za-z_][A-Za-z0-9_:.\\-]*$'",
        ),
        (
            {"spec__metrics__2__name": "eval_loss"},
            "spec: metric names must be unique: 'eval_loss' appears twice",
        ),
        ({"spec__neutralBand": -0.1}, "spec.neutralBand: Input should be greater than or equal to 0"),
        ({"spec__onMissing": "skip"}, "spec.onMissing: Input should be 'fail' or 'ignore'"),
        (
            {"spec__metrics__0__threshold__tiers": [{"value": 1, "severity": "info"}]},
            "spec.metrics[0].threshold: exactly one of value or tiers must be set",
        ),
        (
            {"spec__metrics__1__threshold__value": -0.05},
            "spec.metrics[1].threshold: delta and ratio thresholds must not be negative",
        ),
        (
            {"spec__metrics__0__threshold__symmetric": True},
            "spec.metrics[0].threshold: symmetric is only allowed for delta thresholds",
        ),
        ({"spec__metrics__0__thresold": {}}, "spec.metrics[0].thresold: unknown field"),
        ({"kind": "Baseline"}, "kind: Input should be 'ModelBaseline'"),
    ],
)
def test_invalid_baselines_name_the_field(changes: dict[str, Any], problem: str) -> None:
    assert problem in _problems(ModelBaseline, DESIGN_BASELINE, **changes)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"spec__steps__0": {"setWeight": 10, "pause": {}}},
            "spec.steps[0]: each step needs exactly one of setWeight, analyze, pause, setHeaderRoute, setMirror",
        ),
        ({"spec__steps__2__setWeight": 150}, "spec.steps[2].setWeight: Input should be less than or equal to 100"),
        (
            {"spec__steps__1__analyze": {"duration": "5 minutes"}},
            "spec.steps[1].analyze.duration: String should match pattern",
        ),
        (
            {"spec__checkpointFrom": {"container": "server"}},
            "spec.checkpointFrom: set exactly one of env or image: true",
        ),
        (
            {"spec__analysis__onInconclusive": "retry"},
            "spec.analysis.onInconclusive: Input should be 'rollback', 'hold' or 'proceed'",
        ),
        ({"spec__steps": []}, "spec.steps: List should have at least 1 item after validation, not 0"),
        ({"spec__baselineRef": {}}, "spec.baselineRef.name: Field required"),
        ({"spec__checkpoint": ""}, "spec.checkpoint: String should have at least 1 character"),
    ],
)
def test_invalid_rollouts_name_the_field(changes: dict[str, Any], problem: str) -> None:
    problems = _problems(ModelRollout, DESIGN_ROLLOUT, **changes)
    assert any(p.startswith(problem) for p in problems), problems
