"""``python -m bench.judges``: run the cases, print a table per case, the headline and the targets, write the plot.

See :mod:`bench.judges.cases` for the families and cases, :mod:`bench.judges.rules` for how each rule is
modelled, and ``bench/judges/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import rules
from .cases import ALPHA, BETA, FAMILIES, Calibration, Case, build_cases, calibrate, calibration_key, run_case
from .report import Row, check_targets, format_rows, headline, plot, summarise, write_csv

SEED = 20_240_601
OUT = Path(__file__).resolve().parent / "out"
SIZES = {"full": (1.0, 30, 2000), "quick": (0.05, 30, 200), "smoke": (0.0, 4, 40)}  # scale, run floor, calibration


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.judges", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a twentieth of the runs (a few minutes)")
    size.add_argument("--smoke", action="store_true", help="a handful of runs per case: checks the output's shape")
    parser.add_argument("--only", default="", help="comma-separated families to run (acc, err, lat, iid, static, eff)")
    parser.add_argument("--jobs", type=int, default=rules.default_jobs(), help="worker processes (default: up to 2)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory for the plot and CSV (default {OUT})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    scale, floor, cal_runs = SIZES[name]
    cases = build_cases(scale, floor)
    if args.only:
        wanted = {f.strip() for f in args.only.split(",")}
        cases = [c for c in cases if c.family in wanted]
    seeds = np.random.SeedSequence(SEED).spawn(2 * len(cases))

    print(
        f"ModelRatchet judges benchmark ({name}): alpha={ALPHA:.0%}, beta={BETA:.0%}; interval 30 s; samples = "
        "candidate samples (labelled predictions, requests)"
    )
    for key, fam in FAMILIES.items():
        if any(c.family == key for c in cases):
            threshold = f"; fixed rules' threshold {fam.typical_text}" if fam.typical_text else ""
            print(f"  {fam.name}: {fam.intervals} intervals{threshold}")
    print()
    calibrations: dict[str, Calibration] = {}
    rows: list[Row] = []
    for i, case in enumerate(cases):
        cal: Calibration | None = None
        if case.family not in ("eff", "static"):
            key = calibration_key(case)
            if key not in calibrations:
                calibrations[key] = calibrate(case, cal_runs, np.random.default_rng(seeds[len(cases) + i]))
                c = calibrations[key]
                print(
                    f"  calibrated on {cal_runs} A/A runs ({key}): argo {c.argo:.4g}, flagger {c.flagger:.4g} "
                    f"(bad-oriented value), kayenta z {c.kayenta:.3g}"
                )
            cal = calibrations[key]
        outcomes = run_case(case, cal, np.random.default_rng(seeds[i]), args.jobs)
        case_rows = [summarise(case, rule, out) for rule, out in outcomes.items()]
        rows += case_rows
        print("\n".join(format_rows(case, case_rows)))
        print(flush=True)
    print("\n".join(headline(rows)))
    print()
    print("\n".join(check_targets(rows)))

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "judges" if name == "full" else f"judges_{name}"
    png = args.out / f"{stem}.png"
    plot(rows, png)
    csv_path = png.with_suffix(".csv")
    write_csv(rows, csv_path)
    print(f"\nplot: {png}\ntable: {csv_path}\nruntime: {time.perf_counter() - started:.0f} s", file=sys.stdout)
    return 0


__all__ = ["Case", "main"]
