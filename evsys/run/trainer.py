"""The Lightning Trainer an ArmRun trains with (evsys/run/lifecycle.py), its TensorBoard
logger and the model a run starts from.

Checkpoints every N steps into `<run dir>/checkpoints/` (last.ckpt, carrying the run's
identity), token throughput, what training measured kept before the final validation
(evsys/run/trained.py), progress as a bar or as lines, benchmarks scored during
training when asked, a stop at the first non-finite loss or gradient norm, and on SLURM no
auto-requeue of Lightning's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig

from evsys.evaluation.scoring import scorer
from evsys.lightning.callbacks import (
    BenchmarkScoring,
    LineProgress,
    StepProgressBar,
    ThroughputMonitor,
)
from evsys.lightning.checkpoint_io import AtomicCheckpointIO
from evsys.lightning.divergence import StopOnDivergence
from evsys.lightning.sharding import ShardedStrategy
from evsys.lightning.step_checkpoint import StepCheckpoint
from evsys.models import load_model
from evsys.records import CHECKPOINT
from evsys.run.progress import jobs_share_terminal
from evsys.run.shifted_steps import ShiftedSteps
from evsys.run.trained import KeepMeasuresBeforeFinalValidation


def build_trainer(
    cfg: DictConfig,
    run_dir: Path,
    throughput: ThroughputMonitor,
    loggers: list[Logger],  # the run's TensorBoard logger first, then a tracker beside it
    identity: dict,  # stored in every checkpoint (evsys/run/resume.py job_identity)
) -> L.Trainer:
    algorithm, backend, validation = cfg.algorithm, cfg.backend, cfg.validation
    accumulate = algorithm.accumulate_grad_batches
    checkpoint = StepCheckpoint(
        dirpath=run_dir / CHECKPOINT.parent,
        save_last=True,
        save_top_k=0,
        every_n_train_steps=max(1, min(cfg.checkpoint_every_n_steps, algorithm.max_steps)),
    )
    # Arms running side by side (evsys's local launcher, Hydra's joblib) print lines, not bars.
    interactive = sys.stdout.isatty() and not jobs_share_terminal()
    label = f"{cfg.arm} seed {cfg.seed}"
    progress = StepProgressBar(label) if interactive else LineProgress(f"[{label}]")
    return L.Trainer(
        accelerator=backend.accelerator,
        devices=backend.devices,
        num_nodes=backend.num_nodes,
        strategy=ShardedStrategy(identity) if backend.strategy == "fsdp" else backend.strategy,
        precision=backend.precision,
        max_steps=algorithm.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=algorithm.grad_clip or None,
        val_check_interval=validation.every_n_steps * accumulate,
        check_val_every_n_epoch=None,
        limit_val_batches=validation.num_batches if validation.enabled else 0,
        num_sanity_val_steps=0,
        logger=loggers,
        callbacks=[
            StopOnDivergence(),
            checkpoint,
            throughput,
            KeepMeasuresBeforeFinalValidation(run_dir, identity, throughput),
            progress,
            *_benchmark_scoring(cfg),
        ],
        plugins=[AtomicCheckpointIO(identity), *_slurm_plugins()],
        enable_progress_bar=interactive,
        # a run shorter than the logging interval still gets its train loss into TensorBoard
        log_every_n_steps=max(1, min(cfg.log_every_n_steps, algorithm.max_steps)),
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )


class RunLogger(ShiftedSteps, TensorBoardLogger):
    """A run's TensorBoard log in `log_dir` (evsys/run/tensorboard.py run_log_dir), with
    evsys's steps (evsys/run/shifted_steps.py): no `epoch` scalar, whose card would open Time
    Series ahead of the train loss, and step s at `step_offset` + s."""

    def __init__(self, log_dir: Path, step_offset: int = 0) -> None:
        super().__init__(
            save_dir=str(log_dir.parent), name=log_dir.name, version="", default_hp_metric=False
        )
        self.step_offset = step_offset

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Scores logged after training (Lightning has closed its writer: this reopens it), at
        `step` + step_offset, written to disk at once."""
        for key, value in scalars.items():
            self.experiment.add_scalar(key, value, step + self.step_offset)
        self.experiment.flush()


def starting_model(cfg: DictConfig, tokenizer):
    """The model a run starts from (cfg.model, from model.init_from's weights when set),
    seeded so a fresh model is the same every time."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return load_model(cfg.model, tokenizer)


def _benchmark_scoring(cfg: DictConfig) -> list[BenchmarkScoring]:
    """Benchmarks scored during training too, when validation.benchmarks_every_n_steps asks."""
    every = cfg.validation.benchmarks_every_n_steps
    names = cfg.validation.benchmarks
    names = [str(b) for b in (cfg.eval.benchmarks if names is None else names)]
    return [BenchmarkScoring(scorer(cfg, names), every)] if every > 0 and names else []


def _slurm_plugins() -> list:
    """On SLURM, requeueing is the launcher's (submitit's) job: Lightning's own auto-requeue
    (a SIGUSR1 handler that saves an hpc checkpoint and requeues) is turned off."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
