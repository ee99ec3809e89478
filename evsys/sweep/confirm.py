"""The confirmation stage of a sweep (experiment.confirm): once the selection stage's arms are
done, the arm it selected and its comparison arm re-run on the plan's fresh seeds, in the same
sweep dir, as one more batch through the sweep's own launcher (so it runs wherever the sweep
does: local processes, SLURM).

Its jobs are composed and validated like the selection's, marked
experiment.confirm.stage=confirmation (in their identity: a record of one stage is never taken
for the other's) and written into the plan before they launch. A re-run of the sweep selects
again from the same records, so an interrupted confirmation continues where it stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig

from evsys.choices import CONFIRMATION, SELECTION
from evsys.conclusion.confirmation import select_pair
from evsys.conclusion.runs import collect_runs
from evsys.conclusion.scores import arm_scores
from evsys.errors import ConfigError
from evsys.locks import supersede
from evsys.records import Plan, PlannedJob, job_dir_name
from evsys.sweep.plan import plan_jobs
from evsys.sweep.reuse import mismatch_message, sort_jobs

STAGE_OVERRIDE = f"experiment.confirm.stage={CONFIRMATION}"
# what a selection job's overrides say that its confirmation's own replace
REPLACED = ("seed=", "hydra.sweep.subdir=", "experiment.id=", "experiment.confirm.stage=")


def confirmation_jobs(
    sweep_dir: Path, plan: Plan, config: DictConfig, config_loader
) -> list[PlannedJob]:
    """Select on the selection stage's records (the choice and, when there is none, why are
    written into plan.confirm) and return the confirmation's jobs, composed and validated."""
    selection = plan.stage(SELECTION)
    scores = arm_scores(collect_runs(sweep_dir, selection)["completed"])
    pair = select_pair(selection, scores)
    if isinstance(pair, str):
        plan.confirm.update(selected=None, against=None, reason=pair)
        return []
    plan.confirm.update(selected=pair.arm, against=pair.against, reason=None)
    first = {}
    for job in selection.planned:
        first.setdefault(job.arm, job)
    jobs = [
        _fresh(first[arm], seed)
        for arm in (pair.arm, pair.against)
        for seed in plan.confirm["seeds"]
    ]
    plan_jobs(jobs, config, config_loader, plan.metric_name, plan.id)
    return jobs


def _fresh(job: PlannedJob, seed: int) -> PlannedJob:
    """The selection job's arm on a fresh seed, as a confirmation job in its own dir."""
    overrides = [o for o in job.overrides if not o.startswith(REPLACED)]
    overrides += [f"seed={seed}", STAGE_OVERRIDE]
    directory = job_dir_name(job.arm, seed, CONFIRMATION)
    return PlannedJob(job.arm, seed, overrides, directory, stage=CONFIRMATION)


def pending_jobs(jobs: list[PlannedJob], plan: Plan, sweep_dir: Path, on_mismatch: str) -> list:
    """The confirmation jobs to run: not completed under their identity. Results of another
    config in their dirs are refused (ConfigError), or with on_mismatch=rerun moved aside."""
    pending, mismatched = sort_jobs(replace(plan, planned=jobs), sweep_dir)
    if mismatched and on_mismatch != "rerun":
        raise ConfigError(mismatch_message(sweep_dir, mismatched))
    if mismatched:
        supersede(sweep_dir, [Path(sweep_dir) / item.job.dir for item in mismatched])
    return pending
