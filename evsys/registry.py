"""The experiment registry: one row per experiment in `<outputs_root>/experiments.sqlite`.

It answers "what did I run, where is it, and how did it end?" and lets a follow-up experiment
start from its parent's best model. Many jobs may write at once (local processes, SLURM
tasks), so every call opens its own connection with a 30 s busy timeout, uses WAL mode
(readers never block the writer) and runs a single-statement transaction.

Below everything that reads it (evsys/init_from.py, the sweep, the CLI, evsys.load): it
imports only evsys.errors, evsys.records, evsys.confine, the conclusion's data type and the
stores schema (whose outputs_root default is the registry's default root).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from evsys.conclusion.model import Conclusion
from evsys.config import StoresConfig
from evsys.confine import inside_sweep
from evsys.errors import ExperimentNotFound, RegistryError
from evsys.records import CONCLUSION_FILES, Plan, plan_exists, read_completed, record_path

__all__ = ["ExperimentNotFound", "RegistryError"]  # re-exported: callers catch them here

DB_NAME = "experiments.sqlite"
COLUMNS = (
    "id",
    "name",
    "hypothesis",
    "status",
    "sweep_dir",
    "parent_experiment_id",
    "best_arm",
    "verdict",
    "created_at",
    "finished_at",
    "metadata",  # the experiment's metadata, a JSON object (read back as a dict)
    "device_hours",  # its arms' device-hours summed (evsys/cost.py), set when concluded
)
STATUSES = ("planned", "running", "completed", "failed", "interrupted")
_SCHEMA = """CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hypothesis TEXT, status TEXT NOT NULL,
    sweep_dir TEXT, parent_experiment_id TEXT, best_arm TEXT, verdict TEXT,
    created_at TEXT NOT NULL, finished_at TEXT, metadata TEXT, device_hours REAL)"""


def registry_path(outputs_root: str | Path) -> Path:
    return Path(outputs_root) / DB_NAME


def new_experiment_id(name: str) -> str:
    """A readable unique id: `<name>-<YYYYmmdd-HHMMSS>-<4 hex>`."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"
    return f"{slug}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def check(outputs_root: str | Path) -> None:
    """The registry opens and takes a write: a RegistryError naming its file and the way out
    when it is corrupt or cannot be written, before a sweep makes its dir."""
    with _connect(outputs_root) as conn:
        conn.execute("BEGIN IMMEDIATE")  # the write lock: a read-only file or dir fails here
        conn.execute("ROLLBACK")


@contextmanager
def _connect(outputs_root: str | Path) -> Iterator[sqlite3.Connection]:
    path = registry_path(outputs_root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each statement is its own short transaction
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as error:
        raise RegistryError(_problem(path, error)) from None
    try:
        conn.row_factory = sqlite3.Row
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # persisted in the file
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        _add_new_columns(conn)
        yield conn
    except (OSError, sqlite3.DatabaseError) as error:
        raise RegistryError(_problem(path, error)) from None
    finally:
        conn.close()


def _add_new_columns(conn: sqlite3.Connection) -> None:
    """A registry written by an older evsys gets the columns added since (empty for its rows)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(experiments)")}
    for column in (c for c in COLUMNS if c not in have):
        try:
            conn.execute(f"ALTER TABLE experiments ADD COLUMN {column} TEXT")
        except sqlite3.OperationalError as error:  # another process added it just now
            if "duplicate column" not in str(error):
                raise


def _problem(path: Path, error: Exception) -> str:
    """What is wrong with the registry file and how to go on."""
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
        return (
            f"the experiment registry {path} is corrupt ({error}): move it aside "
            f"(mv {path} {path}.corrupt) and run again; evsys starts a new, empty registry "
            "(sweep dirs and their conclusions are untouched)"
        )
    return (
        f"cannot write the experiment registry {path} ({error}): make {path.parent} "
        "writable, or set experiment.stores.outputs_root to a writable dir"
    )


def register(outputs_root: str | Path, info: dict[str, Any]) -> None:
    """Add an experiment (or refresh it when the id exists, e.g. on resume).

    Keys of `info` that are not registry columns are ignored, so the plan itself may be passed.
    """
    row = {key: info[key] for key in COLUMNS if info.get(key) is not None}
    for key in ("id", "name"):
        if key not in row:
            raise ValueError(f"register needs info[{key!r}]")
    row.setdefault("status", "planned")
    row.setdefault("created_at", _now())
    _check_fields(row)
    names = ", ".join(row)
    refresh = ", ".join(f"{key}=excluded.{key}" for key in row if key not in ("id", "created_at"))
    sql = (
        f"INSERT INTO experiments ({names}) VALUES ({', '.join('?' * len(row))}) "
        f"ON CONFLICT(id) DO UPDATE SET {refresh}"
    )
    with _connect(outputs_root) as conn:
        conn.execute(sql, _values(row))


def update(outputs_root: str | Path, experiment_id: str, **fields: Any) -> None:
    """Set some columns of a registered experiment, e.g. status, best_arm, verdict."""
    if not fields:
        return
    _check_fields(fields)
    if "id" in fields:
        raise ValueError("an experiment's id cannot change")
    assignments = ", ".join(f"{key}=?" for key in fields)
    with _connect(outputs_root) as conn:
        cursor = conn.execute(
            f"UPDATE experiments SET {assignments} WHERE id=?", [*_values(fields), experiment_id]
        )
        if cursor.rowcount == 0:
            raise ExperimentNotFound(_unknown_id_message(conn, outputs_root, experiment_id))


def list_experiments(outputs_root: str | Path) -> list[dict[str, Any]]:
    """Every registered experiment, oldest first; [] when there is no registry yet."""
    if not registry_path(outputs_root).is_file():
        return []
    with _connect(outputs_root) as conn:
        rows = conn.execute("SELECT * FROM experiments ORDER BY created_at, id").fetchall()
    return [_row(row) for row in rows]


def get(outputs_root: str | Path, experiment_id: str) -> dict[str, Any]:
    """One experiment's row; ExperimentNotFound (listing some known ids) when unknown."""
    if not registry_path(outputs_root).is_file():
        raise ExperimentNotFound(f"no registry at {registry_path(outputs_root)}")
    with _connect(outputs_root) as conn:
        row = conn.execute("SELECT * FROM experiments WHERE id=?", [experiment_id]).fetchone()
        if row is None:
            raise ExperimentNotFound(_unknown_id_message(conn, outputs_root, experiment_id))
    return _row(row)


def find(outputs_root: str | Path, wanted: str) -> dict[str, Any]:
    """The row of an experiment named by its id, a unique prefix of it, or `latest` (the most
    recently created); ExperimentNotFound naming the registry, or the matches of an ambiguous
    prefix."""
    rows = list_experiments(outputs_root)
    if not rows:
        where = registry_path(outputs_root).resolve()
        raise ExperimentNotFound(f"no experiments registered in {where}")
    if wanted == "latest":
        return max(rows, key=lambda row: (row["created_at"] or "", row["id"]))
    exact = [row for row in rows if row["id"] == wanted]
    matches = exact or [row for row in rows if row["id"].startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        return get(outputs_root, wanted)  # raises, listing the most recent ids
    ids = ", ".join(row["id"] for row in matches)
    raise ExperimentNotFound(
        f"{wanted!r} matches {len(matches)} experiments in {registry_path(outputs_root)}: "
        f"{ids}; give more of the id"
    )


def locate(wanted: str | Path, outputs_root: str | Path | None = None) -> Path:
    """The sweep dir of an experiment given as a sweep dir, an id, a unique id prefix or
    `latest` (looked up in the registry under `outputs_root`, default_outputs_root() when None);
    ExperimentNotFound saying where it looked."""
    if plan_exists(Path(wanted)):
        return Path(wanted)
    root = default_outputs_root() if outputs_root is None else Path(outputs_root)
    try:
        row = find(root, str(wanted))
    except ExperimentNotFound as error:
        raise ExperimentNotFound(f"{wanted} is not a sweep dir, and {error}") from None
    if not row.get("sweep_dir"):
        raise ExperimentNotFound(
            f"experiment {row['id']} has no sweep dir in {registry_path(root)}"
        )
    return Path(row["sweep_dir"])


def default_outputs_root() -> Path:
    """Where the registry is when no --root is given: experiment.stores.outputs_root's
    default (evsys/config.py: $EVSYS_OUTPUTS_ROOT, else ./outputs)."""
    return Path(
        OmegaConf.to_container(OmegaConf.structured(StoresConfig), resolve=True)["outputs_root"]
    )


def lineage(outputs_root: str | Path, experiment_id: str) -> list[dict[str, Any]]:
    """The experiment, its parent, the parent's parent, ...: rows newest first. A parent that
    is not in this registry ends the chain as {"id": ..., "missing": True}; so does a cycle."""
    chain = [get(outputs_root, experiment_id)]
    seen = {experiment_id}
    while (parent := chain[-1].get("parent_experiment_id")) and parent not in seen:
        seen.add(parent)
        try:
            chain.append(get(outputs_root, parent))
        except ExperimentNotFound:
            chain.append({"id": parent, "missing": True})
            break
    return chain


def best_arm_model_dir(outputs_root: str | Path, experiment_id: str) -> Path:
    """The `model/` export of the experiment's best arm, from its best seed by the metric."""
    sweep_dir = Path(get(outputs_root, experiment_id)["sweep_dir"] or "")
    conclusion_path = sweep_dir / CONCLUSION_FILES[0]
    if not conclusion_path.is_file():
        raise RegistryError(
            f"experiment {experiment_id} has no conclusion ({conclusion_path} is missing); "
            f"build it with: evsys conclude {sweep_dir}"
        )
    conclusion = Conclusion.load(conclusion_path)
    best_arm = conclusion.best_arm
    if not best_arm:
        raise RegistryError(f"experiment {experiment_id} has no best arm: {conclusion.reason}")
    candidates = _model_dirs_best_first(sweep_dir, best_arm)
    for model_dir in candidates:
        if model_dir.is_dir():
            return model_dir
    looked = ", ".join(str(p) for p in candidates) or "no completed run"
    raise RegistryError(
        f"best arm {best_arm} of experiment {experiment_id} has no model export "
        f"(looked in: {looked})"
    )


def _model_dirs_best_first(sweep_dir: Path, arm: str) -> list[Path]:
    """Model export dirs of the arm's completed runs, best metric value first (ties: seed)."""
    plan = Plan.load(sweep_dir)
    sign = 1 if plan.mode == "max" else -1
    runs = []  # (value, seed, job dir, record) of each completed run with a finite value
    for job in plan.planned:
        record = read_completed(sweep_dir / job.dir) if job.arm == arm else None
        record = record if record and job.wrote(record) else None  # not another config's
        value = (record.metrics or {}).get(plan.metric_name) if record else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            runs.append((value, job.seed, sweep_dir / job.dir, record))
    runs.sort(key=lambda run: (-sign * run[0], run[1]))
    # artifacts paths are relative to the job dir, and never lead outside the sweep dir
    return [
        inside_sweep(
            job_dir / (record.artifacts or {}).get("model", "model"),
            sweep_dir,
            f"{record_path(job_dir)}: artifacts.model",
        )
        for _, _, job_dir, record in runs
    ]


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown registry fields {unknown}; the columns are {list(COLUMNS)}")
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {fields['status']!r}")


def _values(fields: dict[str, Any]) -> list[Any]:
    """Column values in order; sweep_dir stored absolute so the registry works from any cwd,
    metadata as JSON text."""
    values = []
    for key, value in fields.items():
        if key == "sweep_dir" and value is not None:
            value = str(Path(value).resolve())
        elif key == "metadata" and value is not None:
            value = json.dumps(value, ensure_ascii=False)  # in the order the file states
        values.append(value)
    return values


def _row(row: sqlite3.Row) -> dict[str, Any]:
    """A registry row as a dict, its metadata as a dict ({} when none was recorded) and its
    device-hours a number."""
    out = dict(row)
    out["metadata"] = json.loads(out.get("metadata") or "{}")
    if out.get("device_hours") is not None:  # a TEXT column in a registry made before it
        out["device_hours"] = float(out["device_hours"])
    return out


def _unknown_id_message(conn: sqlite3.Connection, outputs_root: str | Path, wanted: str) -> str:
    rows = conn.execute("SELECT id FROM experiments ORDER BY created_at DESC LIMIT 5").fetchall()
    known = ", ".join(row[0] for row in rows) or "none, the registry is empty"
    return (
        f"unknown experiment id {wanted!r} in {registry_path(outputs_root)}; "
        f"most recent ids: {known}"
    )


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
