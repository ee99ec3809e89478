"""Hydra callbacks: the conclusion when a sweep ends, and the process exit status.

The exit status is raised, not kept in a module global: a failed single run or a sweep with
a failed or missing arm ends the process with SystemExit(1) once everything is written, so a
library user calling evsys in-process never inherits a stale status from an earlier run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from evsys.records import RESULT_FILE

log = logging.getLogger("evsys")

EXIT_FAILED = 1


class ConclusionCallback(Callback):
    """After every arm has run (or failed), build and print the experiment's conclusion."""

    def __init__(self) -> None:
        self.single_run_failed = False

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.RUN or job_return.status != JobStatus.COMPLETED:
            return  # in a sweep each arm reports itself and the conclusion reports them all
        record = job_return.return_value
        if getattr(record, "status", "completed") != "completed":
            log.error("%s\n(full traceback in %s)", record.error, Path(record.dir) / RESULT_FILE)
            self.single_run_failed = True

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.single_run_failed:
            raise SystemExit(EXIT_FAILED)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.experiment.dry_run:
            return
        from evsys.sweep.experiment import finish_sweep  # the conclusion: heavy imports

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
            raise SystemExit(EXIT_FAILED)
