"""Each arm's scores on the success metric, as the statistics take them: seeds x items when
every completed run of the arm left per-item scores, else one value per seed."""

from __future__ import annotations

import math
from pathlib import Path

from evsys.conclusion.inference import ArmScores, Bounds
from evsys.metric_kinds import benchmark_metric
from evsys.metric_kinds import metric_bounds as kind_bounds
from evsys.records import read_item_scores


def metric_bounds(metric: str) -> Bounds | None:
    """The bounds of the metric's kind (evsys/metric_kinds.py): (0, 1) for a share such as
    eval/<task>/exact_match, (0, inf) for a loss, (1, inf) for a perplexity; None: unbounded."""
    return kind_bounds(metric)


def arm_scores(sweep_dir: Path, completed: list[dict], metric: str) -> dict[str, ArmScores]:
    """ArmScores per arm (in the runs' order), from the per-item scores where there are some."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        by_arm.setdefault(run["arm"], []).append(run)
    return {arm: _scores_of(arm, runs, Path(sweep_dir), metric) for arm, runs in by_arm.items()}


def _scores_of(arm: str, runs: list[dict], sweep_dir: Path, metric: str) -> ArmScores:
    items = {run["seed"]: _items(sweep_dir / run["dir"], metric, run["value"]) for run in runs}
    if all(values is not None for values in items.values()) and _same_items(items):
        return ArmScores.from_items(arm, items)
    return ArmScores.seed_level(arm, {run["seed"]: run["value"] for run in runs})


def _items(run_dir: Path, metric: str, recorded: float) -> dict[str, float] | None:
    """{item: score} of the run, when its items are on disk and average to the record."""
    where = benchmark_metric(metric)
    rows = read_item_scores(run_dir, where[0]) if where else None
    if not rows or any(where[1] not in row for row in rows):
        return None
    scores = {str(row["item"]): float(row[where[1]]) for row in rows}
    mean = math.fsum(scores.values()) / len(scores)
    # The record's value is rounded to 6 decimals; anything further off is not the same run.
    return scores if math.isclose(mean, recorded, abs_tol=1e-5) else None


def _same_items(items: dict[int, dict[str, float] | None]) -> bool:
    keys = [frozenset(values) for values in items.values() if values is not None]
    return len(set(keys)) == 1
