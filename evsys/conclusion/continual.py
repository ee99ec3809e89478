"""Continual groups: the score matrices and chain metrics of an arm, over its seeds."""

from __future__ import annotations

from evsys.conclusion import statistics
from evsys.conclusion.model import ContinualGroup, MatrixStats, MetricStats
from evsys.conclusion.runs import is_number

CONTINUAL_PREFIX = "continual/"


def continual_groups(completed: list[dict], ranking: list[str]) -> dict[str, ContinualGroup]:
    """Per arm whose runs are continual chains: the score matrices and metrics over seeds."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        if (run["record"].continual or {}).get("matrix"):  # a chain's record
            by_arm.setdefault(run["arm"], []).append(run)
    return {arm: _continual_entry(by_arm[arm]) for arm in ranking if arm in by_arm}


def _continual_entry(runs: list[dict]) -> ContinualGroup:
    first = runs[0]["record"].continual
    # Seeds of one group share the config, so their chains share rows and benchmarks.
    alike = [
        r
        for r in runs
        if (r["record"].continual["rows"], r["record"].continual["benchmarks"])
        == (first["rows"], first["benchmarks"])
    ]
    matrix = {}
    for name in sorted(first["matrix"]):
        mean, std = statistics.summarize_matrices(
            [r["record"].continual["matrix"][name] for r in alike]
        )
        matrix[name] = MatrixStats(mean, std)
    return ContinualGroup(
        n=len(alike),
        seeds=[r["seed"] for r in alike],
        rows=first["rows"],
        benchmarks=first["benchmarks"],
        matrix=matrix,
        metrics=_continual_metric_stats(alike),
    )


def _continual_metric_stats(runs: list[dict]) -> dict[str, MetricStats]:
    """Mean and std over seeds of each continual/<name> metric of the records."""
    values: dict[str, dict[int, float]] = {}
    for run in runs:
        for key, value in run["record"].metrics.items():
            if key.startswith(CONTINUAL_PREFIX) and is_number(value):
                values.setdefault(key[len(CONTINUAL_PREFIX) :], {})[run["seed"]] = value
    stats = {}
    for name, by_seed in sorted(values.items()):
        summary = statistics.summarize(by_seed)
        stats[name] = MetricStats(summary.mean, summary.std, summary.n)
    return stats
