"""Replica-based traffic split: canary pod counts for a step weight."""

from __future__ import annotations

import pytest
from modelratchet.rollout import canary_replicas, effective_weight
from modelratchet.rollout.replicas import MAX_REPLICA_WEIGHT


def share(canary: int, target: int) -> float:
    return 100 * canary / (target + canary)


@pytest.mark.parametrize("target", range(1, 21))
def test_share_is_the_closest_achievable_and_within_one_pod(target: int) -> None:
    for weight in range(0, MAX_REPLICA_WEIGHT + 1):
        c = canary_replicas(weight, target)
        if weight == 0:
            assert c == 0
            continue
        assert c >= 1, (weight, target)
        exact = weight * target / (100 - weight)  # the fractional pod count that gives exactly `weight`
        assert abs(c - exact) <= 1, (weight, target, c, exact)
        # No other pod count (at least one pod) gets closer to the weight.
        best = min(abs(share(k, target) - weight) for k in range(1, 5 * target + 10))
        assert abs(share(c, target) - weight) == pytest.approx(best), (weight, target, c)


@pytest.mark.parametrize("target", range(1, 21))
def test_weights_above_the_cap_get_the_capped_count(target: int) -> None:
    capped = canary_replicas(MAX_REPLICA_WEIGHT, target)
    assert capped == 4 * target  # 80% of ready pods: four canary pods per target pod
    for weight in range(MAX_REPLICA_WEIGHT + 1, 101):
        assert canary_replicas(weight, target) == capped


@pytest.mark.parametrize(
    ("weight", "target", "expected"),
    [
        (1, 1, 1),  # any positive weight exercises the candidate
        (1, 20, 1),
        (10, 4, 1),  # 1/5 = 20% beats 0 pods (not allowed) and 2/6 = 33%
        (10, 9, 1),  # exactly 10%
        (10, 18, 2),  # exactly 10%
        (20, 4, 1),  # exactly 20%
        (25, 4, 1),  # 20% (off 5) beats 33% (off 8.3)
        (25, 3, 1),  # exactly 25%
        (50, 4, 4),  # exactly 50%
        (50, 1, 1),
        (33, 2, 1),  # 33.3%
        (60, 2, 3),  # exactly 60%
        (75, 1, 3),  # exactly 75%
        (80, 5, 20),
        (100, 5, 20),  # capped at 80%
    ],
)
def test_known_counts(weight: int, target: int, expected: int) -> None:
    assert canary_replicas(weight, target) == expected


def test_ties_prefer_fewer_pods() -> None:
    # target 1, weight 40: 1 pod -> 50% (off 10), 0 pods not allowed; 2 pods -> 66.7%. target 2, weight 40:
    # 1 -> 33.3% (off 6.7), 2 -> 50% (off 10).
    assert canary_replicas(40, 1) == 1
    assert canary_replicas(40, 2) == 1
    # target 3, weight 45: 2 -> 40% (off 5), 3 -> 50% (off 5): a tie, the smaller canary wins.
    assert canary_replicas(45, 3) == 2


def test_target_scaled_to_zero_is_treated_as_one_pod() -> None:
    assert canary_replicas(50, 0) == canary_replicas(50, 1) == 1
    assert canary_replicas(0, 0) == 0


def test_non_positive_weight_means_no_canary_pods() -> None:
    assert canary_replicas(0, 10) == 0
    assert canary_replicas(-5, 10) == 0


@pytest.mark.parametrize(
    ("canary", "target", "expected"),
    [(0, 0, 0), (0, 4, 0), (1, 4, 20), (4, 4, 50), (1, 0, 100), (1, 2, 33), (2, 1, 67), (20, 5, 80)],
)
def test_effective_weight(canary: int, target: int, expected: int) -> None:
    assert effective_weight(canary, target) == expected
