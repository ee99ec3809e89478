"""`evsys train [overrides] [-m]` (also `python -m evsys.train`): Hydra composes one RunConfig
per job and trains it.

A failed single run exits 1, and so does a sweep with a failed or missing arm (raised by
evsys/sweep/callbacks.py once every record and the conclusion are written). `--help` and config
mistakes are answered before torch is imported (evsys/cli/quick.py).
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from evsys.cli.missing_plugin import missing_plugin, missing_program
from evsys.cli.quick import preset_problem
from evsys.compose import register_schemas
from evsys.errors import NOTHING_RUN, ConfigError
from evsys.hydra_lines import main_options

log = logging.getLogger("evsys")

register_schemas()
FIX_AND_RERUN = f"{NOTHING_RUN}: fix the config and run it again."


@hydra.main(config_path="pkg://evsys.conf", config_name="train", **main_options())
def main(cfg: DictConfig):
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        _validate_or_exit(cfg)  # a sweep validated every job in its plan already
    # Imported here: `--help`, `--cfg job` and config errors never pay for torch/lightning.
    from evsys.run.arm import run_experiment
    from evsys.run.context import hydra_job_context

    record = run_experiment(cfg, context=hydra_job_context())  # the sweep's job, if one
    if HydraConfig.get().mode != RunMode.MULTIRUN and record.completed:
        _print_single_run(record)
    return record  # failures: reported by the conclusion callback, never raised from a job


def _validate_or_exit(cfg: DictConfig) -> None:
    from evsys.validate import validate_run_config

    try:
        validate_run_config(cfg)
    except ConfigError as error:
        log.error("%s\n%s", error, FIX_AND_RERUN)
        _remove_empty_run_dir()
        raise SystemExit(1) from None


def _remove_empty_run_dir() -> None:
    """The run dir Hydra made for a config that never ran, when it holds nothing but Hydra's
    own files: a typo leaves no stray directory under outputs/runs."""
    runtime = HydraConfig.get()
    run_dir = Path(runtime.runtime.output_dir)
    own = {".hydra", f"{runtime.job.name}.log"}
    if run_dir.is_dir() and all(path.name in own for path in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def _print_single_run(record) -> None:
    log.info("outputs in %s", record.dir)  # the arm logged its summary line itself


def cli(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the Hydra app on `argv` (default: the command line); returns the exit code."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = sys.argv[1:]
    from evsys.cli import quick

    if quick.is_plain_help(args):
        quick.print_help(args)
        return 0
    # Hydra prints PyYAML's traceback for a malformed preset: name the file and line instead.
    if problem := preset_problem(args):
        _refuse(args, problem, f"{NOTHING_RUN}.")
    if problem := missing_plugin(args) or missing_program(args):
        _refuse(args, problem, f"{NOTHING_RUN}.")
    if errors := quick.typo_errors(args):
        _refuse(args, "\n".join(errors), FIX_AND_RERUN)
    main()
    return 0


def _refuse(args: list[str], problem: str, ending: str) -> NoReturn:
    """Refused before Hydra starts: said on stderr, and in the sweep dir given on the command
    line (when it exists) for whoever launched this sweep (evsys/sweep/launch_report.py)."""
    from evsys.cli.quick import sweep_dir_given
    from evsys.sweep import launch_report

    sys.stderr.write(f"{problem}\n{ending}\n")
    launch_report.report(sweep_dir_given(args), launch_report.REFUSED, ConfigError(problem))
    raise SystemExit(1)


if __name__ == "__main__":
    cli()
