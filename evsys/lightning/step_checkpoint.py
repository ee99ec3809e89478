"""The run's checkpoint callback: Lightning's ModelCheckpoint, with the step's scalars written
to the log before the step's checkpoint.

Lightning saves a train step's checkpoint in `on_train_batch_end`, before it logs that step's
metrics. A run killed between the two resumes after a step whose scalars were never written:
a hole in its TensorBoard curves. Writing the step's metrics first closes that window; the
logger drops the identical second write (RunLogger.log_metrics)."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._in_train_batch_end = False

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._in_train_batch_end = True
        try:
            super().on_train_batch_end(trainer, *args, **kwargs)
        finally:
            self._in_train_batch_end = False

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if self._in_train_batch_end:
            # Lightning's own "log this step now" (it flushes the loggers); no public hook
            # runs between the step's logging and the next batch.
            trainer._logger_connector.update_train_step_metrics()
        super()._save_checkpoint(trainer, filepath)
