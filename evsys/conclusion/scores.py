"""Each arm's scores on the success metric, as the statistics take them: seeds x items when
every completed run of the arm left per-item scores, else one value per seed."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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
    found = [run["items"] for run in runs]
    if all(items is not None for items in found) and len({frozenset(i) for i in found}) == 1:
        return ArmScores.from_items(arm, _per_seed(runs, _item_means))
    return ArmScores.seed_level(arm, seed_values(runs))


def seed_values(runs: list[dict]) -> dict[int, float]:
    """Each seed's success-metric value: the mean over its runs, one per data order where an
    arm ran several (data.order_seed, a replicate like the seed: the seed stays the unit)."""
    return _per_seed(runs, lambda alike: math.fsum(run["value"] for run in alike) / len(alike))


def _item_means(alike: list[dict]) -> dict[str, float]:
    return {
        item: math.fsum(run["items"][item] for run in alike) / len(alike)
        for item in alike[0]["items"]
    }


def _per_seed(runs: list[dict], mean: Callable[[list[dict]], Any]) -> dict[int, Any]:
    by_seed: dict[int, list[dict]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], []).append(run)
    return {seed: mean(alike) for seed, alike in by_seed.items()}
