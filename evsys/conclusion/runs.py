"""The runs of a sweep dir, each completed, failed or missing, read through the records module."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evsys.conclusion.item_scores import read_metric_items
from evsys.errors import DataError
from evsys.identity import identity_diff
from evsys.records import RESULT_FILE, ArmResult, Plan, PlannedJob, has_record


def collect_runs(sweep_dir: str | Path, plan: Plan) -> dict[str, list[dict]]:
    """Sort every planned job into completed / failed / missing, sorted by (arm, seed); a
    record of another config than the job's (its identity) is failed, with the keys that differ.

    A completed run carries its success-metric value, its ArmResult (as `record`) and its
    per-item scores of the metric (`items`: {item: score}, or None when it left none). A run
    whose scores file is malformed is failed, with the file, row and item as its error."""
    metric = plan.metric_name
    runs: dict[str, list[dict]] = {"completed": [], "failed": [], "missing": []}
    for job in plan.planned:
        run = {"arm": job.arm, "seed": job.seed, "dir": job.dir}
        job_dir = Path(sweep_dir) / job.dir
        if not has_record(job_dir):
            runs["missing"].append(run)
            continue
        record, error = _read_record(job_dir, metric)
        error = error or _another_config(record, job)
        if error is None:
            value = record.metrics[metric]
            items, error = _read_items(job_dir, metric, value)
        if error is not None:
            runs["failed"].append({**run, "error": error})
        else:
            runs["completed"].append({**run, "value": value, "record": record, "items": items})
    for kind in runs.values():
        kind.sort(key=lambda r: (r["arm"], r["seed"]))
    return runs


def _read_record(job_dir: Path, metric: str) -> tuple[ArmResult | None, str | None]:
    """The arm record and, when it does not count as completed, why."""
    try:
        record = ArmResult.load(job_dir)
    except (OSError, ValueError, TypeError) as exc:
        return None, f"unreadable {RESULT_FILE}: {exc}"
    if not record.completed:
        return record, record.error or f"status {record.status!r}"
    metrics = record.metrics or {}
    if metric not in metrics:
        present = ", ".join(sorted(metrics)) or "none"
        return record, f"metric {metric!r} missing from the record (metrics present: {present})"
    value = metrics[metric]
    if not is_number(value) or not math.isfinite(value):
        return record, f"metric {metric!r} is not a finite number: {value!r}"
    return record, None


def _another_config(record: ArmResult, job: PlannedJob) -> str | None:
    """Why the record is not the planned job's result, when another config wrote it: a sweep
    re-run refuses to reuse it (evsys/sweep/reuse.py), so it is never ranked as this arm."""
    if job.wrote(record):
        return None
    return (
        f"{RESULT_FILE} holds another config's result, not ranked "
        f"({identity_diff(record.identity_config, job.identity_config)}); re-run the sweep "
        "with experiment.on_mismatch=rerun to train the planned config"
    )


def _read_items(job_dir: Path, metric: str, value: float) -> tuple[dict | None, str | None]:
    """The run's per-item scores of the metric (None: it left none) or, when its scores file
    is malformed, why."""
    try:
        return read_metric_items(job_dir, metric, value), None
    except DataError as exc:
        return None, f"malformed per-item scores: {exc}"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
