"""What a sweep dir already holds for each planned job, by config identity (records.py):

    a completed record of the same identity      skipped (its record stands), unless its
                                                  model/ is missing: run again, resuming from
                                                  last.ckpt (scored, exported, same metrics)
    a failed record or a checkpoint, same identity  run again, resuming from last.ckpt
    a record or checkpoint of another identity    refused at planning, naming the keys that
                                                  differ; with experiment.on_mismatch=rerun
                                                  moved aside into <sweep>/.superseded/<time>/

so old records are never presented as (or mixed into) the results of a changed plan.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evsys.confine import links_inside
from evsys.errors import ConfigError, NotASweepDir
from evsys.identity import identity_diff
from evsys.locks import supersede
from evsys.records import (
    CHECKPOINT,
    PLAN_FILE,
    SLURM_LOGS_LINK,
    SUPERSEDED,
    ArmResult,
    Plan,
    PlannedJob,
    has_record,
    missing_export,
    read_checkpoint,
    record_path,
)

log = logging.getLogger("evsys")


@dataclass
class StoredIdentity:
    """The identity a job dir's record (or, without one, its checkpoint) was written with."""

    identity: str
    config: dict[str, Any]
    path: Path  # the file it was read from
    completed: bool = False
    problem: str = ""  # why the file could not be read, when it could not


def stored_identity(job_dir: Path) -> StoredIdentity | None:
    """The identity of the results already in `job_dir`, or None when it holds none."""
    job_dir = Path(job_dir)
    if has_record(job_dir):
        try:
            record = ArmResult.load(job_dir)
        except (OSError, ValueError, TypeError):
            problem = "unreadable: not a record evsys wrote"  # never reused
            return StoredIdentity("", {}, record_path(job_dir), problem=problem)
        path = record_path(job_dir)
        return StoredIdentity(record.identity, record.identity_config, path, record.completed)
    if (job_dir / CHECKPOINT).exists():  # a file, or a sharded checkpoint's dir
        return checkpoint_identity(job_dir / CHECKPOINT)
    return None


def checkpoint_identity(path: Path) -> StoredIdentity:
    """The identity a checkpoint was saved with; ("", {}) when it has none or is unreadable
    (loaded with weights_only: a file on disk is never trusted to run code)."""
    try:
        _, stored = read_checkpoint(path)
        return StoredIdentity(str(stored.get("identity", "")), dict(stored.get("config", {})), path)
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is not this job's
        # The type only: torch's text for a broken file advises weights_only=False, which
        # would run any code a planted file holds.
        problem = (
            f"unreadable ({type(error).__name__}), so not loaded (never unpickled with code): "
            "not a checkpoint evsys wrote"
        )
        return StoredIdentity("", {}, Path(path), problem=problem)


@dataclass
class Mismatch:
    job: PlannedJob
    stored: StoredIdentity


def sort_jobs(plan: Plan, sweep_dir: Path) -> tuple[list[PlannedJob], list[Mismatch]]:
    """(jobs to run, jobs whose dir holds another config's results); the second are to run too
    once their old results are moved aside. OutsideSweepDir when a link in the sweep dir (a
    job's dir, its model/) leads outside it."""
    links_inside(sweep_dir, skip=(SUPERSEDED, SLURM_LOGS_LINK))  # writes stay inside
    pending, mismatched = [], []
    for job in plan.planned:
        stored = stored_identity(Path(sweep_dir) / job.dir)
        if stored is None:
            pending.append(job)
        elif stored.identity != job.identity:
            pending.append(job)
            mismatched.append(Mismatch(job, stored))
        elif not stored.completed or _export_missing(Path(sweep_dir) / job.dir):
            pending.append(job)
    return pending, mismatched


def _export_missing(job_dir: Path) -> bool:
    """A completed job whose model is gone is said so and run again, never skipped."""
    model = missing_export(job_dir)
    if model is not None:
        log.warning(
            "%s: the arm completed, but its model %s is missing: it runs again from its last "
            "checkpoint (scored and exported; the training metrics are kept)",
            record_path(job_dir), model,
        )  # fmt: skip
    return model is not None


def mismatch_message(sweep_dir: Path, mismatched: list[Mismatch]) -> str:
    lines = [f"the sweep dir {sweep_dir} already holds results of another config:"]
    for item in mismatched[:10]:
        what = item.stored.problem or identity_diff(item.stored.config, item.job.identity_config)
        lines.append(f"  {item.stored.path}: {what}")
    if len(mismatched) > 10:
        lines.append(f"  and {len(mismatched) - 10} more jobs")
    lines.append(
        "To proceed, run into a new sweep dir (hydra.sweep.dir=<new dir>), or "
        f"add experiment.on_mismatch=rerun to move the old results aside into "
        f"{Path(sweep_dir) / SUPERSEDED}/<timestamp>/ (nothing is deleted) and run this config."
    )
    return "\n".join(lines)


def resolve_mismatches(
    plan: Plan, sweep_dir: Path, mismatched: list[Mismatch], on_mismatch: str
) -> Path | None:
    """Refuse (ConfigError) or move the mismatched job dirs, the old plan and the old
    conclusion aside; returns where they went, or None when nothing mismatched."""
    if not mismatched:
        return None
    if on_mismatch != "rerun":
        raise ConfigError(mismatch_message(sweep_dir, mismatched))
    sweep_dir = Path(sweep_dir)
    old = [sweep_dir / item.job.dir for item in mismatched]
    # So do the old plan's jobs the new one does not list as matching (e.g. seeds added by
    # adaptive rounds): none may be counted as the new plan's.
    keep = {job.dir for job in plan.planned} - {item.job.dir for item in mismatched}
    with contextlib.suppress(NotASweepDir):
        old += [sweep_dir / j.dir for j in Plan.load(sweep_dir).planned if j.dir not in keep]
    old = list(dict.fromkeys(old))
    old += [sweep_dir / PLAN_FILE, *sweep_dir.glob("conclusion*"), *sweep_dir.glob("*_conclusion")]
    target = supersede(sweep_dir, old)
    log.warning(
        "experiment.on_mismatch=rerun: %d jobs' results of another config moved to %s",
        len(mismatched), target,
    )  # fmt: skip
    return target
