"""What an arm says while it runs: which job of the sweep it is, the sweep's ETA, and its
summary line — also in a notebook or script, where no logging is configured."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

from evsys.errors import NotASweepDir
from evsys.records import ArmResult, Plan, read_completed

log = logging.getLogger("evsys")
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


def sweep_position(job_dir: Path) -> str | None:
    """`job 3/8 (2 done, ETA 4 min)` for a planned job of the sweep dir above `job_dir`."""
    try:
        plan = Plan.load(job_dir.parent)
    except NotASweepDir:
        return None
    dirs = [job.dir for job in plan.planned]
    if job_dir.name not in dirs:
        return None
    done = [r for d in dirs if d != job_dir.name and (r := read_completed(job_dir.parent / d))]
    text = f"job {dirs.index(job_dir.name) + 1}/{len(dirs)} ({len(done)} done"
    durations = [s for r in done if (s := _seconds(r)) is not None]
    if durations:
        left = (len(dirs) - len(done)) * sum(durations) / len(durations)
        text += f", ETA {_duration(left)} if one job runs at a time"
    return text + ")"


def summary_line(record: ArmResult) -> str:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.metrics.items()))
    took = _seconds(record)
    timing = f" in {_duration(took)}" if took is not None else ""
    return f"arm {record.arm} seed {record.seed} completed{timing}: {scores}"


def _seconds(record: ArmResult) -> float | None:
    try:
        start = dt.datetime.fromisoformat(record.started_at)
        end = dt.datetime.fromisoformat(record.finished_at)
    except (TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
