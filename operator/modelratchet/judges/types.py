"""Types shared by the statistical judges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["higherIsBetter", "lowerIsBetter"]
# continue = not enough evidence yet (inconclusive so far).
Decision = Literal["pass", "fail", "continue"]


@dataclass(frozen=True)
class JudgeResult:
    """One judge's verdict on one metric, with the figures a person needs to trust it.

    ``estimate`` is the candidate-minus-baseline effect in the metric's own units; ``ci_low`` and
    ``ci_high`` bound it with the judge's corrected (always-valid or alpha-spent) confidence.
    ``samples`` counts the candidate arm; ``details`` holds the rest (``baseline_samples``,
    test statistics, thresholds, error rates spent).
    """

    decision: Decision
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    samples: int
    expected_more: int | None
    message: str
    details: dict[str, float] = field(default_factory=dict)
