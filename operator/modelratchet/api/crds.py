"""Generate the CustomResourceDefinitions from the pydantic models.

CRD schemas are a structural subset of OpenAPI v3: no ``$ref``, no ``anyOf`` with null, no titles, and
``exclusiveMinimum`` is a boolean. The models stay the single source of truth; this module only translates.

    python -m modelratchet.api.crds [--check] [OUTPUT_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .baseline import ModelBaselineSpec, ModelBaselineStatus
from .common import GROUP, VERSION
from .rollout import ModelRolloutSpec, ModelRolloutStatus

_KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "format",
    "nullable",
}

# Lists whose items are keyed: the API server enforces unique keys and merges them per key.
_LIST_MAP_KEYS = {("ModelBaselineSpec", "metrics"): "name", ("*", "conditions"): "type"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve(merged, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _structural(node: dict[str, Any], owner: str = "") -> dict[str, Any]:
    """Translate one resolved pydantic schema node into a structural CRD schema node."""
    node = dict(node)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in {owner}: {options}")
        inner = dict(options[0])
        # Field-level keys (description, default) win over the type's own.
        node = {**inner, **node}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return {k: v for k, v in node.items() if k == "description" or k.startswith("x-kubernetes-")}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
        elif key not in _KEEP:
            continue
        elif key == "properties":
            title = node.get("title", owner)
            props = {}
            for name, sub in value.items():
                props[name] = _structural(sub, title)
                map_key = _LIST_MAP_KEYS.get((title, name)) or _LIST_MAP_KEYS.get(("*", name))
                if map_key and props[name].get("type") == "array":
                    props[name]["x-kubernetes-list-type"] = "map"
                    props[name]["x-kubernetes-list-map-keys"] = [map_key]
            out["properties"] = props
        elif key == "items":
            out["items"] = _structural(value, owner)
        elif key == "default" and value is None:
            continue
        elif key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs), model.__name__)


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "modelratchet"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["modelratchet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": schema_of(spec),
                                "status": schema_of(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def model_baseline_crd() -> dict[str, Any]:
    return _crd(
        kind="ModelBaseline",
        plural="modelbaselines",
        short="mb",
        spec=ModelBaselineSpec,
        status=ModelBaselineStatus,
        description="What good looks like for a model: metrics, baselines and regression thresholds.",
        columns=[
            {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
            {"name": "Metrics", "type": "integer", "jsonPath": ".status.metricCount"},
            {"name": "Last-Verdict", "type": "string", "jsonPath": ".status.lastValidation.verdict"},
            {"name": "Checkpoint", "type": "string", "jsonPath": ".status.lastValidation.checkpoint", "priority": 1},
            _age(),
        ],
    )


def model_rollout_crd() -> dict[str, Any]:
    return _crd(
        kind="ModelRollout",
        plural="modelrollouts",
        short="mro",
        spec=ModelRolloutSpec,
        status=ModelRolloutStatus,
        description="Moves a serving Deployment to a candidate checkpoint in canary steps, judged "
        "against a ModelBaseline.",
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Step", "type": "integer", "jsonPath": ".status.currentStep"},
            {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
            {"name": "Stable", "type": "string", "jsonPath": ".status.stableCheckpoint"},
            {"name": "Canary", "type": "string", "jsonPath": ".status.canaryCheckpoint"},
            {"name": "Verdict", "type": "string", "jsonPath": ".status.lastVerdict", "priority": 1},
            _age(),
        ],
    )


# Rules on `baseline`, which is a number or "live": a CRD's CEL rules cannot refer to a field without a type,
# but a ValidatingAdmissionPolicy evaluates dynamically, so the API server still enforces them.
BASELINE_POLICY_RULES = [
    (
        "object.spec.metrics.all(m, !(m.threshold.type in ['delta', 'ratio']) || has(m.baseline))",
        "spec.metrics: delta and ratio thresholds need a baseline",
    ),
    (
        "object.spec.metrics.all(m, !has(m.baseline) || type(m.baseline) == int || type(m.baseline) == double "
        "|| (type(m.baseline) == string && m.baseline == 'live'))",
        'spec.metrics: baseline must be a number or "live"',
    ),
    (
        "object.spec.metrics.all(m, m.threshold.type != 'ratio' || !has(m.baseline) "
        "|| type(m.baseline) == string || double(m.baseline) != 0.0)",
        "spec.metrics: a ratio threshold needs a non-zero baseline",
    ),
    (
        "object.spec.metrics.all(m, !has(m.judge) || !has(m.judge.type) "
        "|| !(m.judge.type in ['histogram', 'mannWhitney']) "
        "|| (has(m.baseline) && type(m.baseline) == string && m.baseline == 'live'))",
        'spec.metrics: a histogram or mannWhitney judge compares with the stable checkpoint: it needs baseline: "live"',
    ),
    (
        "object.spec.metrics.all(m, !has(m.baselineEvidence) || (has(m.baseline) && type(m.baseline) != string))",
        "spec.metrics: baselineEvidence describes a static baseline value, not a live one",
    ),
]


def _secret_readable(ref: str) -> str:
    """CEL: the requesting user may read the Secret named by ``ref`` (an expression of a secretRef)."""
    return (
        "authorizer.group('').resource('secrets').namespace(object.metadata.namespace)"
        f".name({ref}.name).check('get').allowed()"
    )


def _spec_unchanged() -> str:
    return "(request.operation == 'UPDATE' && oldObject.spec == object.spec)"


# What a ModelBaseline may name is what its author may read: the operator reads referenced Secrets with its own
# rights, so without this a user who may create baselines could have it send any Secret to any address.
BASELINE_ACCESS_RULES = [
    (
        f"{_spec_unchanged()} || !has(object.spec.prometheus) || !has(object.spec.prometheus.bearerTokenSecretRef) "
        f"|| {_secret_readable('object.spec.prometheus.bearerTokenSecretRef')}",
        "'spec.prometheus.bearerTokenSecretRef: ' + request.userInfo.username + ' may not get Secret \"' "
        "+ object.spec.prometheus.bearerTokenSecretRef.name + '\" in namespace ' + object.metadata.namespace",
    ),
    (
        f"{_spec_unchanged()} || !has(object.spec.prometheus) || !has(object.spec.prometheus.caSecretRef) "
        f"|| {_secret_readable('object.spec.prometheus.caSecretRef')}",
        "'spec.prometheus.caSecretRef: ' + request.userInfo.username + ' may not get Secret \"' "
        "+ object.spec.prometheus.caSecretRef.name + '\" in namespace ' + object.metadata.namespace",
    ),
]

# Creating or editing a ModelRollout makes the operator write into the target Deployment and create a canary from
# its pod template (its ServiceAccount, volumes, image): only someone who could do that themselves may ask for it.
ROLLOUT_ACCESS_RULES = [
    (
        "authorizer.group('apps').resource('deployments').namespace(object.metadata.namespace)"
        ".name(object.spec.targetRef.name).check('patch').allowed()",
        "'spec.targetRef: ' + request.userInfo.username + ' may not patch Deployment \"' "
        "+ object.spec.targetRef.name + '\" in namespace ' + object.metadata.namespace",
    ),
    (
        "authorizer.group('apps').resource('deployments').namespace(object.metadata.namespace)"
        ".check('create').allowed()",
        "'spec.targetRef: ' + request.userInfo.username + ' may not create Deployments in namespace ' "
        "+ object.metadata.namespace + ', which a canary is'",
    ),
    (
        "!has(object.spec.trafficRouting) || !has(object.spec.trafficRouting.gatewayAPI) || "
        "(authorizer.group('gateway.networking.k8s.io').resource('httproutes').namespace(object.metadata.namespace)"
        ".name(object.spec.trafficRouting.gatewayAPI.httpRoute).check('patch').allowed() && "
        "authorizer.group('').resource('services').namespace(object.metadata.namespace).check('create').allowed())",
        "'spec.trafficRouting.gatewayAPI: ' + request.userInfo.username + ' may not patch HTTPRoute \"' "
        "+ object.spec.trafficRouting.gatewayAPI.httpRoute + '\" or create Services in namespace ' "
        "+ object.metadata.namespace",
    ),
    (
        "!has(object.spec.notifications) || object.spec.notifications.all(n, "
        f"(!has(n.webhook) || {_secret_readable('n.webhook.secretRef')}) "
        f"&& (!has(n.slack) || {_secret_readable('n.slack.secretRef')}))",
        "'spec.notifications: ' + request.userInfo.username + ' may not get every Secret named there, in namespace ' "
        "+ object.metadata.namespace",
    ),
    (
        "!has(object.spec.source) || !has(object.spec.source.mlflow.secretRef) || "
        + _secret_readable("object.spec.source.mlflow.secretRef"),
        "'spec.source.mlflow.secretRef: ' + request.userInfo.username + ' may not get Secret \"' "
        "+ object.spec.source.mlflow.secretRef.name + '\" in namespace ' + object.metadata.namespace",
    ),
    # The operator suspends and resumes these: only for an author who may patch each of them (the resource is the
    # lower-cased kind + s, exactly what the operator patches).
    (
        "!has(object.spec.onRollback) || !has(object.spec.onRollback.suspend) || object.spec.onRollback.suspend.all(w, "
        "authorizer.group(w.apiVersion.split('/')[0]).resource(w.kind.lowerAscii() + 's')"
        ".namespace(object.metadata.namespace).name(w.name).check('patch').allowed())",
        "'spec.onRollback.suspend: ' + request.userInfo.username + ' may not patch every workload listed there, "
        "in namespace ' + object.metadata.namespace",
    ),
]

# The custom verb that marks the operator: RBAC grants `record` on <kind>/status to its ServiceAccount only.
RECORD_VERB = "record"


def _status_unchanged_but_gate() -> str:
    """CEL: every status field except the gate request is as it was."""
    fields = [f.alias or f_name for f_name, f in ModelRolloutStatus.model_fields.items() if f_name != "gate"]
    return " && ".join(f"object.?status.?{name} == oldObject.?status.?{name}" for name in fields)


def status_guard_policy() -> list[dict[str, Any]]:
    """Status is the operator's memory: others may only place (their own) gate request in it."""
    name = f"status.{GROUP}"
    is_rollout = "request.resource.resource == 'modelrollouts'"
    return _policy(
        name,
        resources=["modelrollouts/status", "modelbaselines/status"],
        operations=["UPDATE"],
        variables=[
            {
                "name": "operator",
                "expression": f"authorizer.group('{GROUP}').resource(request.resource.resource).subresource('status')"
                f".namespace(object.metadata.namespace).name(object.metadata.name).check('{RECORD_VERB}').allowed()",
            }
        ],
        validations=[
            (
                f"variables.operator || ({is_rollout} ? ({_status_unchanged_but_gate()}) "
                ": object.?status == oldObject.?status)",
                "'only the operator may change status fields other than status.gate; '"
                " + request.userInfo.username + ' may request promote, abort, retry or resumeTraining there'",
                "Forbidden",
            ),
            (
                f"variables.operator || !({is_rollout}) || !has(object.status) || !has(object.status.gate) "
                "|| oldObject.?status.?gate == object.?status.?gate "
                "|| object.status.gate.?requestedBy == optional.of(request.userInfo.username)",
                "'status.gate.requestedBy must be the requesting user, ' + request.userInfo.username",
                "Forbidden",
            ),
        ],
    )


def _policy(
    name: str,
    *,
    resources: list[str],
    operations: list[str],
    validations: list[tuple[str, str, str]],
    variables: list[dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy and the binding that makes it deny."""
    labels = {"app.kubernetes.io/part-of": "modelratchet"}
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [GROUP], "apiVersions": [VERSION], "operations": operations, "resources": resources}
            ]
        },
    }
    if variables:
        spec["variables"] = variables
    spec["validations"] = [
        {"expression": expr, "messageExpression" if msg.startswith("'") else "message": msg, "reason": reason}
        for expr, msg, reason in validations
    ]
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


def baseline_policy() -> list[dict[str, Any]]:
    return _policy(
        f"modelbaselines.{GROUP}",
        resources=["modelbaselines"],
        operations=["CREATE", "UPDATE"],
        validations=[(e, m, "Invalid") for e, m in BASELINE_POLICY_RULES]
        + [(e, m, "Forbidden") for e, m in BASELINE_ACCESS_RULES],
    )


def rollout_policy() -> list[dict[str, Any]]:
    docs = _policy(
        f"modelrollouts.{GROUP}",
        resources=["modelrollouts"],
        operations=["CREATE", "UPDATE"],
        validations=[(e, m, "Forbidden") for e, m in ROLLOUT_ACCESS_RULES],
    )
    # Only a new or changed spec asks for anything: metadata writes (finalizers, labels) are not re-judged.
    docs[0]["spec"]["matchConditions"] = [
        {"name": "spec-changed", "expression": "request.operation == 'CREATE' || oldObject.spec != object.spec"}
    ]
    return docs


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD object."""
    return {"modelbaselines.yaml": model_baseline_crd(), "modelrollouts.yaml": model_rollout_crd()}


def all_manifests() -> dict[str, str]:
    """File name -> rendered YAML of everything in crds/."""
    out = {name: render(crd) for name, crd in all_crds().items()}
    header = "# Generated by `python -m modelratchet.api.crds` from the pydantic models. Do not edit.\n"
    out["modelbaselines-policy.yaml"] = header + yaml.safe_dump_all(baseline_policy(), sort_keys=False, width=120)
    out["modelrollouts-policy.yaml"] = header + yaml.safe_dump_all(rollout_policy(), sort_keys=False, width=120)
    out["status-policy.yaml"] = header + yaml.safe_dump_all(status_guard_policy(), sort_keys=False, width=120)
    return out


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `python -m modelratchet.api.crds` from the pydantic models. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


def default_output_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "crds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelratchet crds", description="Write the CRD manifests.")
    parser.add_argument("output", nargs="?", type=Path, default=None, help="directory (default: crds/)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk are stale")
    args = parser.parse_args(argv)
    out: Path = args.output or default_output_dir()
    stale = []
    for name, text in all_manifests().items():
        path = out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print("stale CRD manifests (run `modelratchet crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
