"""Every ModelRollout and ModelBaseline shown in the README and the docs is valid for the models the CRDs come
from, so an example cannot drift from the API it documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from modelratchet.api.baseline import ModelBaselineSpec
from modelratchet.api.rollout import ModelRolloutSpec

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODELS = {"ModelRollout": ModelRolloutSpec, "ModelBaseline": ModelBaselineSpec}


def _examples() -> list[tuple[str, dict[str, object]]]:
    found = []
    for path in DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and doc.get("kind") in MODELS and "spec" in doc:
                    found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


EXAMPLES = _examples()


def test_the_docs_show_routed_and_plain_rollouts() -> None:
    names = [n for n, _ in EXAMPLES]
    assert any(n.startswith("README.md:ModelRollout") for n in names)
    assert any(n.startswith("traffic.md:ModelRollout") for n in names)


@pytest.mark.parametrize(("where", "doc"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_documented_objects_are_valid(where: str, doc: dict[str, object]) -> None:
    MODELS[str(doc["kind"])].model_validate(doc["spec"])
