"""Benchmark of the statistical judges against the rules canary tools use today.

Run it from the repository root::

    .venv/bin/python -m bench.judges            # full run, a few minutes on 2 cores
    .venv/bin/python -m bench.judges --quick    # smoke run, under a minute

It simulates canary rollouts with known truth (accuracy with delayed labels, log-normal latency,
sparse error counts; seasonality and AR(1) noise shared by both arms), runs every rule on the same
streams, prints one table row per case and rule, checks the targets, and saves a plot under
``bench/judges/out/``. See :mod:`bench.judges.cli` for the cases and :mod:`bench.judges.rules` for
how each rule is modelled.
"""
