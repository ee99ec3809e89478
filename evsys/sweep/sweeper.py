"""The evsys sweeper: plan and validate every job, skip finished ones, launch the rest.

Selected in conf/train.yaml (`override hydra/sweeper: evsys`); Hydra instantiates plugins from
`hydra_plugins` only, so hydra_plugins/evsys_sweeper/ holds a shim that imports this class.
Unlike Hydra's basic sweeper it expands named arms and repeats, composes and validates every
job before the first one starts, and never re-raises a job's failure (each arm records its
own), so the conclusion always runs.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from evsys import registry
from evsys.errors import NOTHING_RUN, ConfigError, DirInUse, RegistryError
from evsys.interrupts import interrupt_exit_code, sigterm_raises, tell
from evsys.locks import acquire_lock
from evsys.records import Plan, read_completed
from evsys.sweep import launch_report
from evsys.sweep.callbacks import EXIT_FAILED
from evsys.sweep.experiment import start_sweep
from evsys.sweep.plan import plan_sweep, planned_looks, sweep_axes
from evsys.sweep.plan_table import print_plan
from evsys.sweep.resume_command import resume_command
from evsys.sweep.reuse import mismatch_message, resolve_mismatches, sort_jobs

log = logging.getLogger("evsys")


class ExperimentSweeper(Sweeper):
    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context = None
        self.lock = None  # the sweep dir's lock file, held open for the sweep's life

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        try:
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=task_function, config=config
            )
        except Exception as error:  # a launcher that cannot start: say so in the sweep dir
            launch_report.report_config(config, launch_report.CRASHED, error)
            raise

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self._sweep(arguments)
        except Exception as error:  # evsys or a launcher broke: say so in the sweep dir
            launch_report.report_config(self.config, launch_report.CRASHED, error)
            raise

    def _sweep(self, arguments: list[str]) -> list:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        axes = sweep_axes(self.params, arguments)  # as an in-process plan (evsys.plan) expands
        dry_run = self.config.experiment.dry_run
        try:
            # Hydra's own config loader composes each job: the one evsys.compose.Composer calls
            plan = plan_sweep(self.config, axes, self.hydra_context.config_loader, sweep_dir)
            if not dry_run:  # a second sweep into this dir fails here, before reading it
                self.lock = acquire_lock(sweep_dir, "sweep")
            pending, mismatched = sort_jobs(plan, sweep_dir)
            if dry_run and mismatched:
                log.warning("%s", mismatch_message(sweep_dir, mismatched))
            elif not dry_run:
                resolve_mismatches(plan, sweep_dir, mismatched, self.config.experiment.on_mismatch)
        except (ConfigError, DirInUse) as error:
            _refuse(sweep_dir, error)
        print_plan(plan, pending)
        if dry_run:
            self._print_estimate(pending)
            return []
        looks = planned_looks(self.config.experiment)
        if not OmegaConf.select(self.config, "hydra.launcher.wait", default=True):
            self._refuse_fire_and_forget(sweep_dir, looks is not None, plan.confirm is not None)
        if looks is not None:
            from evsys.sweep import adaptive  # scipy: only sweeps that add seeds pay for it

            adaptive.start_design(plan, looks)
        start_sweep(plan, sweep_dir, self.config)
        results = self._launch(pending, sweep_dir, every=plan.planned)
        if looks is not None:
            results += self._rounds(plan, sweep_dir)
        if plan.confirm is not None:
            results += self._confirm(plan, sweep_dir)
        return results

    def _refuse_fire_and_forget(self, sweep_dir: Path, adaptive: bool, confirm: bool) -> None:
        """A stage planned from the results of the last one needs a launcher that waits."""
        if adaptive:
            _refuse(
                sweep_dir,
                ConfigError(
                    "experiment.adaptive.max_repeats adds seeds after each round, so it needs "
                    "a launcher that waits for the jobs; drop hydra.launcher.wait=false, or set "
                    "experiment.adaptive.max_repeats=0 for a fixed design"
                ),
            )
        if confirm:
            _refuse(
                sweep_dir,
                ConfigError(
                    "experiment.confirm re-runs the arm the selection stage picks, so it needs "
                    "a launcher that waits for the selection's jobs; drop "
                    "hydra.launcher.wait=false, or experiment.confirm"
                ),
            )

    def _print_estimate(self, pending: list) -> None:
        """The dry run's estimate of what the jobs to run would train (evsys/cost.py)."""
        from evsys.cost import estimate, estimate_line
        from evsys.validate import validate_run_config

        loader, composed = self.hydra_context.config_loader, {}

        def config(job) -> DictConfig:  # repeats differ in their seed only: composed once
            key = tuple(o for o in job.overrides if not o.startswith("seed="))
            if key not in composed:
                composed[key] = validate_run_config(
                    loader.load_sweep_config(self.config, list(key))
                )
            return composed[key]

        print(estimate_line(estimate(config(job) for job in pending)))

    def _launch(self, pending: list, sweep_dir: Path, every: list) -> list:
        if not pending:
            log.info("every arm already completed; rebuilding the conclusion only")
            return []
        # Hydra numbers jobs; under a sweep of several rounds each job keeps its own number.
        first = every.index(pending[0]) if pending[0] in every else 0
        overrides = [job.overrides for job in pending]
        try:
            with sigterm_raises():
                results = self.launcher.launch(overrides, initial_job_idx=first)
        except (KeyboardInterrupt, SystemExit) as error:  # Ctrl-C, SIGTERM (Lightning's exits)
            _interrupted(sweep_dir, self.config)
            raise SystemExit(interrupt_exit_code(error)) from None  # 130 or 143, never 0
        for job, result in zip(pending, results, strict=False):
            if result.status == JobStatus.FAILED:
                # Jobs record their own failures; reaching here means the job code itself broke.
                log.error("job %s crashed outside its record: %r", job.dir, result._return_value)
        return list(results)

    def _rounds(self, plan, sweep_dir: Path) -> list:
        """Seeds until decided: after each look, more seeds for the undecided arms' jobs."""
        from evsys.sweep import adaptive

        results, template = [], list(plan.planned)
        while arms := adaptive.next_round(sweep_dir, plan):
            jobs = adaptive.more_jobs(plan, arms, template)
            plan.planned += jobs
            plan.save(sweep_dir)
            pending = [job for job in jobs if read_completed(sweep_dir / job.dir) is None]
            log.info("adaptive: %d more jobs for %s", len(jobs), ", ".join(arms))
            results += self._launch(pending, sweep_dir, every=plan.planned)
        return results

    def _confirm(self, plan: Plan, sweep_dir: Path) -> list:
        """The confirmation stage: the selected arm and its comparison arm on fresh seeds,
        launched as one more batch once the selection stage is done."""
        from evsys.sweep import confirm  # scipy: only sweeps that confirm pay for it

        loader, on_mismatch = self.hydra_context.config_loader, self.config.experiment.on_mismatch
        try:
            jobs = confirm.confirmation_jobs(sweep_dir, plan, self.config, loader)
            pending = confirm.pending_jobs(jobs, plan, sweep_dir, on_mismatch)
        except ConfigError as error:
            _refuse(sweep_dir, error)
        plan.planned += jobs
        plan.save(sweep_dir)
        if not jobs:
            log.warning("confirmation: %s", plan.confirm["reason"])
            return []
        log.info(
            "confirmation: %s vs %s on fresh seeds %s (%d to run)",
            plan.confirm["selected"], plan.confirm["against"], plan.confirm["seeds"], len(pending),
        )  # fmt: skip
        return self._launch(pending, sweep_dir, every=plan.planned) if pending else []


def _refuse(sweep_dir: Path, error: Exception) -> NoReturn:
    """The user's mistake, not ours: the message names the arm and key; no traceback. Said in
    the sweep dir too, for Experiment.run() (evsys/sweep/launch_report.py)."""
    launch_report.report(sweep_dir, launch_report.REFUSED, error)
    log.error("%s\n%s.", error, NOTHING_RUN)
    raise SystemExit(EXIT_FAILED) from None


def _interrupted(sweep_dir: Path, config: DictConfig) -> None:
    """Mark the experiment interrupted and print the command that resumes it."""
    plan = Plan.load(sweep_dir)
    experiment_id = plan.id
    with contextlib.suppress(RegistryError):  # a registry removed meanwhile: still say how on
        registry.update(plan.outputs_root, experiment_id, status="interrupted")
    tell(
        log,
        f"interrupted: experiment {experiment_id} in {sweep_dir}; completed arms keep their "
        "records, the others resume from their last checkpoint with:\n"
        f"  {resume_command(config, sweep_dir)}\nor: evsys resume {experiment_id}",
    )
