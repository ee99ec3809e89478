"""The training record: what a run's training measured, kept on disk before scoring and export.

Training's measures (the last train loss, val/*, tokens, seconds) live in the Trainer's memory
only; a run killed while it scores or exports (kill -9, a full disk) would lose them, and its
re-run, which resumes from last.ckpt at the final step and trains nothing, would have none to
record. So `<run dir>/trained.json` (records.TRAINING_RECORD) is written as soon as training
ends, carrying the run's identity and step, and a run that trained nothing reads it back: its
record then equals the one an uninterrupted run would have written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evsys.records import TRAINING_RECORD, write_json_atomic

log = logging.getLogger("evsys")


@dataclass(frozen=True)
class Trained:
    """What training measured, up to `step` (the optimizer step it ended at)."""

    step: int
    metrics: dict[str, float]  # the last train/loss and val/* Lightning saw
    tokens: int  # training tokens (non-padding, every rank)
    seconds: float  # seconds spent in training steps
    timings: dict[str, float] = field(default_factory=dict)  # setup, train seconds


def kept_measures(run_dir: Path, measured: Trained, identity: dict, resumed_from: int | None):
    """The measures the run's record is to hold: `measured` when this run trained (written to
    the training record first), else those an earlier run of this config recorded at the step
    training ended at (its run was killed after training). With none on disk (a run of an older
    evsys, or one killed in the moment between its last checkpoint and the record), says so."""
    path = Path(run_dir) / TRAINING_RECORD
    if resumed_from != measured.step:  # this run trained: its measures are the ones to keep
        record = {"identity": identity["identity"], **asdict(measured)}
        write_json_atomic(path, record)
        return measured
    earlier = _read(path, identity, measured.step)
    if earlier is None:
        log.warning(
            "training had ended at step %d, but %s holds no measures of it for this config: "
            "the record lacks the train and validation metrics", measured.step, path,
        )  # fmt: skip
        return measured
    log.info("training had ended at step %d: its measures are read from %s", earlier.step, path)
    return earlier


def _read(path: Path, identity: dict, step: int) -> Trained | None:
    """The training record at `path` when it is this config's at `step`, else None."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("identity") != identity["identity"] or stored.get("step") != step:
            return None
        return Trained(
            step=int(stored["step"]),
            metrics={str(k): float(v) for k, v in stored["metrics"].items()},
            tokens=int(stored["tokens"]),
            seconds=float(stored["seconds"]),
            timings={str(k): float(v) for k, v in stored.get("timings", {}).items()},
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        log.warning("cannot read the training record %s (%s): not used", path, error)
        return None
