"""The conclusion as pictures: the success metric per arm, and continual score matrices."""

from __future__ import annotations

import re
from typing import Any

from evsys.conclusion.text import value_std


def matrix_plot_name(arm: str) -> str:
    """conclusion_<arm>_matrix.png, safe as a file name whatever the arm is called."""
    safe = re.sub(r"[^\w.=,+-]", "_", arm)
    return f"conclusion_{safe}_matrix.png"


def metric_plot(conclusion: dict) -> Any:
    """Success metric per group: mean with 95% CI bars, each seed a dot, best arm highlighted."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    groups = conclusion["groups"]
    fig = Figure(figsize=(max(4.0, 1.3 * len(groups) + 2.0), 4.0), dpi=100, layout="tight")
    ax = fig.add_subplot()
    for x, group in enumerate(groups):
        color = "tab:orange" if group["arm"] == conclusion["best_arm"] else "tab:blue"
        seeds = list(group["values"].values())
        ax.scatter(_spread(x, len(seeds)), seeds, color=color, alpha=0.5, s=20, zorder=3)
        yerr = None
        if group["ci95"]:
            yerr = [[group["mean"] - group["ci95"][0]], [group["ci95"][1] - group["mean"]]]
        ax.errorbar(x, group["mean"], yerr=yerr, fmt="D", color=color, capsize=6, zorder=4)
    baseline = conclusion["baseline"]
    labels = [g["arm"] + ("\n(baseline)" if g["arm"] == baseline else "") for g in groups]
    ax.set_xticks(range(len(groups)), labels)
    if not groups:
        ax.text(0.5, 0.5, "no completed arm", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(conclusion["experiment"]["name"] or "experiment")
    ax.set_ylabel(conclusion["success_metric"]["name"])
    ax.set_xlabel("arm, best first (orange); diamond = mean with 95% CI, dots = seeds")
    ax.grid(axis="y", alpha=0.3)
    return fig


# Exact match on a fixed 0..1 scale so groups compare by colour; loss: low (good) is bright too.
HEATMAP_SCALES = {
    "exact_match": {"vmin": 0.0, "vmax": 1.0, "cmap": "viridis"},
    "loss": {"cmap": "viridis_r"},
}
LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "linewidth": 0}


def matrix_plot(arm: str, entry: dict) -> Any:
    """Heatmaps of a continual group's mean score matrices: exact match, then loss."""
    from matplotlib.figure import Figure

    rows, benchmarks = entry["rows"], entry["benchmarks"]
    width = max(3.5, 1.1 * len(benchmarks) + 2.0)
    fig = Figure(figsize=(2 * width, 0.6 * len(rows) + 2.0), dpi=100, layout="tight")
    for index, name in enumerate(("exact_match", "loss")):
        ax = fig.add_subplot(1, 2, index + 1)
        mean, std = entry["matrix"][name]["mean"], entry["matrix"][name]["std"]
        image = ax.imshow(mean, aspect="auto", **HEATMAP_SCALES[name])
        for r, c in ((r, c) for r in range(len(rows)) for c in range(len(benchmarks))):
            label = value_std(mean[r][c], std[r][c]).replace(" ± ", "\n± ")
            ax.text(c, r, label, ha="center", va="center", fontsize=8, bbox=LABEL_BOX)
        ax.set_xticks(range(len(benchmarks)), benchmarks)
        ax.set_yticks(range(len(rows)), [f"after {r}" if i else r for i, r in enumerate(rows)])
        ax.set_xlabel("benchmark")
        ax.set_title(f"{arm}: {name} (mean of n={entry['n']})")
        fig.colorbar(image, ax=ax)
    return fig


def _spread(x: float, n: int) -> list[float]:
    """Deterministic horizontal offsets so seeds with equal values stay visible."""
    width = 0.25
    return [x + (i - (n - 1) / 2) * (width / max(n - 1, 1)) for i in range(n)]
