"""Ranks of a multi-process arm: which process is rank 0, and starting the other ranks from
inside a sweep.

Lightning starts ranks 1..n-1 of a multi-process run on one machine by re-running this
process's command line with `hydra.run.dir=<hydra.run.dir>` appended. Inside a multirun job
that command line is the whole sweep (-m and its sweep overrides) and hydra.run.dir is not
the job's directory: rank 1 would start the sweep again (and its failure take down the sweep).
While the trainer launches, the command line is the job's own run, in the job's directory."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from omegaconf import read_write

from evsys.free_text import as_written

# What Lightning's launcher sets in this process for its ranks; left set, the next arm's
# trainer would take its processes for started by someone else and wait for ranks never started.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def other_ranks_run_this_job() -> Iterator[None]:
    environment = {key: os.environ.get(key) for key in LAUNCH_VARIABLES}
    try:
        with _job_command_line():
            yield
    finally:
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _job_command_line() -> Iterator[None]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield  # a single run's command line is already the job's
        return
    hydra = HydraConfig.get()
    argv, run_dir = sys.argv, hydra.run.dir
    sys.argv = [argv[0], *as_written(hydra.overrides.task)]
    with read_write(hydra.run):
        hydra.run.dir = hydra.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hydra.run):
            hydra.run.dir = run_dir


def end_process_group() -> None:
    """The arm's process group ends with the arm: its other ranks have exited, and the next
    arm run by this process (a sweep's next job) starts its own group with new ranks."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_global_zero() -> bool:
    """Rank 0 of a distributed arm, as Lightning sees it (it sets the rank when its strategy
    starts; before that it reads RANK, LOCAL_RANK or SLURM_PROCID, so every launcher agrees)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
