"""A plan for a sweep another Hydra sweeper ran (basic, Optuna): each job it launched is an arm
named by its overrides, so evsys's conclusion, registry and `evsys.conclude` work for it too."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from evsys import registry
from evsys.errors import ConfigError
from evsys.locks import supersede
from evsys.plural import count
from evsys.records import (
    CHECKPOINT,
    LOCK_FILE,
    PLAN_FILE,
    RESULT_FILE,
    SUPERSEDED,
    ArmResult,
    Plan,
    PlannedJob,
)
from evsys.run.trial import searched_keys, trial_name, write_search
from evsys.sweep.experiment import start_sweep
from evsys.validate import success_metric

Job = tuple[list[str], Path]  # a job's overrides and its dir
log = logging.getLogger("evsys")


def claim_sweep_dir(sweep_dir: Path, on_mismatch: str) -> None:
    """Refuse a sweep dir that holds an earlier sweep's results, or with
    experiment.on_mismatch=rerun move them aside: another sweeper cannot say which of its jobs
    they belong to (its job dirs are numbers, Optuna's trials new each time), so they are never
    resumed nor mixed into this sweep's conclusion."""
    sweep_dir = Path(sweep_dir)
    old = [p for p in sweep_dir.iterdir() if p.name not in (LOCK_FILE, SUPERSEDED)]
    earlier = [p for p in old if (p / RESULT_FILE).exists() or (p / CHECKPOINT).exists()]
    if not earlier and not (sweep_dir / PLAN_FILE).exists():
        return
    if on_mismatch == "rerun":
        log.warning("experiment.on_mismatch=rerun: an earlier sweep moved to %s",
                    supersede(sweep_dir, old))  # fmt: skip
        return
    raise ConfigError(
        f"the sweep dir {sweep_dir} already holds an earlier sweep's results "
        f"({count(len(earlier), 'job')}); under another sweeper than evsys's they cannot be "
        "matched to this sweep's jobs. Run into a new sweep dir (hydra.sweep.dir=<new dir>), "
        f"or add experiment.on_mismatch=rerun to move them aside into {sweep_dir / SUPERSEDED}/"
        "<timestamp>/ (nothing is deleted)"
    )


def seen_jobs(returns: list[JobReturn]) -> list[Job]:
    """The jobs Hydra reported back (in-process launchers), in launch order."""
    jobs = []
    for job in returns:
        hydra_cfg = job.hydra_cfg
        output_dir = None if hydra_cfg is None else hydra_cfg.hydra.runtime.output_dir
        if output_dir is not None:
            jobs.append((list(job.overrides or []), Path(output_dir)))
    return jobs


def recorded_jobs(sweep_dir: Path) -> list[Job]:
    """The jobs that left a record, for launchers that report nothing back to this process."""
    jobs = []
    for path in sorted(Path(sweep_dir).glob(f"*/{RESULT_FILE}")):
        try:
            jobs.append((ArmResult.load(path.parent).overrides, path.parent))
        except (OSError, ValueError, TypeError):
            continue
    return jobs


def plan_from_jobs(config: DictConfig, sweep_dir: Path, jobs: list[Job]) -> Plan:
    """Write (and register) the plan of these jobs."""
    experiment = OmegaConf.to_container(config.experiment, resolve=True)
    # Arms are named as the trials named themselves (evsys/run/trial.py): by the keys the
    # sweep searches, or, for a sweep that recorded none, by the overrides jobs do not share.
    searched = searched_keys(sweep_dir)
    shared = set.intersection(*(set(overrides) for overrides, _ in jobs)) if jobs else set()
    plan = Plan(
        id=registry.new_experiment_id(experiment["name"]),
        name=experiment["name"],
        success_metric=success_metric(config),
        planned=[
            _planned(overrides, job_dir, sweep_dir, shared, searched) for overrides, job_dir in jobs
        ],
        hypothesis=experiment["hypothesis"],
        n_repeats=1,
        base_seed=int(config.seed),
        parent_experiment_id=experiment["parent_experiment_id"],
        metadata=experiment["metadata"],
        outputs_root=str(Path(experiment["stores"]["outputs_root"]).resolve()),
        created_at=dt.datetime.now().isoformat(timespec="seconds"),
    )
    start_sweep(plan, Path(sweep_dir), config)
    return plan


def _planned(
    overrides: list[str], job_dir: Path, sweep_dir: Path, shared: set, searched: list | None
) -> PlannedJob:
    directory = str(job_dir.resolve().relative_to(Path(sweep_dir).resolve()))
    seed = next((int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed=")), 0)
    own = overrides if searched is not None else [o for o in overrides if o not in shared]
    return PlannedJob(trial_name(own, searched, f"job{directory}"), seed, overrides, directory)


def start_search(config: DictConfig, sweep_dir: Path) -> None:
    """Write down what the sweep searches before its first trial (evsys/run/trial.py)."""
    write_search(config, sweep_dir, success_metric(config))
