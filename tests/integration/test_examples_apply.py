"""Every example manifest is accepted by the real API server (schema, CEL rules and admission policy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(p for p in (REPO / "examples").rglob("*.yaml") if "checkpoints" not in p.parts)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_example_is_accepted(path: Path, local_cluster: Any, crds: list[str], namespace: str) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        doc.get("metadata", {}).pop("namespace", None)  # examples name their own; test in ours
    manifest = yaml.safe_dump_all(docs)
    result = local_cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode == 0, result.stderr
    assert "(server dry run)" in result.stdout


def test_there_are_examples_of_both_kinds() -> None:
    text = "".join(p.read_text() for p in MANIFESTS)
    assert "kind: ModelRollout" in text and "kind: ModelBaseline" in text
