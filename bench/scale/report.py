"""The scale table (Markdown) and plot from the benchmark's JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row(r: dict[str, Any]) -> str:
    w = r["window"]
    late = len(r["late_rollouts"])
    return (
        f"| {r['system']} | {r['objects']:,} | {_f(w['lag_p50'], 2)} | {_f(w['lag_p99'], 2)} "
        f"| {_f(w['analyses_per_second'])} | {_f(w['prometheus_queries_per_second'])} "
        f"| {_f(w['cpu_share'], 2)} | {_f(r['peak_rss_mib'], 0)} | {_f(r['restart_converge_seconds'])} "
        f"| {late} |"
    )


HEADER = (
    "| system | rollouts | lag p50 (s) | lag p99 (s) | analyses/s | Prometheus queries/s | CPU (cores) "
    "| peak RSS (MiB) | converge after restart (s) | late rollouts |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def markdown(doc: dict[str, Any]) -> str:
    rows = "\n".join(row(r) for r in doc["results"])
    interval = doc["results"][0]["interval"] if doc["results"] else 30
    return (
        f"Machine: {doc['machine']}. Command: `{doc['command']}` ({doc['when']}). Analysis interval {interval} s; "
        "lag is from the time an analysis fell due to its start; CPU is the operator's CPU seconds per second over "
        "the window; late rollouts made fewer analyses in the window than it holds intervals, or had none for an "
        "interval and 5 s at its end.\n\n"
        f"{HEADER}\n{rows}\n"
    )


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    panels = [
        ("lag p99 (s)", lambda r: r["window"]["lag_p99"]),
        ("analyses/s", lambda r: r["window"]["analyses_per_second"]),
        ("CPU (cores)", lambda r: r["window"]["cpu_share"]),
        ("peak RSS (MiB)", lambda r: r["peak_rss_mib"]),
    ]
    for ax, (title, value) in zip(axes, panels, strict=True):
        for system in dict.fromkeys(r["system"] for r in results):
            mine = sorted((r for r in results if r["system"] == system), key=lambda r: r["objects"])
            ax.plot([r["objects"] for r in mine], [value(r) or 0.0 for r in mine], marker="o", label=system)
        ax.set_xlabel("rollouts")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
