"""Trainer callbacks: token throughput, and progress lines for logs that are not a terminal."""

from __future__ import annotations

import logging
import time

import lightning as L

from evsys.evaluation.names import needs_held_out
from evsys.evaluation.scoring import evaluate_configured

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


class LineProgress(L.Callback):
    """A progress line every tenth of training, for SLURM and CI logs where bars are noise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._last_reported = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, trainer.max_steps
        every = max(1, total // 10)
        if step == self._last_reported or (step % every and step != total):
            return
        self._last_reported = step
        metrics = trainer.callback_metrics
        parts = [f"{self.label} step {step}/{total}"]
        for key in ("train/loss", "val/loss", "train/tokens_per_second"):
            if key in metrics:
                parts.append(f"{key}={float(metrics[key]):.4g}")
        log.info("  ".join(parts))


class BenchmarkScoring(L.Callback):
    """Scores benchmarks every N optimizer steps during training, logged to TensorBoard at that
    step (validation.benchmarks_every_n_steps). The last step is left to post-training scoring,
    which logs the same names there."""

    def __init__(self, cfg, names: list[str], every_n_steps: int) -> None:
        self.cfg = cfg
        self.names = names
        self.every_n_steps = every_n_steps
        self._last_scored = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        due = step % self.every_n_steps == 0 and step not in (0, trainer.max_steps)
        if not due or step == self._last_scored or not trainer.is_global_zero:
            return
        self._last_scored = step
        held_out = trainer.datamodule.held_out  # the eval split of each dataset trained on
        # A continual stage has only its own datasets' eval splits at hand.
        names = [n for n in self.names if n in held_out or not needs_held_out(n)]
        started = time.perf_counter()
        model, tokenizer = pl_module.model, pl_module.tokenizer
        scores = evaluate_configured(model, tokenizer, names, self.cfg, held_out)
        trainer.logger.log_metrics(scores, step=step)
        log.info("step %d benchmarks (%.1fs): %s", step, time.perf_counter() - started, scores)
