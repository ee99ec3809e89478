"""What a job of a sweep knows about its experiment, handed to run_experiment by its caller.

A job never looks for its experiment itself: the caller that knows it runs a planned job
(the Hydra app, evsys/cli/train.py) builds a JobContext from the sweep's plan and passes it
in; a trial of another sweeper (basic, Optuna) gets one from evsys/run/trial.py. Without one
(a single run, a Python call) the job is a run of its own: its TensorBoard
run sits in its dir and its HParams row names no swept keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evsys.errors import NotASweepDir
from evsys.records import Plan, PlannedJob


@dataclass(frozen=True)
class JobContext:
    """The planned job a run is, the plan it is part of, and the sweep dir holding both."""

    plan: Plan
    job: PlannedJob
    sweep_dir: Path
    # A trial of another sweeper: the keys that sweeper searches, and the trial's number.
    swept: tuple[str, ...] | None = None
    trial: int | None = None

    @property
    def success_metric(self) -> str:
        """The metric the experiment ranks its arms on (the plan's success_metric.name)."""
        return self.plan.metric_name


def job_context(sweep_dir: str | Path, job_dir: str | Path) -> JobContext | None:
    """The context of the job in `job_dir` when it is a planned job of the plan in
    `sweep_dir`; None when `sweep_dir` holds no plan or the plan has no such job."""
    try:
        plan = Plan.load(sweep_dir)
    except NotASweepDir:
        return None
    name = os.path.relpath(Path(job_dir).absolute(), Path(sweep_dir).absolute())
    job = next((job for job in plan.planned if job.dir == name), None)
    return JobContext(plan, job, Path(sweep_dir)) if job is not None else None


def hydra_job_context() -> JobContext | None:
    """The context of the Hydra job running now: in a multirun, its job of the sweep dir's
    plan; in a single run, its job when the run dir is a sweep's job dir (an arm resumed on
    its own, as evsys suggests after Ctrl-C)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    job_dir = Path(hydra.runtime.output_dir)
    sweep_dir = hydra.sweep.dir if hydra.mode == RunMode.MULTIRUN else job_dir.parent
    return job_context(sweep_dir, job_dir)
