"""Each arm's scores on the success metric, as the statistics take them: seeds x items when
every completed run of the arm left per-item scores, else one value per seed."""

from __future__ import annotations

from evsys.conclusion.inference import ArmScores, Bounds
from evsys.metric_kinds import metric_bounds as kind_bounds


def metric_bounds(metric: str) -> Bounds | None:
    """The bounds of the metric's kind (evsys/metric_kinds.py): (0, 1) for a share such as
    eval/<task>/exact_match, (0, inf) for a loss, (1, inf) for a perplexity; None: unbounded."""
    return kind_bounds(metric)


def arm_scores(completed: list[dict]) -> dict[str, ArmScores]:
    """ArmScores per arm (in the runs' order) of collect_runs' completed runs, from their
    per-item scores where there are some."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        by_arm.setdefault(run["arm"], []).append(run)
    return {arm: _scores_of(arm, runs) for arm, runs in by_arm.items()}


def _scores_of(arm: str, runs: list[dict]) -> ArmScores:
    # collect_runs read and checked each run's items; an arm is scored per item when every
    # run of it left items for the same item ids
    items = {run["seed"]: run["items"] for run in runs}
    if all(values is not None for values in items.values()) and _same_items(items):
        return ArmScores.from_items(arm, items)
    return ArmScores.seed_level(arm, {run["seed"]: run["value"] for run in runs})


def _same_items(items: dict[int, dict[str, float] | None]) -> bool:
    keys = [frozenset(values) for values in items.values() if values is not None]
    return len(set(keys)) == 1
