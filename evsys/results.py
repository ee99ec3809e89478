"""ArmResult / ExperimentResult and their files: `result.json` is the truth about an arm."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evsys.atomic_files import write_atomic

# Overrides a sweep adds to every job for bookkeeping; they say nothing about what an arm trains.
BOOKKEEPING_OVERRIDES = ("arm=", "experiment.id=", "+experiment=", "experiment.dry_run=")

RESULT_FILE = "result.json"


@dataclass
class ArmResult:
    """The record of one arm and seed, as written to its job dir's result.json."""

    arm: str
    seed: int
    status: str  # completed | failed
    group_id: str = ""
    experiment: str = ""
    experiment_id: str | None = None
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    requeues: int = 0
    resumed_from_step: int | None = None  # set when training continued from checkpoints/last.ckpt
    started_at: str | None = None
    finished_at: str | None = None
    continual: dict[str, Any] | None = None
    dir: str | None = None  # where the record lives; not stored in the file

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("dir")
        return record

    def save(self, job_dir: Path) -> Path:
        return write_json_atomic(Path(job_dir) / RESULT_FILE, self.to_dict())

    @classmethod
    def load(cls, job_dir: Path) -> ArmResult:
        record = json.loads((Path(job_dir) / RESULT_FILE).read_text())
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        return cls(**known, dir=str(job_dir))


@dataclass
class ExperimentResult:
    """What `Experiment.run()` returns: every arm's record and the conclusion."""

    name: str
    hypothesis: str
    sweep_dir: Path
    arms: list[ArmResult]
    conclusion: dict[str, Any]

    @property
    def best_arm(self) -> str | None:
        return self.conclusion.get("best_arm")

    @property
    def verdict(self) -> str | None:
        return self.conclusion.get("verdict")

    @property
    def failed(self) -> list[dict]:
        return self.conclusion.get("failed", []) + self.conclusion.get("missing", [])


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write JSON so readers see the old file or the new one, never half of one."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomic(path, lambda out: out.write(text.encode("utf-8")))


def read_completed(job_dir: Path) -> ArmResult | None:
    """The job's record when it completed, else None (absent, failed or unreadable)."""
    try:
        record = ArmResult.load(job_dir)
    except (OSError, ValueError, TypeError):
        return None
    return record if record.completed else None
