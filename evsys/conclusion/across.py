"""Two experiments side by side (`evsys compare A B`): every arm of both in one table on their
shared success metric, labelled by experiment, and their best arms compared with the same test
a conclusion uses within one experiment (paired by item and seed when both scored the same
items with the same seeds, else unpaired or Welch: evsys/conclusion/inference.py); a best arm
its experiment confirmed is compared on its confirmation's fresh seeds, not the biased ones
that selected it.

Reads each sweep dir's conclusion.json (its groups) and per-item scores; writes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evsys.choices import CONFIRMATION
from evsys.conclusion.confirmation import CONFIRMED
from evsys.conclusion.inference import compare
from evsys.conclusion.model import Conclusion
from evsys.conclusion.runs import collect_runs
from evsys.conclusion.scores import arm_scores, metric_bounds
from evsys.errors import NotASweepDir
from evsys.records import CONCLUSION_FILES, Plan

# Provenance whose difference a reader should know of: which code and packages ran (not the
# checkout's path, the host or the command line)
PROVENANCE_KEYS = ("code.commit", "code.dirty", "code.diff_sha256", "versions.", "python")


@dataclass(frozen=True)
class Side:
    """One experiment of the two: its label in the table and its conclusion."""

    label: str
    sweep_dir: Path
    conclusion: Conclusion
    plan: Plan


def load_side(sweep_dir: Path) -> Side:
    """The experiment in `sweep_dir`, with its conclusion (NotASweepDir when it has none)."""
    plan = Plan.load(sweep_dir)
    path = Path(sweep_dir) / CONCLUSION_FILES[0]
    if not path.is_file():
        raise NotASweepDir(f"{sweep_dir} has no conclusion yet: evsys conclude {sweep_dir}")
    return Side(plan.id or plan.name, Path(sweep_dir), Conclusion.load(path), plan)


def compare_experiments(first: Side, second: Side) -> dict[str, Any]:
    """The comparison as plain data: metric, experiments, one row per arm (both experiments,
    best first), the best arms' comparison and the provenance keys that differ."""
    metric = first.conclusion.success_metric
    other = second.conclusion.success_metric
    if (metric.name, metric.mode) != (other.name, other.mode):
        raise ValueError(
            f"no shared success metric: {first.label} ranks on {metric.name} ({metric.mode}), "
            f"{second.label} on {other.name} ({other.mode})"
        )
    sign = 1 if metric.mode == "max" else -1
    rows = [_row(side, group) for side in (first, second) for group in side.conclusion.groups]
    rows.sort(key=lambda row: -sign * row["mean"])
    return {
        "metric": metric.name,
        "mode": metric.mode,
        "experiments": [_experiment(side) for side in (first, second)],
        "arms": rows,
        "best_arms": _best_arms(first, second, metric.name, metric.mode),
        "provenance_differs": _provenance_differences(first.plan, second.plan),
    }


def _row(side: Side, group) -> dict[str, Any]:
    return {
        "experiment": side.label,
        "arm": group.arm,
        "n_seeds": group.n,
        "mean": group.mean,
        "std": group.std,
        "ci95": group.ci95,
    }


def _experiment(side: Side) -> dict[str, Any]:
    conclusion = side.conclusion
    return {
        "label": side.label,
        "name": side.plan.name,
        "sweep_dir": str(side.sweep_dir),
        "best_arm": conclusion.best_arm,
        "verdict": conclusion.verdict,
        # the code it ran (None: recorded by an evsys before provenance)
        "commit": _flat(getattr(side.plan, "provenance", None) or {}).get("code.commit"),
    }


def _best_arms(first: Side, second: Side, metric: str, mode: str) -> dict[str, Any] | None:
    """First's best arm minus second's, oriented so that positive means first's is better."""
    scores = [_best_scores(side) for side in (first, second)]
    if None in scores:
        return None
    result = compare(scores[0], scores[1], mode, metric_bounds(metric))
    return {
        "first": result.first,
        "second": result.second,
        "diff": result.diff,
        "ci95": list(result.ci95) if result.ci95 else None,
        "p_value": result.p_value,
        "method": result.method,
        "paired": result.paired,
        "n_items": result.n_items,
    }


def _best_scores(side: Side):
    """The best arm's scores: its confirmation's fresh seeds where the experiment confirmed it
    (its selection seeds are biased up by the choice itself: the winner's curse), else the
    seeds the conclusion compared."""
    best = side.conclusion.best_arm
    if best is None:
        return None
    confirmation = side.conclusion.confirmation or {}
    confirmed = confirmation.get("status") == CONFIRMED and confirmation.get("selected") == best
    plan = side.plan.stage(CONFIRMATION).by_treatment() if confirmed else side.plan.compared()
    scores = arm_scores(collect_runs(side.sweep_dir, plan)["completed"]).get(best)
    label = f"{side.label}:{best}" + (" (confirmation seeds)" if confirmed else "")
    return dataclasses.replace(scores, arm=label) if scores else None


def _provenance_differences(first: Plan, second: Plan) -> dict[str, list[Any]]:
    """key -> [first's, second's] for each provenance key (code.commit, versions.torch, python,
    ...) the two plans record differently (evsys/provenance.py writes them)."""
    one = _flat(getattr(first, "provenance", None) or {})
    two = _flat(getattr(second, "provenance", None) or {})
    keys = dict.fromkeys(key for key in [*one, *two] if key.startswith(PROVENANCE_KEYS))
    return {key: [one.get(key), two.get(key)] for key in keys if one.get(key) != two.get(key)}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
