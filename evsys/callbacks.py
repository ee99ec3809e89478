"""Hydra callbacks: the conclusion when a sweep ends, and the process exit code."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("evsys")

_failed = False
_planning_failed = False  # the sweep never started: there is nothing to conclude


def mark_failed() -> None:
    """Something in this process failed: exit non-zero once Hydra returns."""
    global _failed
    _failed = True


def mark_planning_failed() -> None:
    """The sweep was refused before any job ran (e.g. a typo in an arm)."""
    global _planning_failed
    _planning_failed = True
    mark_failed()


def exit_code() -> int:
    return 1 if _failed else 0


class ConclusionCallback(Callback):
    """After every arm has run (or failed), build and print the experiment's conclusion."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if config.experiment.dry_run or _planning_failed:
            return
        from evsys.experiment import finish_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        if not OmegaConf.select(config, "hydra.launcher.wait", default=True):
            # Fire-and-forget (SLURM launcher): the arms are still queued or running, and a
            # conclusion now would report every one of them missing.
            log.info(
                "conclusion pending; when the jobs are done: python -m evsys.conclude %s", sweep_dir
            )
            return
        conclusion = finish_sweep(sweep_dir)
        if conclusion is None or conclusion.get("failed") or conclusion.get("missing"):
            mark_failed()
