"""The conclusion of an experiment: ranking, statistics, verdict, and its files.

The conclusion is a pure function of the sweep dir (its Plan plus one ArmResult per finished
job, see evsys/records.py), so `python -m evsys.conclude DIR` rebuilds it byte for byte at any time.

Runs. Every planned job is one of: completed (its record holds the success metric as a finite
number), failed (status `failed`, an unreadable record, or a completed record without the
metric), or missing (no arm record: the job was killed or never ran). Completed runs of an
arm form its group; groups are ranked by their mean, best first.

Statistics and verdict (docs/statistics.md). Each arm's scores are seeds x items when its
runs left per-item scores (evsys/conclusion/scores.py), so intervals and tests count the seeds
and the finite item sample; the verdict is evsys/conclusion/decision.py's: the preregistered
prediction when the experiment states one, else exploratory (the best arm vs the baseline, or
vs every other arm), with Holm-adjusted p-values over the comparisons it rests on. An
adaptive experiment's verdict is its group-sequential decisions (evsys/conclusion/sequential.py).
A success_metric.threshold adds which arms reach it (evsys/conclusion/threshold.py), and is
the verdict of an experiment with a single arm, which has nothing to compare.
Before any of that:

- No completed arm -> inconclusive (everything failed or is missing).
- A baseline (or a predicted arm) is set but has no completed seed -> inconclusive.

Continual chains (records with a `continual` section, see docs/continual.md) add a
`continual` entry per arm: the cell-wise mean and std over seeds of the score matrices and of
every continual/<metric>; conclusion.md shows the exact-match matrix and
conclusion_<arm>_matrix.png draws both matrices. Other conclusions have no `continual` key.

The result is a `Conclusion` (evsys/conclusion/model.py); conclusion.json is its to_dict(),
with keys sorted. Floats are rounded to 6 significant digits in the value itself, so the
value built here equals the one read back from its file.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from evsys.choices import CONFIRMATION
from evsys.conclusion import statistics
from evsys.conclusion.adaptive import adaptive_verdict
from evsys.conclusion.confirmation import confirmation_fields
from evsys.conclusion.continual import continual_groups
from evsys.conclusion.exports import arm_exports
from evsys.conclusion.inference import arm_interval, orientation
from evsys.conclusion.model import (
    ComparisonResult,
    Conclusion,
    ExperimentRef,
    Group,
    RunProblem,
    SuccessMetric,
    ThresholdResult,
)
from evsys.conclusion.noise_study import low_snr_note
from evsys.conclusion.plan_decision import decide_plan, missing_named_arm, plan_pairing
from evsys.conclusion.power import power_summary
from evsys.conclusion.runs import collect_runs, is_number
from evsys.conclusion.scores import arm_scores, metric_bounds, seed_values
from evsys.conclusion.threshold import single_run_verdict, threshold_result
from evsys.cost import arm_total
from evsys.identity import is_replicate_override
from evsys.plural import count
from evsys.records import Plan

SIGNIFICANT_DIGITS = 6


def build_conclusion(sweep_dir: str | Path) -> Conclusion:
    """The conclusion of a sweep dir (deterministic, rounded as its file is)."""
    everything = Plan.load(sweep_dir)
    plan = everything.compared()  # a confirmation's runs are reported on their own
    metric, mode = plan.success_metric, plan.mode
    runs = collect_runs(sweep_dir, plan)
    scores = arm_scores(runs["completed"])
    bounds = metric_bounds(metric["name"])
    groups = _rank_groups(runs["completed"], scores, mode, bounds)
    ranking = [g.arm for g in groups]
    threshold = _threshold(plan, scores, ranking, bounds)
    conclusion = Conclusion(
        experiment=ExperimentRef(plan.id, plan.name, plan.parent_experiment_id),
        hypothesis=plan.hypothesis,
        success_metric=SuccessMetric(
            metric["name"], mode, plan.min_effect, metric.get("threshold")
        ),
        baseline=plan.baseline,
        prediction=plan.prediction,
        groups=groups,
        ranking=ranking,
        best_arm=ranking[0] if ranking else None,
        **_decision(plan, scores, ranking, runs, threshold),
        failed=[RunProblem(**run) for run in runs["failed"]],
        missing=[RunProblem(**run) for run in runs["missing"]],
        counts={kind: len(runs[kind]) for kind in runs} | {"planned": len(everything.planned)},
        other_metrics=_other_metrics(runs["completed"], metric["name"], ranking),
        exports=arm_exports(Path(sweep_dir), runs["completed"], mode),
        # only continual sweeps get the key: other conclusions stay as they were
        continual=continual_groups(runs["completed"], ranking) or None,
        threshold=threshold,
        metadata=plan.metadata or None,
    )
    if plan.adaptive:
        conclusion = replace(conclusion, adaptive=plan.adaptive)
        conclusion = replace(conclusion, **adaptive_verdict(plan.adaptive, conclusion))
    low_snr = low_snr_note(runs["completed"], metric["name"])
    if low_snr and conclusion.notes is not None:  # notes exist where arms were compared
        conclusion = replace(conclusion, notes=[*conclusion.notes, low_snr])
    if plan.confirm:
        conclusion = _confirmed(conclusion, everything, Path(sweep_dir), scores)
    return _rounded(conclusion)


def _confirmed(conclusion: Conclusion, plan: Plan, sweep_dir: Path, scores: dict) -> Conclusion:
    """The verdict from the confirmation's fresh seeds, the selection's estimate beside it;
    the confirmation's failed and missing runs are the experiment's problems too."""
    runs = collect_runs(sweep_dir, plan.stage(CONFIRMATION))
    fields = confirmation_fields(plan, scores, arm_scores(runs["completed"]), conclusion.reason)
    counts = {k: conclusion.counts[k] + len(runs[k]) for k in runs} | {"planned": len(plan.planned)}
    return replace(
        conclusion,
        failed=conclusion.failed + [RunProblem(**run) for run in runs["failed"]],
        missing=conclusion.missing + [RunProblem(**run) for run in runs["missing"]],
        counts=counts,
        **fields,
    )


def _threshold(plan: Plan, scores: dict, ranking: list[str], bounds) -> ThresholdResult | None:
    """Which arms reach success_metric.threshold; None when none is stated or no arm ran."""
    value = plan.success_metric.get("threshold")
    if value is None or not ranking:
        return None
    return threshold_result([scores[arm] for arm in ranking], float(value), plan.mode, bounds)


def _decision(
    plan: Plan, scores: dict, ranking: list[str], runs: dict, threshold: ThresholdResult | None
) -> dict[str, Any]:
    """verdict, reason, kind, claim, comparisons, surprises, notes, power and the verdict's
    basis (the p-value it rests on)."""
    refusal = _cannot_decide(plan, scores, runs)
    if refusal is not None:
        return {"verdict": "inconclusive", "reason": refusal, "kind": None, "claim": None}
    decision = decide_plan(plan, {arm: scores[arm] for arm in ranking})
    tests = list(decision.tests)
    # One arm has nothing to compare with: a stated threshold is then what it is judged by.
    single = single_run_verdict(threshold) if threshold and len(ranking) == 1 else {}
    return {
        "verdict": decision.verdict,
        "reason": decision.reason,
        "kind": decision.kind,
        "claim": decision.claim,
        "comparisons": [_comparison(t, scores, plan.mode) for t in tests],
        "surprises": list(decision.surprises),
        "notes": list(decision.notes),
        "power": power_summary(tests, plan.min_effect or None),
        **single,
        "verdict_basis": decision.basis.text() if decision.basis else None,
        "verdict_p": decision.basis.p if decision.basis else None,
        "seed_pairing": plan_pairing(plan, scores) if tests else None,
    }


def _cannot_decide(plan: Plan, scores: dict, runs: dict) -> str | None:
    """Why no comparison can be made, or None."""
    if not scores:
        n_failed, n_missing = len(runs["failed"]), len(runs["missing"])
        return (
            f"inconclusive: no arm completed ({count(n_failed, 'run')} failed, {n_missing} missing)"
        )
    missing = missing_named_arm(plan, scores)
    return f"inconclusive: {missing}" if missing else None


def _rank_groups(completed: list[dict], scores: dict, mode: str, bounds) -> list[Group]:
    """One entry per arm with completed runs, best mean first (ties: arm name)."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        by_arm.setdefault(run["arm"], []).append(run)
    groups = [_group(arm, runs, scores[arm], bounds) for arm, runs in by_arm.items()]
    sign = orientation(mode)
    groups.sort(key=lambda g: (-sign * g.mean, g.arm))
    return [replace(group, rank=rank) for rank, group in enumerate(groups, start=1)]


def _group(arm: str, runs: list[dict], scores, bounds) -> Group:
    summary = statistics.summarize(seed_values(runs))
    interval = arm_interval(scores, bounds)
    first = runs[0]["record"]  # an ArmResult
    return Group(
        arm=arm,
        rank=0,  # set once the groups are sorted
        group_id=first.group_id,
        overrides=[o for o in first.overrides if not is_replicate_override(o)],
        n=summary.n,
        n_items=interval.n_items,
        mean=summary.mean,
        std=summary.std,
        min=summary.min,
        max=summary.max,
        ci95=list(interval.ci95) if interval.ci95 else None,
        ci_method=interval.method,
        # JSON object keys are strings; make them strings here so the value equals its file
        values={str(seed): value for seed, value in summary.values.items()},
        cost=arm_total(run["record"].cost for run in runs),
    )


def _comparison(test, scores: dict, mode: str) -> ComparisonResult:
    c = test.comparison
    first, second = scores[c.first], scores[c.second]
    seed_means = [row.mean() for row in first.values], [row.mean() for row in second.values]
    return ComparisonResult(
        name=c.name,
        first=c.first,
        second=c.second,
        diff=c.diff,
        ci95=list(c.ci95) if c.ci95 else None,
        p_value=test.p_raw,
        p_holm=test.p_holm,
        p_above=test.p_above,
        p_above_holm=test.p_above_holm,
        p_below=test.p_below,
        p_below_holm=test.p_below_holm,
        method=c.method,
        paired=c.paired,
        df=c.df,
        n_first=c.n_seeds[0],
        n_second=c.n_seeds[1],
        n_items=c.n_items,
        prob_improvement=statistics.probability_of_improvement(*seed_means, mode),
    )


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


def _rounded(conclusion: Conclusion) -> Conclusion:
    """The conclusion as its file holds it: floats to SIGNIFICANT_DIGITS, non-finite to None."""
    return Conclusion.from_dict(_rounded_json(conclusion.to_dict()))


def _rounded_json(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _rounded_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded_json(value) for value in obj]
    return obj
