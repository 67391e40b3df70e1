"""docs/crd-reference.md is generated from the models and must not go stale."""

from __future__ import annotations

from modelratchet.api.docs import default_path, render


def test_committed_reference_is_current() -> None:
    assert default_path().read_text() == render(), "stale: run `python -m modelratchet.api.docs`"


def test_reference_documents_every_field_with_its_rules() -> None:
    text = render()
    assert "`spec.metrics[].threshold.tiers[].severity`" in text
    assert "each: minSamples needs samplesQuery" in text
    assert "each: each step needs exactly one of setWeight, analyze, pause, setHeaderRoute, setMirror" in text
    assert "`spec.steps[].setWeight` | integer |  | Percentage of traffic for the candidate" in text
    assert "`status.history[].metrics[].classification`" in text
