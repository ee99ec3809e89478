"""Trainer callbacks: token throughput, a step progress bar for terminals, and progress lines
for logs, notebooks and pipes."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger("evsys")


class ThroughputMonitor(L.Callback):
    """Counts non-padding training tokens and the seconds spent in training steps."""

    def __init__(self) -> None:
        self.tokens = 0
        self.seconds = 0.0
        self._window_tokens = 0
        self._window_seconds = 0.0
        self._batch_started = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        elapsed = time.perf_counter() - self._batch_started
        tokens = int(batch["num_tokens"]) * trainer.world_size
        self.tokens += tokens
        self.seconds += elapsed
        self._window_tokens += tokens
        self._window_seconds += elapsed
        if trainer.global_step % trainer.log_every_n_steps == 0 and self._window_seconds > 0:
            rate = self._window_tokens / self._window_seconds
            pl_module.log("train/tokens_per_second", rate, on_step=True, on_epoch=False)
            self._window_tokens, self._window_seconds = 0, 0.0


# What a progress report shows, under the names it shows them by.
PROGRESS_METRICS = {
    "train/loss": "loss",
    "val/loss": "val_loss",
    "train/tokens_per_second": "tok/s",
}


def progress_metrics(trainer) -> dict[str, str]:
    metrics = trainer.callback_metrics
    return {
        short: f"{float(metrics[key]):.4g}"
        for key, short in PROGRESS_METRICS.items()
        if key in metrics
    }


class StepProgressBar(TQDMProgressBar):
    """One bar for the whole run in optimizer steps (`lr_3e-3 seed 0 step 60/180`), with loss and
    tokens/s; Lightning's own bar counts batches per epoch, and with max_epochs=-1 (training
    is bounded by steps) it reads `Epoch 0/-2`. No validation bar (the validation loss shows
    in this one), and a log line while the bar shows is printed above it, not into it."""

    # `lr_3e-3 seed 0 step 60/180 |███   | 00:04<00:08, 15.2step/s, loss=0.41, tok/s=5.2e+04`
    STEP_BAR_FORMAT = (
        "{desc} step {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}, {rate_fmt}{postfix}"
    )

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self._total: int | None = None
        self._log_above_bar = contextlib.ExitStack()

    @property
    def train_description(self) -> str:
        return self.label

    def init_train_tqdm(self) -> Tqdm:
        # Made with its total and unit: no `Training: 0/?` frame drawn before the reset.
        return Tqdm(
            desc=self.train_description,
            total=self._total,
            unit="step",
            position=(2 * self.process_position),
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.STEP_BAR_FORMAT,
        )

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)  # a bar per validation only flashes across the screen

    def on_train_start(self, trainer, *_) -> None:
        self._total = trainer.max_steps
        self.train_progress_bar = self.init_train_tqdm()
        # Console log handlers write through tqdm while the bar shows (evsys's and Hydra's).
        loggers = [logging.getLogger(), logging.getLogger("evsys")]
        self._log_above_bar.enter_context(logging_redirect_tqdm(loggers))

    def on_train_end(self, *args) -> None:
        super().on_train_end(*args)
        self._log_above_bar.close()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._log_above_bar.close()  # also when training stopped on an error
        super().teardown(trainer, pl_module, stage)

    def on_train_epoch_start(self, trainer, *_) -> None:
        pass  # one bar across epochs

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable and trainer.global_step != bar.n:
            bar.n = trainer.global_step
            bar.set_postfix(progress_metrics(trainer), refresh=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pass

    def get_metrics(self, trainer, pl_module) -> dict:
        return progress_metrics(trainer)


class LineProgress(L.Callback):
    """A progress line every tenth of training, for SLURM and CI logs, notebooks and pipes,
    where bars are noise: `[lr_3e-3 seed 0] step 60/180  loss=0.41  tok/s=5.2e+04`."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._last_reported = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, trainer.max_steps
        every = max(1, total // 10)
        if step == self._last_reported or (step % every and step != total):
            return
        if not trainer.is_global_zero:
            return  # every rank of a multi-process arm trains the same steps: one reports them
        self._last_reported = step
        parts = [f"{self.label} step {step}/{total}"]
        parts += [f"{name}={value}" for name, value in progress_metrics(trainer).items()]
        log.info("  ".join(parts))


class BenchmarkScoring(L.Callback):
    """Scores benchmarks every N optimizer steps during training, logged to TensorBoard at that
    step (validation.benchmarks_every_n_steps). The last step is left to post-training scoring,
    which logs the same names there.

    `score(model, tokenizer, held_out)` returns the scores by metric key; `held_out` is the
    data module's eval split of each dataset trained on. The caller (evsys/run/) says what is
    scored, so this module needs nothing of evsys/evaluation/."""

    def __init__(self, score: Callable[..., dict[str, float]], every_n_steps: int) -> None:
        self.score = score
        self.every_n_steps = every_n_steps
        self._last_scored = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        due = step % self.every_n_steps == 0 and step not in (0, trainer.max_steps)
        if not due or step == self._last_scored or not trainer.is_global_zero:
            return
        self._last_scored = step
        started = time.perf_counter()
        scores = self.score(pl_module.model, pl_module.tokenizer, trainer.datamodule.held_out)
        for logger in trainer.loggers:  # TensorBoard, and a tracker beside it (logger=...)
            logger.log_metrics(scores, step=step)
        log.info("step %d benchmarks (%.1fs): %s", step, time.perf_counter() - started, scores)
