"""The conclusion as pictures: the success metric per arm, and continual score matrices."""

from __future__ import annotations

import re
from typing import Any

from evsys.conclusion.model import Conclusion, ContinualGroup
from evsys.conclusion.text import value_std
from evsys.metric_kinds import SHARE, metric_kind


def matrix_plot_name(arm: str) -> str:
    """conclusion_<arm>_matrix.png, safe as a file name whatever the arm is called."""
    safe = re.sub(r"[^\w.=,+-]", "_", arm)
    return f"conclusion_{safe}_matrix.png"


CAPTION = "best arm in orange; diamond = mean with 95% CI, dots = seeds"
MAX_WIDTH_IN = 40.0  # beyond this many arms, labels shrink instead of the figure growing


def metric_plot(conclusion: Conclusion) -> Any:
    """Success metric per group: mean with 95% CI bars, each seed a dot, best arm highlighted.
    Legible at any number of arms: labels turn and shrink as arms get many or long, the caption
    wraps to the figure's width, and a bounded metric keeps its whole 0..1 axis."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    groups = conclusion.groups
    labels = [g.arm + (" (baseline)" if g.arm == conclusion.baseline else "") for g in groups]
    longest = max((len(label) for label in labels), default=0)
    width = min(MAX_WIDTH_IN, max(5.0, 0.55 * len(groups) + 2.5))
    turned = len(groups) * max(longest, 4) * 0.09 > width  # labels would collide side by side
    height = 4.0 + (min(longest, 60) * 0.08 if turned else 0.0)
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for x, group in enumerate(groups):
        color = "tab:orange" if group.arm == conclusion.best_arm else "tab:blue"
        seeds = list(group.values.values())
        ax.scatter(_spread(x, len(seeds)), seeds, color=color, alpha=0.5, s=20, zorder=3)
        yerr = None
        if group.ci95:
            yerr = [[group.mean - group.ci95[0]], [group.ci95[1] - group.mean]]
        ax.errorbar(x, group.mean, yerr=yerr, fmt="D", color=color, capsize=6, zorder=4)
    size = 10 if len(groups) <= 20 else max(5, 10 - (len(groups) - 20) // 10)
    shown = [_shorten(label, 60) for label in labels]
    if turned:
        ax.set_xticks(range(len(groups)), shown, rotation=90, fontsize=size)
    else:
        ax.set_xticks(range(len(groups)), shown, fontsize=size)
    if not groups:
        ax.text(0.5, 0.5, "no completed arm", ha="center", va="center", transform=ax.transAxes)
    if conclusion.threshold is not None:  # the level each arm should reach
        level = conclusion.threshold
        ax.axhline(level.value, color="tab:green", linestyle="--", zorder=2)
        ax.annotate(f"threshold ({level.direction} {level.value:.4g})", (0, level.value),
                    xycoords=("axes fraction", "data"), color="tab:green", fontsize=8,
                    va="bottom")  # fmt: skip
    metric = conclusion.success_metric.name
    if metric_kind(metric) == SHARE:  # the whole [0, 1] range, so arms compare at a glance
        ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
    ax.set_title(_wrap(conclusion.experiment.name or "experiment", width))
    ax.set_ylabel(_shorten(metric, 50))
    ax.set_xlabel(_wrap(f"arm, best first ({CAPTION})", width))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _wrap(text: str, width_in: float) -> str:
    import textwrap

    return textwrap.fill(text, width=max(30, int(width_in * 11)))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Exact match on a fixed 0..1 scale so groups compare by colour; loss: low (good) is bright too.
HEATMAP_SCALES = {
    "exact_match": {"vmin": 0.0, "vmax": 1.0, "cmap": "viridis"},
    "loss": {"cmap": "viridis_r"},
}
LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "linewidth": 0}


def matrix_plot(arm: str, entry: ContinualGroup) -> Any:
    """Heatmaps of a continual group's mean score matrices: exact match, then loss."""
    from matplotlib.figure import Figure

    rows, benchmarks = entry.rows, entry.benchmarks
    width = max(3.5, 1.1 * len(benchmarks) + 2.0)
    fig = Figure(figsize=(2 * width, 0.6 * len(rows) + 2.0), dpi=100, layout="tight")
    for index, name in enumerate(("exact_match", "loss")):
        ax = fig.add_subplot(1, 2, index + 1)
        mean, std = entry.matrix[name].mean, entry.matrix[name].std
        image = ax.imshow(mean, aspect="auto", **HEATMAP_SCALES[name])
        for r, c in ((r, c) for r in range(len(rows)) for c in range(len(benchmarks))):
            label = value_std(mean[r][c], std[r][c]).replace(" ± ", "\n± ")
            ax.text(c, r, label, ha="center", va="center", fontsize=8, bbox=LABEL_BOX)
        ax.set_xticks(range(len(benchmarks)), benchmarks)
        ax.set_yticks(range(len(rows)), [f"after {r}" if i else r for i, r in enumerate(rows)])
        ax.set_xlabel("benchmark")
        ax.set_title(f"{arm}: {name} (mean of n={entry.n})")
        fig.colorbar(image, ax=ax)
    return fig


def _spread(x: float, n: int) -> list[float]:
    """Deterministic horizontal offsets so seeds with equal values stay visible."""
    width = 0.25
    return [x + (i - (n - 1) / 2) * (width / max(n - 1, 1)) for i in range(n)]
