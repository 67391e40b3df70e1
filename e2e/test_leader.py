"""Two operator processes and a Lease: a leader frozen by SIGSTOP is replaced, and when it wakes up it stays out.

Lease timings are short here (lease 3 s, renew deadline 2 s, retry 0.5 s) so that a takeover takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.harness.operator_proc import OperatorProcess
from e2e.harness.scenario import V1, V2, V3, Scenario, digits_baseline, rollout_spec
from e2e.harness.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

LEASE = "modelratchet-leader"
RECONCILES = "modelratchet_reconcile_duration_seconds_count"
RENEWALS = "modelratchet_lease_renewals_total"
LEADER = "modelratchet_leader"
IN_FLIGHT = "modelratchet_reconciles_in_flight"


def _holder(sc: Scenario) -> str | None:
    """Who holds the Lease; None until the first replica has created it (it does so after it starts serving)."""
    try:
        lease = client.CoordinationV1Api(sc.api).read_namespaced_lease(LEASE, sc.ns)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def _metric(replica: OperatorProcess, name: str) -> float:
    return replica.metrics().get(name, 0.0)


def _history_is_clean(status: dict[str, Any]) -> None:
    ids = [h["id"] for h in status.get("history") or []]
    assert ids == list(range(status["lastHistoryId"], status["lastHistoryId"] - len(ids), -1)), ids


def test_a_frozen_leader_is_replaced_and_stays_out_when_it_wakes(
    scenario: Scenario, operator: OperatorProcess, local_cluster: Any, prometheus: Any, tmp_path: Path
) -> None:
    env = {
        "MODELRATCHET_LEASE_NAMESPACE": scenario.ns,
        "MODELRATCHET_LEASE_NAME": LEASE,
        "MODELRATCHET_LEASE_DURATION": "3",
        "MODELRATCHET_LEASE_RENEW_DEADLINE": "2",
        "MODELRATCHET_LEASE_RETRY_PERIOD": "0.5",
    }
    operator.stop()
    for who in ("replica-a", "replica-b"):
        (tmp_path / who).mkdir()
    old, new = (
        OperatorProcess(
            Path(local_cluster.kubeconfig), prometheus.url, log_dir=tmp_path / who, extra_env={**env, "POD_NAME": who}
        )
        for who in ("replica-a", "replica-b")
    )
    try:
        old.start()
        wait_for(lambda: _holder(scenario) == "replica-a", timeout=30, message="replica-a leads")
        new.start()
        scenario.create("modelbaselines", "digits", digits_baseline(scenario.model))
        steps = [
            {"setWeight": 25},
            {"analyze": {"duration": "10s"}},
            {"setWeight": 50},
            {"analyze": {"duration": "4s"}},
        ]
        scenario.create("modelrollouts", "digits", rollout_spec(scenario.target, "digits", V2, steps=steps))
        scenario.wait_phase("digits", "Progressing", timeout=60, also=lambda s: (s.get("lastHistoryId") or 0) >= 1)
        assert _metric(old, LEADER) == 1 and _metric(new, LEADER) == 0
        assert _metric(new, RECONCILES) == 0, "the standby has not reconciled anything"

        old.freeze()  # mid-rollout, past its lease
        wait_for(lambda: _holder(scenario) == "replica-b", timeout=30, message="replica-b takes the lease over")
        status = scenario.wait_phase("digits", "Promoted", timeout=120)
        _history_is_clean(status)
        assert scenario.target_checkpoint() == V2 and scenario.canary() is None
        assert _metric(new, LEADER) == 1 and _metric(new, RECONCILES) > 0

        old.thaw()
        # Monotonic time ran on while it was frozen: it knows at once that it is not the leader.
        wait_for(lambda: _metric(old, LEADER) == 0, timeout=30, message="old leader reports standby", ignore=(OSError,))
        wait_for(
            lambda: "replica-a is not the leader any more" in old.log_text(), timeout=30, message="standby log line"
        )
        # A reconcile it was in the middle of when frozen ends now (its writes are refused); after that, nothing.
        wait_for(lambda: _metric(old, IN_FLIGHT) == 0, timeout=30, message="the old leader's reconciles end")
        frozen = {name: _metric(old, name) for name in (RECONCILES, RENEWALS)}

        # Work arrives: a regressed candidate. The new leader handles it; the old one, which sees the same
        # events, neither reconciles nor renews.
        scenario.patch_spec("modelrollouts", "digits", {"checkpoint": V3})
        renewals = _metric(new, RENEWALS)
        status = scenario.wait_phase(
            "digits", "RolledBack", timeout=120, also=lambda s: V3 in (s.get("rejectedCheckpoints") or [])
        )
        wait_for(lambda: _metric(new, RENEWALS) >= renewals + 4, timeout=30, message="the new leader renews")
        assert scenario.target_checkpoint() == V2 and scenario.canary() is None
        assert {name: _metric(old, name) for name in (RECONCILES, RENEWALS)} == frozen
        assert _metric(old, LEADER) == 0 and _holder(scenario) == "replica-b"
        reasons = [r for r, _ in scenario.events("digits")]
        assert reasons.count("Promoted") == 1, reasons
        assert V1 in status["lastGoodCheckpoints"]
    finally:
        for r in (old, new):
            r.stop()
        operator.start()
