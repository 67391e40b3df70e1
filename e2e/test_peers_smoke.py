"""The peers benchmark in small (bench/peers): the regressed checkpoint once for each system, on the data plane.

Both roll it back, and the report is written; the figures are printed, not asserted (they belong to the benchmark).
What would break here: a config in bench/peers that a system rejects, a status the benchmark misreads (a run that
never ends, or ends as promoted), the Argo Rollouts controller failing to run under its least RBAC.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.peers.__main__ import Controller, run_systems
from bench.peers.report import write
from bench.peers.runner import Cluster
from bench.peers.systems import ROLLED_BACK, ArgoRollouts, ModelRatchet
from e2e.harness.argo_rollouts import LocalArgoRollouts, argo_rollouts  # noqa: F401  (the fixture)
from e2e.harness.operator_proc import OperatorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _already_running(pid: int | None) -> Controller:
    """The session's fixtures run the controllers; the benchmark only reads their /proc."""
    return Controller(lambda: None, lambda: None, lambda: pid)


def test_each_system_rolls_back_the_regressed_checkpoint(
    kube_api: Any, crds: Any, prometheus: Any, data_plane: Any, operator: OperatorProcess,
    argo_rollouts: LocalArgoRollouts, tmp_path: Path,  # noqa: F811
) -> None:
    env = Cluster(api=kube_api, prometheus=prometheus, data_plane=data_plane, log_dir=tmp_path)
    assert operator.proc is not None
    systems = [(ModelRatchet(), _already_running(operator.proc.pid)),
               (ArgoRollouts(prometheus.url), _already_running(argo_rollouts.pid))]
    runs, controllers = run_systems(env, systems, ["regressed"], repeats=1)
    for run in runs:
        print(f"[figure] {run['system']}: {run['outcome']} {run['seconds']} s after the candidate first answered; "
              f"candidate answered {run['candidate_answers']} requests; analyses {run['analyses']}")
    assert [(r["system"], r["outcome"]) for r in runs] == [(s.name, ROLLED_BACK) for s, _ in systems]
    assert all(r["candidate_answers"] > 0 for r in runs), "the candidate served before it was rolled back"
    assert "Failed" in runs[1]["analyses"], "Argo's analysis judged the candidate"
    write(tmp_path / "out", runs, controllers, {"command": "smoke", "machine": "ci", "date": "", "repeats": 1,
                                                "rate": 20, "low_rate": 5, "minutes": 0})
    written = json.loads((tmp_path / "out" / "peers.json").read_text())
    assert [row["correct"] for row in written["rows"]] == [1, 1]
    assert (tmp_path / "out" / "peers.png").stat().st_size > 0
