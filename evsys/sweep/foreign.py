"""A plan for a sweep another Hydra sweeper ran (basic, Optuna): each job it launched is an arm
named by its overrides, so evsys's conclusion, registry and `evsys.conclude` work for it too."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from evsys.records import RESULT_FILE, ArmResult, Plan, PlannedJob
from evsys.sweep import registry
from evsys.sweep.experiment import start_sweep
from evsys.validate import success_metric

Job = tuple[list[str], Path]  # a job's overrides and its dir


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
    # The overrides every job shares say nothing about which arm it is: names use the others.
    shared = set.intersection(*(set(overrides) for overrides, _ in jobs)) if jobs else set()
    plan = Plan(
        id=registry.new_experiment_id(experiment["name"]),
        name=experiment["name"],
        success_metric=success_metric(config),
        planned=[_planned(overrides, job_dir, sweep_dir, shared) for overrides, job_dir in jobs],
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


def _planned(overrides: list[str], job_dir: Path, sweep_dir: Path, shared: set) -> PlannedJob:
    directory = str(job_dir.resolve().relative_to(Path(sweep_dir).resolve()))
    seed = next((int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed=")), 0)
    name = _arm_name([o for o in overrides if o not in shared], directory)
    return PlannedJob(name, seed, overrides, directory)


def _arm_name(overrides: list[str], directory: str) -> str:
    """algorithm.lr=0.001 -> lr=0.001: the overrides that make this job, short and file-safe."""
    shown = [o.split("=", 1) for o in overrides if "=" in o and not o.startswith("seed=")]
    label = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in shown)
    return re.sub(r"[^\w.=,+\-]", "_", label) or f"job{directory}"
