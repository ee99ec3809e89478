"""Hydra callbacks: the conclusion when a sweep ends, and the process exit status.

The exit status is raised, not kept in a module global: a failed single run or a sweep with
a failed or missing arm ends the process with SystemExit(1) once everything is written, so a
library user calling evsys in-process never inherits a stale status from an earlier run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from evsys.errors import NOTHING_RUN, ConfigError, DataError, DirInUse, RegistryError
from evsys.free_text import literal
from evsys.records import RESULT_FILE, plan_exists
from evsys.sweep import launch_report

log = logging.getLogger("evsys")

EXIT_FAILED = 1


class ConclusionCallback(Callback):
    """After every arm has run (or failed), build and print the experiment's conclusion.

    Also the checks Hydra gives no other place before it creates a run's or sweep's dir
    (names that would escape the outputs root, a preset's arms run without -m), and, under
    another sweeper than evsys's (basic, Optuna), the sweep dir's lock and a plan written
    from the jobs seen, so the conclusion treats each job as an arm."""

    def __init__(self) -> None:
        self.single_run_failed = False
        self.jobs: list[JobReturn] = []  # a foreign sweeper's jobs, for its plan
        self.lock = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_before_start(config, multirun=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_before_start(config, multirun=True)
        if not _is_evsys_sweeper(config) and not config.experiment.dry_run:
            from evsys.locks import acquire_lock  # evsys's sweeper locks after planning
            from evsys.sweep import foreign

            sweep_dir = Path(config.hydra.sweep.dir)
            try:
                _check_shared_config(config)
                self.lock = acquire_lock(sweep_dir, "sweep")
                foreign.claim_sweep_dir(sweep_dir, config.experiment.on_mismatch)
                foreign.start_search(config, sweep_dir)
            except (ConfigError, DataError, DirInUse) as error:
                _refuse(error, config)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.RUN:
            self.jobs.append(job_return)
            return  # in a sweep each arm reports itself and the conclusion reports them all
        if job_return.status != JobStatus.COMPLETED:
            return
        record = job_return.return_value
        if getattr(record, "status", "completed") != "completed":
            written = record.traceback is not None  # a refused job writes no record
            where = f"\n(full traceback in {Path(record.dir) / RESULT_FILE})" if written else ""
            log.error("%s%s", record.error, where)
            self.single_run_failed = True

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.single_run_failed:
            raise SystemExit(EXIT_FAILED)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if sys.exc_info()[0] is not None:
            # Hydra 1.4 calls this from a `finally` also when the sweep raised (1.3 does not):
            # concluding or exiting here would hide that error behind "nothing to conclude".
            return
        if config.experiment.dry_run:
            return
        from evsys.sweep.experiment import finish_sweep  # the conclusion: heavy imports

        sweep_dir = Path(config.hydra.sweep.dir)
        if not plan_exists(sweep_dir):  # another sweeper: its jobs are the arms
            from evsys.sweep import foreign

            jobs = foreign.seen_jobs(self.jobs) or foreign.recorded_jobs(sweep_dir)
            if jobs:
                foreign.plan_from_jobs(config, sweep_dir, jobs)
        if not OmegaConf.select(config, "hydra.launcher.wait", default=True):
            # Fire-and-forget (SLURM launcher): the arms are still queued or running, and a
            # conclusion now would report every one of them missing.
            log.info("conclusion pending; when the jobs are done: evsys conclude %s", sweep_dir)
            return
        try:
            conclusion = finish_sweep(sweep_dir)
        except Exception as error:  # the arms ran, the conclusion broke: say so
            launch_report.report(sweep_dir, launch_report.CRASHED, error)
            # Hydra turns an exception raised here into a warning and exits 0: exit ourselves.
            log.error("the conclusion of %s failed: %s", sweep_dir, error)
            raise SystemExit(EXIT_FAILED) from error
        if conclusion is None or conclusion.problems:
            raise SystemExit(EXIT_FAILED)


def _check_shared_config(config: DictConfig) -> None:
    """Under another sweeper, which plans nothing ahead (Optuna picks each trial from the last
    ones), what every job shares: the config without the swept values, checked as a job is.
    A bad shared value fails here once, not in every trial after the first has trained."""
    from evsys.sweep.plan import check_job
    from evsys.validate import success_metric

    metric = success_metric(config)
    try:
        check_job(config, metric["name"])
    except (ConfigError, DataError) as error:
        raise type(error)(f"every job of this sweep shares: {error}") from None
    _check_direction(config, metric)


DIRECTIONS = {"min": "minimize", "max": "maximize"}


def _check_direction(config: DictConfig, metric: dict) -> None:
    """An optimizing sweeper (Optuna, Nevergrad) reads its direction from its own config: one
    against the success metric's mode would search for the worst arm, silently."""
    direction = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
    direction = str(getattr(direction, "name", direction)).lower()  # Optuna's is an enum
    if direction not in DIRECTIONS.values():
        return  # no such setting, or several objectives: nothing to compare
    wanted = DIRECTIONS[metric["mode"]]
    if direction != wanted:
        raise ConfigError(
            f"hydra.sweeper.direction={direction} but the success metric {metric['name']} is "
            f"best at its {metric['mode']} (experiment.success_metric.mode={metric['mode']}): "
            f"the search would look for the worst arm; set hydra.sweeper.direction={wanted}"
        )


def _is_evsys_sweeper(config: DictConfig) -> bool:
    return "evsys" in str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))


def _refuse_before_start(config: DictConfig, multirun: bool) -> None:
    """Refuse, before Hydra creates any dir, what no job could run as asked. Free text is
    made literal first: Hydra's own paths interpolate the experiment's and arm's names."""
    from evsys.stores import check_stores
    from evsys.validate import check_names

    experiment = literal(config).experiment
    try:
        check_names(config)
        if not multirun and (experiment.arms or experiment.n_repeats > 1):
            what = f"arms {', '.join(map(str, experiment.arms))}" if experiment.arms else ""
            what += " and " if experiment.arms and experiment.n_repeats > 1 else ""
            what += f"n_repeats={experiment.n_repeats}" if experiment.n_repeats > 1 else ""
            raise ConfigError(
                f"experiment {experiment.name!r} has {what}, which only a sweep runs: add -m "
                "(evsys train +experiment=<name> -m); without it one job would train "
                "with none of the arms' settings"
            )
        if not experiment.dry_run:
            check_stores(config, multirun)  # read-only dirs, a corrupt registry: one line
    except (ConfigError, RegistryError) as error:
        _refuse(error, config if multirun else None)


def _refuse(error: Exception, sweep: DictConfig | None) -> NoReturn:
    """The user's mistake: one message, no traceback, and for a sweep the same in its dir's
    launch report (where the dir exists already: a refusal creates none)."""
    if sweep is not None:
        launch_report.report_config(sweep, launch_report.REFUSED, error)
    log.error("%s\n%s.", error, NOTHING_RUN)
    raise SystemExit(EXIT_FAILED) from None
