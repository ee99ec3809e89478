"""The conclusion of an experiment: ranking, statistics, verdict, and its files.

The conclusion is a pure function of the sweep dir (its Plan plus one ArmResult per finished
job, see evsys/records.py), so `python -m evsys.conclude DIR` rebuilds it byte for byte at any time.

Runs. Every planned job is one of: completed (its record holds the success metric as a finite
number), failed (status `failed`, an unreadable record, or a completed record without the
metric), or missing (no arm record: the job was killed or never ran). Completed runs of an
arm form its group; groups are ranked by their mean, best first.

Verdict. Let m = max(min_effect, 0) and let the comparison be best arm vs baseline when a
baseline is set (and is not the best), else best arm vs runner-up. d is the difference of
means oriented so that positive is better, with its Welch 95% CI [lo, hi].

- No completed arm -> inconclusive (everything failed or is missing).
- Only one completed arm -> inconclusive (nothing to compare).
- A baseline is set but has no completed seed -> inconclusive.
- Either compared group has n < 2 -> inconclusive (no variance estimate).
- The baseline ranks best: the hypothesis "some arm beats the baseline" is refuted when the
  baseline's lead over the runner-up has lo > -m (for m = 0: lo > 0, the baseline is
  confidently ahead; for m > 0 this also covers "the runner-up's gain over the baseline is
  confidently below m", the same rule as below seen from the baseline); else inconclusive.
- Otherwise: supported when lo > m (so also > 0); refuted when m > 0 and hi < m (the effect
  is confidently smaller than what matters); else inconclusive.

Continual chains (records with a `continual` section, see docs/continual.md) add a
`continual` entry per arm: the cell-wise mean and std over seeds of the score matrices and of
every continual/<metric>; conclusion.md shows the exact-match matrix and
conclusion_<arm>_matrix.png draws both matrices. Other conclusions have no `continual` key.

Floats in conclusion.json are rounded to 6 significant digits and keys are sorted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evsys.conclusion import statistics
from evsys.conclusion.continual import continual_groups
from evsys.conclusion.exports import arm_exports
from evsys.conclusion.runs import collect_runs, is_number
from evsys.conclusion.verdict import verdict_of
from evsys.records import Plan

SIGNIFICANT_DIGITS = 6


def build_conclusion(sweep_dir: str | Path) -> dict[str, Any]:
    """The conclusion of a sweep dir as a JSON-ready dict (deterministic, rounded)."""
    plan = Plan.load(sweep_dir)
    metric = plan.success_metric
    mode = plan.mode
    runs = collect_runs(sweep_dir, plan)
    groups = _rank_groups(runs["completed"], metric["name"], mode)
    ranking = [g["arm"] for g in groups]
    baseline = plan.baseline
    comparisons = _comparisons(groups, baseline, mode)
    verdict, reason = verdict_of(ranking, comparisons, baseline, _min_effect(metric), runs)
    conclusion = {
        "experiment": {
            "id": plan.id,
            "name": plan.name,
            "parent_experiment_id": plan.parent_experiment_id,
        },
        "hypothesis": plan.hypothesis,
        "success_metric": {"name": metric["name"], "mode": mode, "min_effect": _min_effect(metric)},
        "baseline": baseline,
        "groups": groups,
        "ranking": ranking,
        "best_arm": ranking[0] if ranking else None,
        "comparisons": list(comparisons.values()),
        "verdict": verdict,
        "reason": reason,
        "failed": runs["failed"],
        "missing": runs["missing"],
        "counts": {kind: len(runs[kind]) for kind in runs} | {"planned": len(plan.planned)},
        "other_metrics": _other_metrics(runs["completed"], metric["name"], ranking),
        "exports": arm_exports(Path(sweep_dir), runs["completed"], mode),
    }
    continual = continual_groups(runs["completed"], ranking)
    if continual:  # only continual sweeps get the key: other conclusions stay as they were
        conclusion["continual"] = continual
    return _rounded(conclusion)


def _min_effect(metric: dict[str, Any]) -> float:
    return max(float(metric.get("min_effect") or 0.0), 0.0)


def _rank_groups(completed: list[dict], metric: str, mode: str) -> list[dict]:
    """One entry per arm with completed runs, best mean first (ties: arm name)."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        by_arm.setdefault(run["arm"], []).append(run)
    groups = [_group_entry(arm, runs) for arm, runs in by_arm.items()]
    sign = 1 if mode == "max" else -1
    groups.sort(key=lambda g: (-sign * g["mean"], g["arm"]))
    for rank, group in enumerate(groups, start=1):
        group["rank"] = rank
    return groups


def _group_entry(arm: str, runs: list[dict]) -> dict[str, Any]:
    summary = statistics.summarize({run["seed"]: run["value"] for run in runs})
    first = runs[0]["record"]  # an ArmResult
    return {
        "arm": arm,
        "group_id": first.group_id,
        "overrides": [o for o in first.overrides if not _is_seed_override(o)],
        "n": summary.n,
        "mean": summary.mean,
        "std": summary.std,
        "min": summary.min,
        "max": summary.max,
        "ci95": list(summary.ci95) if summary.ci95 else None,
        # JSON object keys are strings; make them strings here so the dict equals its file
        "values": {str(seed): value for seed, value in summary.values.items()},
    }


def _is_seed_override(override: str) -> bool:
    return override.lstrip("+~").startswith("seed=")


def _comparisons(groups: list[dict], baseline: str | None, mode: str) -> dict[str, dict]:
    """Best vs runner-up, and best vs baseline when the baseline completed and is not best."""
    comparisons = {}
    if len(groups) >= 2:
        comparisons["best_vs_runner_up"] = _compare(groups[0], groups[1], mode)
    by_arm = {g["arm"]: g for g in groups}
    if groups and baseline in by_arm and baseline != groups[0]["arm"]:
        comparisons["best_vs_baseline"] = _compare(groups[0], by_arm[baseline], mode)
    for name, comparison in comparisons.items():
        comparison["name"] = name
    return comparisons


def _compare(first: dict, second: dict, mode: str) -> dict[str, Any]:
    result = statistics.compare(
        list(first["values"].values()), list(second["values"].values()), mode
    )
    return {
        "first": first["arm"],
        "second": second["arm"],
        "diff": result.diff,
        "ci95": list(result.ci95) if result.ci95 else None,
        "p_value": result.p_value,
        "prob_improvement": result.prob_improvement,
        "n_first": result.n_first,
        "n_second": result.n_second,
    }


def _other_metrics(completed: list[dict], metric: str, ranking: list[str]) -> dict[str, dict]:
    """Per arm, the mean over seeds of every other numeric metric in the records."""
    sums: dict[str, dict[str, list[float]]] = {arm: {} for arm in ranking}
    for run in completed:
        for name, value in run["record"].metrics.items():
            if name != metric and is_number(value) and math.isfinite(value):
                sums[run["arm"]].setdefault(name, []).append(float(value))
    return {
        arm: {name: math.fsum(vs) / len(vs) for name, vs in sorted(values.items())}
        for arm, values in sums.items()
    }


def _rounded(obj: Any) -> Any:
    """Floats to SIGNIFICANT_DIGITS (non-finite to None), recursively; tuples become lists."""
    if isinstance(obj, float):
        return float(f"{obj:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _rounded(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(value) for value in obj]
    return obj
