"""Seeds until decided: after each round of a sweep, test the verdict's comparisons under a
group-sequential design and plan more seeds for the arms of undecided ones.

The looks are n_repeats, n_repeats + increment, ..., max_repeats seeds per arm
(experiment.adaptive). After look r the comparisons the verdict rests on (those
evsys.conclusion.decision.decide tests) go to evsys.conclusion.sequential.sequential_step,
whose O'Brien-Fleming-type alpha spending keeps the error at 5% over every look; a decided
comparison stays decided. The rounds are written into the plan (records.Plan.adaptive), so a
re-run replays them from the records and the conclusion reports how many ran and why the
sweep stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from evsys.conclusion.plan_decision import decide_plan
from evsys.conclusion.runs import collect_runs
from evsys.conclusion.scores import arm_scores
from evsys.conclusion.sequential import sequential_boundaries, sequential_step
from evsys.records import Plan, PlannedJob, job_dir_name

log = logging.getLogger("evsys")


def start_design(plan: Plan, looks: list[int]) -> None:
    boundaries = sequential_boundaries(looks)
    plan.adaptive = {
        "looks": looks,
        "nominal_alpha": [look.nominal_alpha for look in boundaries],
        "design": "group-sequential, Lan-DeMets O'Brien-Fleming-type alpha spending, Holm",
        "rounds": [],
    }


def next_round(sweep_dir: Path, plan: Plan) -> list[str]:
    """Test the comparisons after the latest look; record the round in the plan. Returns the
    arms that need more seeds (empty when the sweep stops)."""
    adaptive = plan.adaptive
    look = len(adaptive["rounds"])
    runs = collect_runs(sweep_dir, plan)
    scores = arm_scores(runs["completed"])
    decided = {
        name: status
        for name, status in (adaptive["rounds"][-1]["status"] if look else {}).items()
        if status in ("supported", "refuted")
    }
    comparisons = _comparisons(plan, scores)
    if comparisons is None:
        step_reason, status, more, stop = "too few completed arms to compare", decided, [], True
    else:
        step = sequential_step(
            comparisons, adaptive["looks"], look, plan.min_effect, decided=decided
        )
        step_reason, status, more, stop = step.reason, step.status, list(step.more_seeds), step.stop
    adaptive["rounds"].append(
        {
            "look": look,
            "n_seeds": adaptive["looks"][look],
            "status": status,
            "more_seeds": more,
            "stopped": stop,
            "reason": step_reason,
        }
    )
    plan.save(sweep_dir)
    log.info(
        "adaptive round %d (%d seeds per arm): %s", look + 1, adaptive["looks"][look], step_reason
    )
    return [] if stop else more


def more_jobs(plan: Plan, arms: list[str], template: list[PlannedJob]) -> list[PlannedJob]:
    """The next look's seeds for `arms`, each a copy of the arm's planned job with a new seed."""
    n_seeds = plan.adaptive["looks"][len(plan.adaptive["rounds"])]
    planned = {job.dir for job in plan.planned}
    by_arm = {job.arm: job for job in template}
    jobs = []
    for arm in arms:
        base = by_arm[arm]
        for seed in range(plan.base_seed, plan.base_seed + n_seeds):
            job = _with_seed(base, seed)
            if job.dir not in planned:
                jobs.append(job)
    return jobs


def _with_seed(job: PlannedJob, seed: int) -> PlannedJob:
    overrides = [o for o in job.overrides if not o.startswith("seed=")] + [f"seed={seed}"]
    return PlannedJob(job.arm, seed, overrides, job_dir_name(job.arm, seed))


def _comparisons(plan: Plan, scores: dict) -> list | None:
    """The comparisons the verdict rests on, or None when there is nothing to compare yet."""
    decision = decide_plan(plan, scores) if len(scores) >= 2 else None
    return None if decision is None else [test.comparison for test in decision.tests]
