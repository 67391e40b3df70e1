"""Benchmark of the statistical judges against the rules canary tools use, on what Prometheus really holds.

Run it from the repository root::

    .venv/bin/python -m bench.judges            # full run
    .venv/bin/python -m bench.judges --quick    # a twentieth of the runs
    .venv/bin/python -m bench.judges --smoke    # a handful of runs: the output's shape

It simulates canary rollouts with known truth (accuracy with delayed labels, sparse error counts,
latency as histogram bucket counts at unequal request rates, static baselines estimated on finite
samples; seasonality and AR(1) noise shared by both arms), runs every rule on the same streams, prints
one table per case, the headline and the targets, and saves a plot under ``bench/judges/out/``. See
:mod:`bench.judges.cases` for the cases, :mod:`bench.judges.rules` and :mod:`bench.judges.latency` for
how each rule is modelled.
"""
