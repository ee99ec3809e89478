"""The training record: what a run's training measured, kept on disk before anything can lose it.

Training's measures (the last train loss, val/*, tokens, seconds) live in the Trainer's memory
only. A run killed during its final validation (after its last checkpoint), while it scores or
while it exports (kill -9, SIGTERM, a full disk) would lose them, and its re-run, which resumes
from last.ckpt at the final step and trains nothing, would have none to record. So
`<run dir>/trained.json` (records.TRAINING_RECORD), carrying the run's identity and step, is
written twice: as the final validation starts (what training measured, `validated: false`;
KeepMeasuresBeforeFinalValidation) and as training ends (all of it). A run that trained nothing
reads it back and does only what is missing — the final validation again when the record
awaits it (ArmRun.train) — so its record equals the one an uninterrupted run would have written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import lightning as L

from evsys.lightning.callbacks import ThroughputMonitor
from evsys.records import TRAINING_RECORD, write_json_atomic

log = logging.getLogger("evsys")

VALIDATION = "val/"  # the prefix of what a validation measures


@dataclass(frozen=True)
class Trained:
    """What training measured, up to `step` (the optimizer step it ended at)."""

    step: int
    metrics: dict[str, float]  # the last train/loss and val/* Lightning saw
    tokens: int  # training tokens (non-padding, every rank)
    seconds: float  # seconds spent in training steps
    timings: dict[str, float] = field(default_factory=dict)  # setup, train seconds
    validated: bool = True  # False: written as the final validation started, without its val/*


def train_metrics(trainer: L.Trainer, module) -> dict[str, float]:
    """The last train loss and validation metrics Lightning saw, and what the algorithm's
    module keeps of training (PostTrainingModule.final_train_metrics: GRPO's rewards)."""
    seen = {
        key: value
        for key, value in trainer.callback_metrics.items()
        if key.startswith(("train/loss", VALIDATION))
    }
    metrics = {**seen, **module.final_train_metrics()}
    return {key: round(float(value), 6) for key, value in metrics.items()}


class KeepMeasuresBeforeFinalValidation(L.Callback):
    """Writes what training measured as the validation at the last step starts: a run killed
    during it keeps its train metrics, and its re-run validates again rather than training."""

    def __init__(self, run_dir: Path, identity: dict, throughput: ThroughputMonitor) -> None:
        self.path, self.identity, self.throughput = (
            Path(run_dir) / TRAINING_RECORD,
            identity,
            throughput,
        )

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or not trainer.is_global_zero:
            return  # (a re-run's own validation, ArmRun.train, completes the record instead)
        if trainer.global_step < trainer.max_steps:
            return  # an earlier validation: its val/* are replaced by the final one's
        metrics = train_metrics(trainer, pl_module)
        trained = Trained(
            step=trainer.global_step,
            metrics={k: v for k, v in metrics.items() if not k.startswith(VALIDATION)},
            tokens=self.throughput.tokens,
            seconds=self.throughput.seconds,
            validated=False,
        )
        _write(self.path, trained, self.identity)


def awaits_validation(run_dir: Path, identity: dict, step: int) -> bool:
    """Whether `run_dir`'s training record is this config's at `step` and was written as its
    final validation started, which then never ended (the run was killed during it)."""
    earlier = _read(Path(run_dir) / TRAINING_RECORD, identity, step)
    return earlier is not None and not earlier.validated


def kept_measures(run_dir: Path, measured: Trained, identity: dict, resumed_from: int | None):
    """The measures the run's record is to hold: `measured` when this run trained (written to
    the training record first), else those an earlier run of this config recorded at the step
    training ended at (its run was killed after training), completed by the val/* of
    `measured` when the earlier run was killed during its final validation (this run did that
    validation again). With none on disk (a run of an older evsys, or one killed in the moment
    between its last checkpoint and its final validation), says so."""
    path = Path(run_dir) / TRAINING_RECORD
    if resumed_from != measured.step:  # this run trained: its measures are the ones to keep
        _write(path, measured, identity)
        return measured
    earlier = _read(path, identity, measured.step)
    if earlier is None:
        log.warning(
            "training had ended at step %d, but %s holds no measures of it for this config: "
            "the record lacks the train and validation metrics", measured.step, path,
        )  # fmt: skip
        return measured
    if not earlier.validated:
        validation = {k: v for k, v in measured.metrics.items() if k.startswith(VALIDATION)}
        earlier = replace(earlier, metrics={**earlier.metrics, **validation}, validated=True)
        _write(path, earlier, identity)
    log.info("training had ended at step %d: its measures are read from %s", earlier.step, path)
    return earlier


def _write(path: Path, trained: Trained, identity: dict) -> None:
    write_json_atomic(path, {"identity": identity["identity"], **asdict(trained)})


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
            validated=bool(stored.get("validated", True)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        log.warning("cannot read the training record %s (%s): not used", path, error)
        return None
