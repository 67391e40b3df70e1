"""Tables, the headline, the targets and the plot of the judges benchmark."""

from __future__ import annotations

import csv
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_dist

from .cases import (
    ALPHA,
    ARGO_DOCS,
    BEFORE,
    CALIBRATED,
    DOCS,
    EVIDENCE,
    EXACT,
    FLAGGER_DOCS,
    KAYENTA_DOCS,
    MODELRATCHET,
    REFERENCE,
    Case,
)
from .rules import PROMOTE, ROLLBACK, UNDECIDED, Outcome
from .streams import INTERVAL_SECONDS


@dataclass(frozen=True)
class Row:
    case: Case
    rule: str
    rollback: float
    promote: float
    undecided: float
    mean_n: float
    p95_n: float
    mean_minutes: float

    @property
    def vs_wald(self) -> float | None:
        return self.mean_n / self.case.wald if self.case.wald else None

    @property
    def failures(self) -> int:
        return round(self.rollback * self.case.runs)


def summarise(case: Case, rule: str, out: Outcome) -> Row:
    return Row(
        case=case,
        rule=rule,
        rollback=float(np.mean(out.decision == ROLLBACK)),
        promote=float(np.mean(out.decision == PROMOTE)),
        undecided=float(np.mean(out.decision == UNDECIDED)),
        mean_n=float(np.mean(out.samples)),
        p95_n=float(np.quantile(out.samples, 0.95)),
        mean_minutes=float(np.mean(out.interval)) * INTERVAL_SECONDS / 60.0,
    )


def upper_95(k: int, n: int) -> float:
    """Clopper-Pearson one-sided 95% upper bound of a rate seen k times in n."""
    return 1.0 if k >= n else float(beta_dist.ppf(0.95, k + 1, n - k))


HEADER = f"{'rule':<38}{'rollback':>9}{'promote':>9}{'undec.':>8}{'mean n':>9}{'p95 n':>9}{'mean min':>9}{'n/Wald':>8}"


def format_rows(case: Case, rows: list[Row]) -> list[str]:
    truth = {
        "aa": "no change: rollback = false rollback",
        "regression": "regression: rollback = power",
        "improvement": "better candidate: promote is right",
    }[case.kind]
    bound = f"Wald bound {case.wald:,.0f} samples" if case.wald else "Wald bound n/a"
    lines = [f"{case.title}  ({case.runs} runs; {truth}; {bound})", HEADER]
    for r in rows:
        ratio = f"{r.vs_wald:>8.2f}" if r.vs_wald is not None else f"{'-':>8}"
        lines.append(
            f"{r.rule:<38}{r.rollback:>9.1%}{r.promote:>9.1%}{r.undecided:>8.1%}{r.mean_n:>9,.0f}{r.p95_n:>9,.0f}"
            f"{r.mean_minutes:>9.1f}{ratio}"
        )
    return lines


# --- the headline -------------------------------------------------------------------------------------------------

HEADLINE_RULES = (ARGO_DOCS, FLAGGER_DOCS, KAYENTA_DOCS, BEFORE, EXACT, MODELRATCHET, EVIDENCE)
HEADLINE_CASES = (
    "accuracy: A/A, no change",
    "accuracy: step -0.02 (the regression that matters)",
    "latency 2/18 rps: A/A, no change",
    "latency 10/90 rps: A/A, no change",
    "latency 50/50 rps: A/A, no change",
    "latency 2/18 rps: step +10% median",
    "latency 2/18 rps: variance only: log-sd x1.5, same median",
    "errors: sparse errors 0.001 -> 0.005",
    "static: A/A, baseline estimated on 2,000 samples",
    "static: A/A, baseline estimated on 10,000 samples",
    "static: A/A, level drifted -0.005 in both arms since (10,000 samples)",
    "static: post-promotion watch, A/A against the canary's stable arm (9,000)",
)


def _cell(r: Row | None) -> str:
    if r is None:
        return "-"
    if r.case.kind == "aa":
        return f"{r.rollback:.1%}"
    return f"{r.rollback:.1%} ({r.mean_n:,.0f})"


def headline(rows: list[Row]) -> list[str]:
    """One line per headline case: rollbacks (and mean candidate samples under a regression) per rule."""
    by = {(r.case.title, r.rule): r for r in rows}
    present = [t for t in HEADLINE_CASES if any(k[0] == t for k in by)]
    rules = [rule for rule in HEADLINE_RULES if any((t, rule) in by for t in present)]
    width = 72
    lines = [
        "HEADLINE: peers as their documentation configures them; rollbacks (mean candidate samples at the decision)",
        f"{'case':<{width}}" + "".join(f"{rule[:30]:>32}" for rule in rules),
    ]
    for t in present:
        lines.append(f"{t:<{width}}" + "".join(f"{_cell(by.get((t, rule))):>32}" for rule in rules))
    return lines


# --- targets ------------------------------------------------------------------------------------------------------


def check_targets(rows: list[Row]) -> list[str]:
    by = {(r.case.title, r.rule): r for r in rows}
    lines = ["TARGETS"]
    ok_all = True

    def verdict(ok: bool) -> str:
        return "met   " if ok else "MISSED"

    def aa_line(r: Row, label: str) -> bool:
        ok = r.rollback <= ALPHA
        lines.append(
            f"  [{verdict(ok)}] A/A false rollbacks <= {ALPHA:.0%}: {label}{r.case.title}: {r.rollback:.2%} "
            f"({r.failures}/{r.case.runs}, 95% upper bound {upper_95(r.failures, r.case.runs):.2%})"
        )
        return ok

    # 1. A/A false rollbacks within alpha, at every traffic split and against static baselines with evidence.
    for r in rows:
        if r.case.kind == "aa" and r.case.family not in ("eff", "static") and r.rule == MODELRATCHET:
            ok_all &= aa_line(r, "")
        if r.case.kind == "aa" and r.case.family == "static" and r.rule == EVIDENCE and "drifted" not in r.case.title:
            ok_all &= aa_line(r, "with evidence: ")
    # 2. Latency from buckets detects what the per-sample judge detects on raw samples, within its sample counts. At
    # 2 rps a look carries about 60 candidate requests, finer than those counts; at 10 rps about 300, so the
    # decision there can come no sooner than the first look or two: shown, not a target.
    for title in ("step +10% median", "variance only: log-sd x1.5, same median"):
        iid = by.get((f"latency, raw samples 25/25 per 30 s: {title}", MODELRATCHET))
        for split, target in (("2/18 rps", True), ("10/90 rps", False)):
            hist = by.get((f"latency {split}: {title}", MODELRATCHET))
            if iid is None or hist is None:
                continue
            ok = hist.rollback >= iid.rollback and hist.mean_n <= iid.mean_n
            if target:
                ok_all &= ok
            label = verdict(ok) if target else "info  "
            lines.append(
                f"  [{label}] latency {split} from buckets, {title}: power {hist.rollback:.0%} / mean "
                f"{hist.mean_n:,.0f} requests ({hist.mean_minutes:.1f} min) vs the per-sample judge on raw samples "
                f"{iid.rollback:.0%} / {iid.mean_n:,.0f}"
            )
    # 3. Efficiency against Wald.
    for r in rows:
        if r.case.family == "eff":
            if r.case.kind == "regression":
                ok = r.rollback >= 0.95 and r.vs_wald is not None and r.vs_wald <= 1.3
                lines.append(
                    f"  [{verdict(ok)}] {r.case.title}: power {r.rollback:.1%} (>= 95%), mean {r.mean_n:,.0f} "
                    f"samples = {r.vs_wald or 0:.2f}x Wald's {r.case.wald or 0:,.0f} (<= 1.3x)"
                )
            else:
                ok = r.rollback <= 0.05
                lines.append(
                    f"  [{verdict(ok)}] {r.case.title}: false rollbacks {r.rollback:.1%} (<= 5%), mean {r.mean_n:,.0f} "
                    f"samples = {r.vs_wald or 0:.2f}x Wald's {r.case.wald or 0:,.0f}"
                )
            ok_all &= ok
    # 4. The documented peers whose false-rollback rate is comparable (at most 5% in the A/A case): at least their
    # power with fewer samples (accuracy, the headline's regression). The others are shown with their A/A rate.
    for title, aa_title in (("accuracy: step -0.02 (the regression that matters)", "accuracy: A/A, no change"),):
        mr = by.get((title, MODELRATCHET))
        peers = [by[(title, p)] for p in DOCS if (title, p) in by and (aa_title, p) in by]
        if mr is None or not peers:
            continue
        comparable = [p for p in peers if by[(aa_title, p.rule)].rollback <= 0.05]
        others = [p for p in peers if p not in comparable]
        ok = bool(comparable) and all(mr.rollback >= p.rollback and mr.mean_n < p.mean_n for p in comparable)
        ok_all &= ok
        rivals = ", ".join(
            f"{p.rule} {p.rollback:.0%} / {p.mean_n:,.0f} ({by[(aa_title, p.rule)].rollback:.1%} A/A)"
            for p in comparable
        )
        ratios = ", ".join(f"{p.mean_n / mr.mean_n:.1f}x" for p in comparable)
        lines.append(
            f"  [{verdict(ok)}] {title}: modelratchet {mr.rollback:.0%} / {mr.mean_n:,.0f} samples "
            f"({by[(aa_title, MODELRATCHET)].rollback:.1%} A/A) vs {rivals}: {ratios} fewer samples"
        )
        for p in others:
            lines.append(
                f"  [info  ] not comparable: {p.rule} rolls back {by[(aa_title, p.rule)].rollback:.0%} of A/A runs "
                f"({p.rollback:.0%} / {p.mean_n:,.0f} here)"
            )
    # 5. Fewer samples than the calibrated rules, at least their power (the speed statistic at 1%).
    for case in dict.fromkeys(r.case for r in rows if r.case.kind == "regression" and r.case.family in ("acc", "err")):
        mr = by[(case.title, MODELRATCHET)]
        others = [by[(case.title, name)] for name in CALIBRATED if (case.title, name) in by]
        # Power within a point of theirs (99.8% and 100% are the same figure at 500 runs).
        ok = all(mr.mean_n < o.mean_n and mr.rollback >= o.rollback - 0.01 for o in others)
        ok_all &= ok
        rivals = ", ".join(f"{o.rule} {o.rollback:.0%} / {o.mean_n:,.0f}" for o in others)
        lines.append(
            f"  [{verdict(ok)}] fewer samples at 1% false rollback: {case.title}: modelratchet power "
            f"{mr.rollback:.0%} / mean {mr.mean_n:,.0f} samples vs {rivals}"
        )
    lines.append("  all targets met" if ok_all else "  some targets MISSED (see above)")
    return lines


# --- output files -------------------------------------------------------------------------------------------------


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "case",
                "family",
                "kind",
                "runs",
                "rule",
                "rollback",
                "promote",
                "undecided",
                "mean_n",
                "p95_n",
                "mean_minutes",
                "wald_asn",
                "n_over_wald",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.case.title,
                    r.case.family,
                    r.case.kind,
                    r.case.runs,
                    r.rule,
                    f"{r.rollback:.4f}",
                    f"{r.promote:.4f}",
                    f"{r.undecided:.4f}",
                    f"{r.mean_n:.1f}",
                    f"{r.p95_n:.1f}",
                    f"{r.mean_minutes:.2f}",
                    f"{r.case.wald:.1f}" if r.case.wald else "",
                    f"{r.vs_wald:.3f}" if r.vs_wald else "",
                ]
            )


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = (ARGO_DOCS, FLAGGER_DOCS, KAYENTA_DOCS, BEFORE, REFERENCE, MODELRATCHET)
    cmap = plt.get_cmap("tab10")
    colours = {rule: cmap(i) for i, rule in enumerate(shown)}
    fig, axes = plt.subplots(2, 2, figsize=(20, 12))

    def bars(ax: plt.Axes, cases: list[Case], rules: tuple[str, ...], title: str) -> None:
        width = 0.8 / max(1, len(rules))
        for j, rule in enumerate(rules):
            vals = [next((r.rollback for r in rows if r.case == c and r.rule == rule), np.nan) for c in cases]
            ax.bar(
                np.arange(len(cases)) + j * width,
                np.maximum(vals, 1e-4),
                width,
                label=rule,
                color=colours.get(rule, cmap(len(colours) + j)),
            )
        ax.axhline(ALPHA, color="black", linestyle="--", linewidth=1, label=f"alpha = {ALPHA:.0%}")
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2)
        ax.set_xticklabels([textwrap.fill(c.title, 20) for c in cases], fontsize=7)
        ax.set_ylabel("false-rollback rate (A/A)")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4)

    aa = [c for c in dict.fromkeys(r.case for r in rows) if c.kind == "aa" and c.family not in ("eff", "static")]
    bars(axes[0, 0], aa, shown, "No change: how often each rule rolls back (peers as documented)")

    ax = axes[0, 1]
    markers = "os^Dv<>PX*hH"
    regs = [c for c in dict.fromkeys(r.case for r in rows) if c.kind == "regression" and c.family not in ("eff",)]
    for i, c in enumerate(regs):
        for rule in shown:
            r = next((x for x in rows if x.case == c and x.rule == rule), None)
            if r is not None:
                ax.scatter(r.mean_minutes, r.rollback, color=colours[rule], marker=markers[i % len(markers)], s=40)
    for i, c in enumerate(regs):
        ax.scatter([], [], color="grey", marker=markers[i % len(markers)], label=c.title)
    ax.set_xlabel("mean minutes to decision")
    ax.set_ylabel("power (rollback rate under a regression)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Regressions: power vs time (colour = rule as on the left)")
    ax.legend(fontsize=6, loc="lower right")

    static = [c for c in dict.fromkeys(r.case for r in rows) if c.family == "static" and c.kind == "aa"]
    colours[EXACT], colours[EVIDENCE] = cmap(7), cmap(5)
    bars(axes[1, 0], static, (EXACT, EVIDENCE), "Static and recorded baselines: taken as exact, or with their counts")

    ax = axes[1, 1]
    eff = [r for r in rows if r.case.family == "eff"]
    labels = [r.case.title.replace("efficiency, ", "").replace(": ", ":\n") for r in eff]
    ax.bar(
        labels,
        [r.vs_wald or 0 for r in eff],
        color=["tab:red" if r.case.kind == "regression" else "tab:grey" for r in eff],
    )
    ax.axhline(1.0, color="black", linewidth=1, label="Wald's SPRT (expected samples)")
    ax.axhline(1.3, color="black", linestyle="--", linewidth=1, label="target 1.3x")
    ax.set_ylabel("mean samples to decision / Wald's expected sample number")
    ax.set_title("Efficiency, alpha = beta = 5% (red: 0.90 -> 0.88)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
