"""A plan for a sweep another Hydra sweeper ran (basic, Optuna): each job it launched is an arm
named by its overrides, so evsys's conclusion, registry and `evsys.conclude` work for it too."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from evsys.records import Plan, PlannedJob
from evsys.sweep import registry
from evsys.sweep.experiment import start_sweep
from evsys.validate import success_metric


def plan_from_jobs(config: DictConfig, sweep_dir: Path, jobs: list[JobReturn]) -> Plan:
    """Write (and register) the plan of the jobs seen, in launch order."""
    experiment = OmegaConf.to_container(config.experiment, resolve=True)
    # The overrides every job shares say nothing about which arm it is: names use the others.
    shared = set.intersection(*(set(job.overrides or []) for job in jobs)) if jobs else set()
    planned = [_planned(job, sweep_dir, shared) for job in jobs]
    plan = Plan(
        id=registry.new_experiment_id(experiment["name"]),
        name=experiment["name"],
        success_metric=success_metric(config),
        planned=[job for job in planned if job is not None],
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


def _planned(job: JobReturn, sweep_dir: Path, shared: set[str]) -> PlannedJob | None:
    output_dir = OmegaConf.select(job.hydra_cfg or {}, "hydra.runtime.output_dir", default=None)
    if output_dir is None:
        return None
    directory = Path(output_dir).resolve().relative_to(Path(sweep_dir).resolve())
    overrides = list(job.overrides or [])
    seed = next((int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed=")), 0)
    name = _arm_name([o for o in overrides if o not in shared], str(directory))
    return PlannedJob(name, seed, overrides, str(directory))


def _arm_name(overrides: list[str], directory: str) -> str:
    """algorithm.lr=0.001 -> lr=0.001: the overrides that make this job, short and file-safe."""
    shown = [o.split("=", 1) for o in overrides if "=" in o and not o.startswith("seed=")]
    label = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in shown)
    return re.sub(r"[^\w.=,+\-]", "_", label) or f"job{directory}"
