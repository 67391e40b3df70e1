"""A real server process per checkpoint: predictions, exact counters, latency, env config, cleanup."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from model_io import load_checkpoint

from e2e.harness.model_servers import (
    SERVER_SCRIPT,
    ModelServerFleet,
    Samples,
    checkpoint_file,
    pid_alive,
    scrape_metrics,
)
from e2e.harness.wait import wait_for

V2 = "s3://models/digits/v2"
SERIES = {"model_predictions_total", "model_correct_total", "model_feedback_total"}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[ModelServerFleet]:
    with ModelServerFleet({V2: checkpoint_file("v2-better")}, log_dir=tmp_path) as f:
        yield f


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def test_counters_exist_at_zero_before_any_request(fleet: ModelServerFleet) -> None:
    with urllib.request.urlopen(f"{fleet.urls()[V2]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for name in SERIES:
        assert f'{name}{{checkpoint="{V2}",model="digits"}} 0.0' in text
    assert 'model_request_latency_seconds_count{checkpoint="s3://models/digits/v2",model="digits"} 0.0' in text
    assert "_created" not in text


def test_labelled_requests_are_counted_exactly(fleet: ModelServerFleet) -> None:
    url, samples = fleet.urls()[V2], Samples.load()
    model = load_checkpoint(checkpoint_file("v2-better"))
    correct = 0
    for i in range(60):
        body: dict[str, Any] = {"features": samples.features[i]}
        if i < 40:  # the first 40 carry their true label, the rest are unlabelled
            body["label"] = samples.labels[i]
        answer = post(f"{url}/predict", body)
        assert answer == {"prediction": int(model.predict(samples.features[i])[0]), "checkpoint": V2}
        correct += i < 40 and answer["prediction"] == samples.labels[i]
    feedback = [post(f"{url}/feedback", {"prediction": p, "label": 7})["correct"] for p in (7, 7, 1, 2, 3)]
    assert feedback == [True, True, False, False, False]

    metrics = scrape_metrics(url)
    assert metrics["model_predictions_total"] == 60
    assert metrics["model_feedback_total"] == 45
    assert metrics["model_correct_total"] == correct + 2
    assert metrics["model_request_latency_seconds_count"] == 60
    assert 35 <= correct <= 40  # v2 is ~97% accurate


@pytest.mark.parametrize(
    "body",
    [{"features": [1.0] * 63}, {"features": ["x"] * 64}, {"features": [1.0] * 64, "label": "3"}, {}],
)
def test_bad_requests_get_400_and_are_not_counted(fleet: ModelServerFleet, body: dict[str, Any]) -> None:
    url = fleet.urls()[V2]
    with pytest.raises(urllib.error.HTTPError) as err:
        post(f"{url}/predict", body)
    assert err.value.code == 400
    assert scrape_metrics(url)["model_predictions_total"] == 0


def test_every_answer_names_its_checkpoint_in_a_header(fleet: ModelServerFleet) -> None:
    """Behind a Service or a gateway, the client learns which checkpoint answered from the header."""
    url, samples = fleet.urls()[V2], Samples.load()
    req = urllib.request.Request(f"{url}/predict", data=json.dumps({"features": samples.features[0]}).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["X-Model-Checkpoint"] == V2
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/nope", timeout=5)
    assert err.value.headers["X-Model-Checkpoint"] == V2


def test_healthz_and_unknown_path(fleet: ModelServerFleet) -> None:
    url = fleet.urls()[V2]
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        assert json.loads(resp.read())["checkpoint"] == V2
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/nope", timeout=5)
    assert err.value.code == 404


def test_slow_checkpoint_adds_40ms(tmp_path: Path) -> None:
    checkpoints = {"fast": checkpoint_file("v2-better"), "slow": checkpoint_file("v4-slow")}
    samples = Samples.load()
    with ModelServerFleet(checkpoints, log_dir=tmp_path) as fleet:
        metrics = {}
        for label, url in fleet.urls().items():
            for i in range(20):
                post(f"{url}/predict", {"features": samples.features[i], "label": samples.labels[i]})
            metrics[label] = scrape_metrics(url)
        logs = {label: server.log_path.read_text() for label, server in fleet.servers().items()}
    fast, slow = metrics["fast"], metrics["slow"]
    # The latency each server was configured with, as it reports it.
    assert "(extra latency 40 ms)" in logs["slow"] and "(extra latency 0 ms)" in logs["fast"]
    # Its histogram: every slow request includes the server's 40 ms sleep, so all 20 fall above the 40 ms bucket
    # (a sleep cannot be shorter than asked). Nothing is bounded from above: a loaded machine may slow any request.
    latency = "model_request_latency_seconds"
    assert slow[f"{latency}_count"] == fast[f"{latency}_count"] == 20
    assert slow[f'{latency}_bucket{{le="0.04"}}'] == 0 and slow[f'{latency}_bucket{{le="+Inf"}}'] == 20
    assert slow[f"{latency}_sum"] >= 20 * 0.040
    assert slow["model_correct_total"] == fast["model_correct_total"]  # same weights, same answers


def test_only_the_slow_checkpoint_sleeps_its_40ms(monkeypatch: pytest.MonkeyPatch) -> None:
    """The added latency is the server's own sleep, of exactly the checkpoint's 40 ms, once per prediction."""
    import server

    slept: list[float] = []
    monkeypatch.setattr(server, "time", SimpleNamespace(sleep=slept.append, perf_counter=time.perf_counter))
    samples = Samples.load()
    for name, expected in (("v2-better", []), ("v4-slow", [0.040] * 3)):
        slept.clear()
        service = server.build_service(str(checkpoint_file(name)), name, "digits", checkpoint_file(name).parent, None)
        for i in range(3):
            service.predict({"features": samples.features[i], "label": samples.labels[i]})
        assert slept == pytest.approx(expected), name
        observed = service.registry.get_sample_value(
            "model_request_latency_seconds_count", {"model": "digits", "checkpoint": name}
        )
        assert observed == 3  # every prediction observed, its sleep included


def test_sigterm_exits_cleanly(fleet: ModelServerFleet) -> None:
    server = fleet.servers()[V2]
    os.kill(server.process.pid, signal.SIGTERM)
    assert server.process.wait(timeout=10) == 0
    assert "stopped" in server.log_path.read_text()


def _run_server_from_env(tmp_path: Path, checkpoint: str, **extra_env: str) -> dict[str, Any]:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "MODEL_CHECKPOINT": checkpoint, **extra_env}
    cmd = [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--ready-file", str(ready)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, timeout=30, message="server ready file")
        port = json.loads(ready.read_text())["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            health: dict[str, Any] = json.loads(resp.read())
        return health
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.mark.parametrize("uri", [f"file://{checkpoint_file('v1-good')}", "s3://models/digits/v1-good"])
def test_checkpoint_from_env(tmp_path: Path, uri: str) -> None:
    health = _run_server_from_env(tmp_path, uri)
    assert health["checkpoint"] == uri  # the label defaults to the reference the operator wrote
    assert "200-row" in health["description"]


def test_checkpoint_from_a_model_store(tmp_path: Path) -> None:
    """MODEL_STORE mirrors the object store: s3://models/digits/v2 is <store>/s3/models/digits/v2.npz, and it
    wins over a file of the same last segment in the image's checkpoint directory."""
    store = tmp_path / "store"
    (store / "s3" / "models" / "digits").mkdir(parents=True)
    shutil.copyfile(checkpoint_file("v3-regressed"), store / "s3" / "models" / "digits" / "v1-good.npz")
    health = _run_server_from_env(tmp_path, "s3://models/digits/v1-good", MODEL_STORE=str(store))
    assert health["checkpoint"] == "s3://models/digits/v1-good"
    assert "3 -> 5 -> 8" in health["description"]  # the store's file was served, not the image's v1-good


def _child_with_fleet(tmp_path: Path, exit_call: str) -> int:
    """Runs a Python child that starts a fleet, prints the server pid and exits via `exit_call`."""
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from e2e.harness.model_servers import ModelServerFleet, checkpoint_file
        fleet = ModelServerFleet({{"x": checkpoint_file("v1-good")}}, log_dir=Path({str(tmp_path)!r}))
        fleet.start()
        print(fleet.servers()["x"].process.pid, flush=True)
        {exit_call}
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip())


def test_fleet_left_running_is_stopped_at_exit(tmp_path: Path) -> None:
    pid = _child_with_fleet(tmp_path, "sys.exit(0)")
    wait_for(lambda: not pid_alive(pid), timeout=10, message=f"server {pid} to exit")


def test_server_exits_when_its_owner_dies(tmp_path: Path) -> None:
    pid = _child_with_fleet(tmp_path, "os._exit(0)")  # no atexit: only the server's own watchdog helps
    wait_for(lambda: not pid_alive(pid), timeout=10, message=f"server {pid} to exit")
