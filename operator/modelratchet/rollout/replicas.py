"""Replica-based traffic split: the canary's share of ready pods follows the step weight."""

from __future__ import annotations

# Without a traffic router the split is a pod count; a share above this needs unbounded canary pods, so higher
# weights are capped here (use an HTTPRoute for precise high weights).
MAX_REPLICA_WEIGHT = 80


def canary_replicas(weight: int, target_replicas: int) -> int:
    """Canary pods c such that c / (target + c) is the closest to ``weight`` percent, within one pod.

    The target keeps its own replica count (an HPA or GitOps may own it), so the canary is added beside it.
    Any positive weight gets at least one pod, so the candidate is actually exercised.
    """
    if weight <= 0:
        return 0
    base = max(target_replicas, 1)
    w = min(weight, MAX_REPLICA_WEIGHT)
    exact = w * base / (100 - w)
    best = max(1, round(exact))
    # round() can be one pod off the closest share when shares are coarse; pick the nearest neighbour.
    candidates = {max(1, best - 1), best, best + 1}
    return min(candidates, key=lambda c: (abs(100 * c / (base + c) - w), c))


def effective_weight(canary_ready: int, target_ready: int) -> int:
    """The share of ready pods that run the candidate, in percent."""
    total = canary_ready + target_ready
    return 0 if total == 0 else round(100 * canary_ready / total)
