"""What an arm says while it runs: which job of the sweep it is, the sweep's ETA, and its
summary line — also in a notebook or script, where no logging is configured — and what the
libraries it trains with are kept from saying (banners, tips, per-file progress bars)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import warnings
from collections.abc import Iterator

from evsys.conclusion.text import duration
from evsys.records import ArmResult, read_completed
from evsys.run.context import JobContext

log = logging.getLogger("evsys")
LINES_ENV = "EVSYS_PROGRESS_LINES"  # set by evsys/sweep/local_launcher.py for parallel jobs
_HANDLER_NAME = "evsys-default"


def ensure_log_handler() -> None:
    """Give the evsys logger a stdout handler when nothing would show its INFO lines (no
    handler on it or above it: a notebook, a plain script). Global logging config is left
    alone; under Hydra, or after logging.basicConfig, this does nothing."""
    if log.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("[%(asctime)s evsys] %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def jobs_share_terminal() -> bool:
    """Whether arms of one sweep print to this terminal at once, where progress bars would
    overwrite each other: evsys's local launcher says so (EVSYS_PROGRESS_LINES), Hydra's joblib
    launcher runs its jobs in parallel unless n_jobs is 1."""
    if os.environ.get(LINES_ENV):
        return True
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    launcher = HydraConfig.get().launcher
    return "joblib" in str(launcher.get("_target_", "")) and launcher.get("n_jobs", -1) != 1


def sweep_position(context: JobContext | None) -> str | None:
    """`job 3/8 (2 done, ETA 4 min)` for a planned job of a sweep (None: not one)."""
    if context is None:
        return None
    if context.trial is not None:  # another sweeper's: how many trials it runs is its own
        return f"trial {context.trial} of the sweep in {context.sweep_dir}"
    dirs = [job.dir for job in context.plan.planned]
    sweep_dir, name = context.sweep_dir, context.job.dir
    done = [r for d in dirs if d != name and (r := read_completed(sweep_dir / d))]
    text = f"job {dirs.index(name) + 1}/{len(dirs)} ({len(done)} done"
    durations = [s for r in done if (s := _seconds(r)) is not None]
    if durations:
        left = (len(dirs) - len(done)) * sum(durations) / len(durations)
        text += f", ETA {duration(left)} if one job runs at a time"
    return text + ")"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep the log about the experiment while training: no banners, tips or per-file progress
    bars. Warning filters, log levels and transformers' progress bar are restored afterwards,
    so a library user's own settings survive a run."""
    import transformers

    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    bars = transformers.utils.logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        # On a machine with SLURM installed, Lightning warns about every run not started by
        # srun; evsys jobs on SLURM are launched by submitit, so the hint is wrong for them.
        warnings.filterwarnings("ignore", message="The `srun` command is available")
        # Lightning 2.6 on torch >= 2.10 builds a deprecated LeafSpec every step.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        transformers.utils.logging.disable_progress_bar()
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
            if bars:
                transformers.utils.logging.enable_progress_bar()


def summary_line(record: ArmResult) -> str:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.metrics.items()))
    took = _seconds(record)
    timing = f" in {duration(took)}" if took is not None else ""
    return f"arm {record.arm} seed {record.seed} completed{timing}: {scores}"


def _seconds(record: ArmResult) -> float | None:
    try:
        start = dt.datetime.fromisoformat(record.started_at)
        end = dt.datetime.fromisoformat(record.finished_at)
    except (TypeError, ValueError):
        return None
    return (end - start).total_seconds()
