"""Figures from the runs: per system and scenario, the median and range of each figure; Markdown, JSON and a plot."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.peers.runner import SCENARIOS
from bench.peers.systems import PROMOTED, ROLLED_BACK


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Median, min and max; None without values."""
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


def _fmt(s: dict[str, float] | None, unit: str = "") -> str:
    if s is None:
        return "-"
    if s["min"] == s["max"]:
        return f"{s['median']:g}{unit}"
    return f"{s['median']:g}{unit} ({s['min']:g} to {s['max']:g})"


def summarise(runs: Iterable[dict[str, Any]], controllers: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One row per system and scenario."""
    rows = []
    runs = list(runs)
    for system in dict.fromkeys(r["system"] for r in runs):
        for scenario, spec in SCENARIOS.items():
            mine = [r for r in runs if r["system"] == system and r["scenario"] == scenario]
            if not mine:
                continue
            outcomes = {o: sum(r["outcome"] == o for r in mine) for o in (PROMOTED, ROLLED_BACK, "timeout")}
            timed = [r["seconds"] for r in mine if r["seconds"] is not None]
            rows.append({
                "system": system,
                "scenario": scenario,
                "runs": len(mine),
                "expected": spec.expected,
                "correct": sum(r["outcome"] == spec.expected for r in mine),
                "outcomes": {k: v for k, v in outcomes.items() if v},
                "seconds_to_rollback": spread([r["seconds"] for r in mine if r["outcome"] == ROLLED_BACK]),
                "seconds_to_promotion": spread([r["seconds"] for r in mine if r["outcome"] == PROMOTED]),
                "seconds": spread(timed),
                "candidate_answers": spread([r["candidate_answers"] for r in mine]),
                "failed_requests": spread([r["failed_requests"] for r in mine]),
                "messages": sorted({r["message"][:160] for r in mine}),
            })
    return {"rows": rows, "controllers": controllers}


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Peers on one cluster",
        "",
        f"`{meta['command']}` on {meta['machine']}, {meta['date']}; {meta['repeats']} runs per system and "
        f"scenario; {meta['rate']:g} labelled requests/s ({meta['low_rate']:g} in low traffic); one run "
        f"{meta['minutes']:.0f} min in all. Median (min to max). Times from the candidate's first answer at the "
        "client.",
        "",
        "| system | scenario | outcome (of runs) | s to rollback | s to promotion | answers by the candidate "
        "| requests not answered |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in summary["rows"]:
        outcome = ", ".join(f"{k} {v}" for k, v in row["outcomes"].items())
        lines.append(
            f"| {row['system']} | {row['scenario']} | {outcome} (of {row['runs']}) | "
            f"{_fmt(row['seconds_to_rollback'])} | {_fmt(row['seconds_to_promotion'])} | "
            f"{_fmt(row['candidate_answers'])} | {_fmt(row['failed_requests'])} |"
        )
    lines += ["", "| system | rollouts | controller CPU s | CPU s per rollout | peak RSS MiB |",
              "| --- | --- | --- | --- | --- |"]
    for name, c in summary["controllers"].items():
        lines.append(f"| {name} | {c['rollouts']} | {c['cpu_seconds']:.1f} | "
                     f"{c['cpu_seconds'] / max(c['rollouts'], 1):.2f} | {c['peak_rss_mib']:.0f} |")
    lines += ["", "What each said at the end (status message), per scenario:", ""]
    for row in summary["rows"]:
        for m in row["messages"]:
            lines.append(f"- {row['system']}, {row['scenario']}: {m or '(no message)'}")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(systems), 1)
    for i, system in enumerate(systems):
        xs, meds, lo, hi, answers, alo, ahi = [], [], [], [], [], [], []
        for j, scenario in enumerate(scenarios):
            row = next((r for r in rows if r["system"] == system and r["scenario"] == scenario), None)
            if row is None or row["seconds"] is None:
                continue
            s, a = row["seconds"], row["candidate_answers"]
            xs.append(j + i * width)
            meds.append(s["median"])
            lo.append(s["median"] - s["min"])
            hi.append(s["max"] - s["median"])
            answers.append(a["median"])
            alo.append(a["median"] - a["min"])
            ahi.append(a["max"] - a["median"])
        axes[0].bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=system)
        axes[1].bar(xs, answers, width, yerr=[alo, ahi], capsize=3, label=system)
    for ax, title in zip(axes, ("seconds from first serving to the end (promotion or rollback)",
                                "requests answered by the candidate (client)"), strict=True):
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(scenarios))])
        ax.set_xticklabels([s.replace(" ", "\n") for s in scenarios], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, runs: list[dict[str, Any]], controllers: dict[str, dict[str, float]],
          meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(runs, controllers)
    (out / "peers.json").write_text(json.dumps({"meta": meta, **summary, "runs": runs}, indent=1) + "\n")
    (out / "peers.md").write_text(markdown(summary, meta))
    plot(summary, out / "peers.png")
