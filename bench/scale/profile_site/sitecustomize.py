"""Loaded by Python at start-up when this folder is on PYTHONPATH: starts the sampler in the operator process."""

import os

if os.environ.get("MODELRATCHET_BENCH_PROFILE"):
    from bench.scale.sampler import start

    start(os.environ["MODELRATCHET_BENCH_PROFILE"])
