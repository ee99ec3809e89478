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
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from evsys.errors import ConfigError, DirInUse, RegistryError
from evsys.locks import acquire_lock
from evsys.sweep import registry
from evsys.sweep.callbacks import EXIT_FAILED
from evsys.sweep.experiment import start_sweep
from evsys.sweep.plan import plan_sweep, print_plan
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
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        axes = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        dry_run = self.config.experiment.dry_run
        try:
            plan = plan_sweep(self.config, axes, self.hydra_context.config_loader, sweep_dir)
            if not dry_run:  # a second sweep into this dir fails here, before reading it
                self.lock = acquire_lock(sweep_dir, "sweep")
            pending, mismatched = sort_jobs(plan, sweep_dir)
            if dry_run and mismatched:
                log.warning("%s", mismatch_message(sweep_dir, mismatched))
            elif not dry_run:
                resolve_mismatches(sweep_dir, mismatched, self.config.experiment.on_mismatch)
        except (ConfigError, DirInUse) as error:
            # The user's mistake, not ours: the message names the arm and key; no traceback.
            log.error("%s\nNothing was run.", error)
            raise SystemExit(EXIT_FAILED) from None
        print_plan(plan, pending)
        if dry_run:
            return []
        start_sweep(plan, sweep_dir, self.config)
        if not pending:
            log.info("every arm already completed; rebuilding the conclusion only")
            return []
        try:
            results = self.launcher.launch([job.overrides for job in pending], initial_job_idx=0)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C (Lightning turns it into exit 1)
            _interrupted(plan.outputs_root, plan.id, sweep_dir)
            raise SystemExit(EXIT_FAILED) from None
        for job, result in zip(pending, results, strict=False):
            if result.status == JobStatus.FAILED:
                # Jobs record their own failures; reaching here means the job code itself broke.
                log.error("job %s crashed outside its record: %r", job.dir, result._return_value)
        return results


def _interrupted(outputs_root: str, experiment_id: str, sweep_dir: Path) -> None:
    """Mark the experiment interrupted and print the command that resumes it."""
    with contextlib.suppress(RegistryError):  # a registry removed meanwhile: still say how on
        registry.update(outputs_root, experiment_id, status="interrupted")
    arguments = [a for a in sys.argv[1:] if not a.startswith("hydra.sweep.dir=")]
    multirun = {"-m", "--multirun"} & set(arguments)
    arguments += [f"hydra.sweep.dir={sweep_dir}"] + ([] if multirun else ["-m"])
    command = shlex.join(["python", "-m", "evsys.train", *arguments])
    log.error(
        "interrupted: experiment %s in %s; completed arms keep their records, the others "
        "resume from their last checkpoint with:\n  %s",
        experiment_id, sweep_dir, command,
    )  # fmt: skip
