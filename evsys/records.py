"""The on-disk contract of a sweep dir: file names, the plan, the arm records, atomic writes.

    <sweep dir>/experiment.json      the Plan: the experiment and every planned job
    <sweep dir>/<job dir>/result.json the ArmResult of one arm and seed, written last

Every other module reads and writes these files through this one, so their names and keys
live here only (docs/architecture.md lists every file of a sweep dir).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from evsys.choices import SELECTION  # a job's stage (experiment.confirm)
from evsys.confine import inside_sweep
from evsys.errors import NotASweepDir
from evsys.file_fields import checked_fields
from evsys.identity import treatment_arm

PLAN_FILE = "experiment.json"
RESULT_FILE = "result.json"
CHECKPOINT = Path("checkpoints") / "last.ckpt"
LOCK_FILE = ".evsys.lock"  # held (flock) by the sweep or run using the dir
SUPERSEDED = ".superseded"  # <dir>/.superseded/<timestamp>/: old results moved aside, never deleted
SHARDED_CHECKPOINT_META = "meta.pt"  # Lightning's file of a sharded checkpoint's loop state
CHECKPOINT_IDENTITY = "evsys_identity"  # the key of a checkpoint's identity (see config_identity)
CONCLUSION_FILES = ("conclusion.json", "conclusion.md", "conclusion.png")
SCORES_DIR = "scores"  # <run dir>/scores/<benchmark label>.jsonl: one object per scored item
# <run dir>/trained.json: what training measured (train/val metrics, tokens, times), written
# as soon as training ends, before scoring and export: a run killed after it loses none of it
TRAINING_RECORD = "trained.json"
MODEL_DIR = "model"  # <run dir>/model: the run's export in Hugging Face format
# <sweep dir>/search.json: under another sweeper (basic, Optuna), the keys it searches and the
# success metric, written before its first trial so each trial names itself (evsys/run/trial.py)
SEARCH_FILE = "search.json"
MULTIRUN_FILE = "multirun.yaml"  # <sweep dir>/multirun.yaml: the sweep's config, its command line
LAUNCH_FILE = "launch.json"  # <sweep dir>/launch.json: a sweep that refused or crashed says so
SLURM_LOGS_LINK = "slurm"  # <arm dir>/slurm -> the job's submitit folder (logs, pickles)

# Overrides a sweep adds to every job for bookkeeping; they say nothing about what an arm trains.
BOOKKEEPING_OVERRIDES = (
    "arm=", "experiment.id=", "+experiment=", "experiment.dry_run=", "experiment.on_mismatch=",
    "experiment.confirm.stage=", "hydra.",
)  # fmt: skip
# Files are read by the group too: sweeps on shared clusters are read by colleagues.
FILE_MODE = 0o644


# ------------------------------------------------------------------------------ atomic writes
def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write` on a temp file in the same folder, flush it to disk, then rename it, so
    readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)  # mkstemp makes 0600 files
        os.replace(temporary, path)
    except OSError as error:  # a full disk or quota says nothing of which file: name it
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def readable_by_group(directory: Path) -> None:
    """Every file under `directory` gets FILE_MODE: a library that writes through a temp file
    (transformers' safetensors save) leaves 0600 files the group cannot read."""
    for path in Path(directory).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, FILE_MODE)


def write_json_atomic(path: Path, payload: Any) -> Path:
    """JSON with sorted keys, written atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomic(path, lambda out: out.write(text.encode("utf-8")))


# ---------------------------------------------------------------------------------- arm record
@dataclass
class ArmResult:
    """The record of one arm and seed, as written to its job dir's result.json."""

    arm: str
    seed: int
    status: str  # running | completed | failed | diverged (a non-finite loss: no result)
    group_id: str = ""
    identity: str = ""  # config_identity of the job that wrote it (evsys.identity.identity_config)
    identity_config: dict[str, Any] = field(default_factory=dict)
    success_metric: str = ""  # the metric float(record) returns (for Optuna-like sweepers)
    experiment: str = ""
    experiment_id: str | None = None
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # diverged: {quantity: loss | gradient norm, step, value}, the first non-finite one
    divergence: dict[str, Any] | None = None
    traceback: str | None = None
    benchmark_errors: dict[str, str] = field(default_factory=dict)  # eval/<label> -> error
    requeues: int = 0
    resumed_from_step: int | None = None  # set when training continued from checkpoints/last.ckpt
    started_at: str | None = None
    finished_at: str | None = None
    continual: dict[str, Any] | None = None
    placement: dict[str, Any] | None = None  # the GPUs / CPU threads a launcher assigned
    # which code, packages and machine made it (evsys/provenance.py)
    provenance: dict[str, Any] | None = None
    # what it cost: wall time, device-hours, tokens, peak memory, FLOPs (evsys/cost.py)
    cost: dict[str, Any] | None = None
    dir: str | None = None  # where the record lives; not stored in the file

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def stage(self) -> str:
        """SELECTION, or CONFIRMATION for a run of experiment.confirm: its identity says so."""
        return self.identity_config.get("stage", SELECTION)

    def __float__(self) -> float:
        """The success metric's value, NaN when the arm failed or lacks it: what a Hydra
        sweeper that optimises (Optuna) reads from the task's return value."""
        value = self.metrics.get(self.success_metric) if self.completed else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return math.nan

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("dir")
        return record

    def __repr__(self) -> str:  # a few lines, not the whole record (evsys/record_views.py)
        from evsys.record_views import arm_repr

        return arm_repr(self)

    def _repr_html_(self) -> str:
        from evsys.record_views import arm_html

        return arm_html(self)

    def save(self, job_dir: Path) -> Path:
        return write_json_atomic(Path(job_dir) / RESULT_FILE, self.to_dict())

    @classmethod
    def load(cls, job_dir: Path) -> ArmResult:
        """The record in `job_dir`; OSError, ValueError or TypeError when it is absent or
        not a record."""
        path = Path(job_dir) / RESULT_FILE
        record = json.loads(path.read_text(encoding="utf-8"))
        known = checked_fields(cls, record, str(path))  # names the file and the key
        known.pop("dir", None)
        return cls(**known, dir=str(job_dir))


def read_checkpoint(path: Path) -> tuple[int, dict[str, Any]]:
    """The optimizer step a Lightning checkpoint was saved at and the identity it carries
    ({} when none). weights_only: a checkpoint in a copied or shared run dir is not trusted to
    run code. Raises whatever torch raises for a file that is not a checkpoint."""
    import torch  # only when a checkpoint is there to read: reading plans stays light

    if Path(path).is_dir():  # a sharded checkpoint (backend=fsdp): the rest is in meta.pt
        path = Path(path) / SHARDED_CHECKPOINT_META
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["global_step"]), dict(state.get(CHECKPOINT_IDENTITY) or {})


def has_record(job_dir: Path) -> bool:
    return (Path(job_dir) / RESULT_FILE).is_file()


def record_path(job_dir: Path) -> Path:
    return Path(job_dir) / RESULT_FILE


def missing_export(job_dir: Path) -> Path | None:
    """The model dir a completed record lists but the job dir lacks (deleted, or its export was
    killed; an export is renamed into place whole, evsys/models.py export_model), else None."""
    try:
        record = ArmResult.load(job_dir)
    except (OSError, ValueError, TypeError):
        return None
    model = (record.artifacts or {}).get("model")
    if not record.completed or model is None or (Path(job_dir) / model).is_dir():
        return None
    return Path(job_dir) / model


def read_completed(job_dir: Path) -> ArmResult | None:
    """The job's record when it completed, else None (absent, failed or unreadable)."""
    try:
        record = ArmResult.load(job_dir)
    except (OSError, ValueError, TypeError):
        return None
    return record if record.completed else None


# ---------------------------------------------------------------------------- per-item scores
def item_scores_path(run_dir: Path, label: str) -> Path:
    """Where benchmark `label`'s per-item scores of the run in `run_dir` are."""
    return Path(run_dir) / SCORES_DIR / f"{label}.jsonl"


def write_item_scores(run_dir: Path, items: dict[str, list[dict]]) -> None:
    """Each benchmark's per-item scores as scores/<label>.jsonl, one JSON object per line."""
    for label, rows in items.items():
        text = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
        path = item_scores_path(run_dir, label)
        write_atomic(path, lambda out, text=text: out.write(text.encode("utf-8")))


# ------------------------------------------------------------------------------------- the plan
@dataclass
class PlannedJob:
    """One arm x one seed: the Hydra overrides that compose its RunConfig, and its directory."""

    arm: str
    seed: int
    overrides: list[str]
    dir: str
    identity: str = ""  # config_identity of its composed config (set when planned)
    identity_config: dict[str, Any] = field(default_factory=dict)
    stage: str = SELECTION  # or CONFIRMATION: a fresh-seed run of the selected arms

    def to_dict(self) -> dict:
        return asdict(self)

    def wrote(self, record: ArmResult) -> bool:
        """Whether its config wrote `record` (any record, for a job planned without one)."""
        return not self.identity or record.identity == self.identity


@dataclass
class Plan:
    """experiment.json: what the experiment is and every job it planned, before any ran."""

    id: str
    name: str
    success_metric: dict[str, Any]
    planned: list[PlannedJob]
    hypothesis: str = ""
    baseline: str | None = None
    n_repeats: int = 1
    base_seed: int = 0
    parent_experiment_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    outputs_root: str = ""
    created_at: str | None = None
    prediction: dict[str, str] | None = None  # {better, than}: the preregistered direction
    # When the baseline names an arm that matrix axes split: each arm's label -> the label of
    # the baseline in its cell (lo,num_layers=1), so arms are compared within their cell.
    baselines: dict[str, str] | None = None
    # Seeds until decided: the design (looks: seeds per arm at each round) and the rounds so
    # far (per round: seeds, each comparison's status, the arms given more seeds, why).
    adaptive: dict[str, Any] | None = None
    # The winner confirmed on fresh seeds (experiment.confirm): repeats, seeds, and once the
    # selection stage is done the arms it selected (selected, against), or why none could be.
    confirm: dict[str, Any] | None = None
    # which code, packages and machine planned it (evsys/provenance.py); the code's
    # uncommitted diff, when there is one, is <sweep dir>/code.diff
    provenance: dict[str, Any] | None = None

    @property
    def metric_name(self) -> str:
        return self.success_metric["name"]

    @property
    def mode(self) -> str:
        return self.success_metric.get("mode", "max")

    @property
    def min_effect(self) -> float:
        """The smallest difference that counts (never negative)."""
        return max(float(self.success_metric.get("min_effect") or 0.0), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stage(self, stage: str) -> Plan:
        """The plan with only the jobs of `stage` (SELECTION or CONFIRMATION)."""
        return replace(self, planned=[job for job in self.planned if job.stage == stage])

    def compared(self) -> Plan:
        """What the conclusion compares: the selection stage's jobs, each under its arm."""
        return self.stage(SELECTION).by_treatment()

    def by_treatment(self) -> Plan:
        """The plan with each job's arm its treatment (identity.treatment_arm): the data orders
        (data.order_seed) an arm ran on are its replicates, as its seeds are, not arms."""
        jobs = [replace(job, arm=treatment_arm(job.arm)) for job in self.planned]
        baselines = self.baselines and {
            treatment_arm(arm): treatment_arm(baseline) for arm, baseline in self.baselines.items()
        }
        return replace(self, planned=jobs, baselines=baselines)

    def save(self, sweep_dir: Path) -> Path:
        return write_json_atomic(Path(sweep_dir) / PLAN_FILE, self.to_dict())

    @classmethod
    def load(cls, sweep_dir: str | Path) -> Plan:
        """The plan of a sweep dir, or NotASweepDir saying what is wrong with it."""
        path = Path(sweep_dir) / PLAN_FILE
        if not path.is_file():
            raise NotASweepDir(f"{sweep_dir} is not a sweep dir: it has no {PLAN_FILE}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise NotASweepDir(f"{path} is not readable JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("planned"), list):
            raise NotASweepDir(f"{path} has no 'planned' list of jobs")
        try:
            values = checked_fields(cls, {"id": "", "name": "", **raw}, str(path))
            values["planned"] = [
                _planned_job(job, f"{path}: planned[{i}]") for i, job in enumerate(raw["planned"])
            ]
        except ValueError as exc:  # a garbled plan: one line naming the file and the key
            raise NotASweepDir(str(exc)) from None
        if not values["success_metric"].get("name"):
            raise NotASweepDir(f"{path} has no success_metric.name")
        if values["success_metric"].get("mode", "max") not in ("max", "min"):
            raise NotASweepDir(f"{path}: success_metric.mode must be max or min")
        for i, job in enumerate(values["planned"]):  # never a dir outside, e.g. ../../victim
            where = f"{path}: planned[{i}].dir={job.dir!r}"
            inside_sweep(Path(sweep_dir) / job.dir, sweep_dir, where)
        return cls(**values)


def job_dir_name(arm: str, seed: int, stage: str = SELECTION) -> str:
    """A sweep job's dir under the sweep dir (the evsys sweeper's hydra.sweep.subdir)."""
    return f"{arm}_seed{seed}" if stage == SELECTION else f"{stage}_{arm}_seed{seed}"


def _planned_job(job: Any, where: str) -> PlannedJob:
    defaults = {"dir": "", "overrides": []}  # a job is its arm and seed at least
    values = checked_fields(
        PlannedJob, {**defaults, **job} if isinstance(job, dict) else job, where
    )
    stage = values.get("stage", SELECTION)
    values["dir"] = values["dir"] or job_dir_name(values["arm"], values["seed"], stage)
    return PlannedJob(**values)


def plan_exists(sweep_dir: Path) -> bool:
    return (Path(sweep_dir) / PLAN_FILE).is_file()


def existing_plan_id(sweep_dir: Path) -> str | None:
    """The experiment id of a sweep dir planned before, so a re-run keeps its identity."""
    path = Path(sweep_dir) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("id")
    except (OSError, ValueError, AttributeError):
        return None
