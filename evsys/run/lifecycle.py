"""ArmRun: one training run of one config in one dir — setup -> train -> score -> export
(what training measured is kept on disk before the final validation and scoring:
evsys/run/trained.py).

A single arm (evsys/run/arm.py) is one ArmRun; a continual chain (evsys/run/continual.py) is
one ArmRun per stage. Each returns an ArmOutcome, from which the arm's record is built once
(evsys/run/arm.py finished_record).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from evsys.algorithms import algorithm_module_class
from evsys.evaluation.scoring import BenchmarkScores, evaluate_configured
from evsys.lightning.callbacks import ThroughputMonitor
from evsys.lightning.datamodule import PostTrainingDataModule
from evsys.lightning.sharding import ShardedStrategy, gathered_model, restore_interrupted_save
from evsys.models import count_parameters, export_model, load_tokenizer
from evsys.records import CHECKPOINT, MODEL_DIR, write_item_scores
from evsys.run.loggers import TrackedSteps
from evsys.run.ranks import other_ranks_run_this_job
from evsys.run.resume import resume_step
from evsys.run.trained import Trained, awaits_validation, kept_measures, train_metrics
from evsys.run.trainer import RunLogger, build_trainer, starting_model

log = logging.getLogger("evsys")


@dataclass(frozen=True)
class Scoring:
    """What a run is scored on after training: benchmark names, the eval splits of datasets
    that are not built-in tasks (None: the run's own data's), and whether a failing benchmark
    is recorded while the others are scored (keep_going) or raised."""

    names: tuple[str, ...]
    held_out: Mapping[str, list[dict]] | None = None
    keep_going: bool = True

    def score(self, model, tokenizer, cfg: DictConfig, own_held_out=None) -> BenchmarkScores:
        """The model's scores with `cfg`'s eval settings; `own_held_out`: the run's eval
        splits, used when this Scoring names none."""
        held_out = dict(self.held_out if self.held_out is not None else own_held_out or {})
        return evaluate_configured(
            model, tokenizer, list(self.names), cfg, held_out, keep_going=self.keep_going
        )


@dataclass(frozen=True)
class ArmOutcome:
    """What a run (or a whole chain of them) hands back; nothing in it is changed later."""

    # the last train loss and val/* Lightning saw, and the algorithm's final_train_metrics
    train_metrics: Mapping[str, float]
    scores: Mapping[str, float]  # eval/<label>/<metric> of the trained model
    items: Mapping[str, list[dict]]  # per-item scores by benchmark label
    benchmark_errors: Mapping[str, str]  # eval/<label> -> error (keep_going)
    tokens: int  # training tokens (non-padding, every rank)
    train_seconds: float  # seconds spent in training steps
    timings: Mapping[str, float]  # setup, train, eval seconds
    artifacts: Mapping[str, str]  # model, checkpoint: paths relative to the arm's dir
    resumed_from_step: int | None  # the step training went on from, None from step 0
    extra_metrics: Mapping[str, float] = field(default_factory=dict)  # a chain's continual/*
    extra_hparams: Mapping[str, str] = field(default_factory=dict)  # a chain's stages
    continual: Mapping | None = None  # a chain's section of the record
    export_error: str | None = None  # why the model or the per-item scores were not written
    parameters: int = 0  # the trained model's (0: not known, a stage finished earlier)
    devices: int = 1  # processes training it, over every node (the trainer's world size)

    @property
    def metrics(self) -> dict[str, float]:
        return {**self.train_metrics, **self.scores, **self.extra_metrics}

    @property
    def throughput(self) -> dict[str, float]:
        seconds = self.train_seconds
        return {
            "tokens_per_second": round(self.tokens / seconds, 1) if seconds else 0.0,
            "train_tokens": self.tokens,
        }


class ArmRun:
    """Train `cfg` in `run_dir`, score the trained model, export it: one run, read top to
    bottom as `setup(); train(); keep_measures(); score(); return export()` (or `run()`).

    Supports: every algorithm kind (evsys/algorithms.py); resuming from
    `<run dir>/checkpoints/last.ckpt` when it was saved with this run's `identity` (refused or
    moved aside otherwise, evsys/run/resume.py); several processes or nodes (rank 0 alone
    scores and exports; the other ranks' `run()` returns None); FSDP (the sharded model is
    gathered on rank 0 before scoring); benchmarks during training
    (validation.benchmarks_every_n_steps); a TensorBoard run shared with other runs, steps
    shifted by `step_offset` (a continual chain's stages).

    Assumptions: `cfg` is validated and final — model.init_from is a directory, hub name or
    None, never `parent` (the caller resolves it and builds a new config; nothing here
    changes `cfg`); the run dir is this run's alone (the arm holds its lock and claimed it);
    the data and benchmarks were checked to resolve before the run was made; torch's threads
    are set (backend.num_threads) by the arm; a fresh module means a fresh optimizer and
    schedule, whatever weights the model starts from.

    `identity`: what its checkpoints carry and resume is checked against (evsys/run/resume.py);
    `log_dir`: its TensorBoard run; `tokenizer`: one already loaded (a chain's), else cfg.model's;
    `tracker`: the MLflow or W&B run beside TensorBoard (evsys/run/loggers.py), or None.
    """

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        *,
        identity: dict,
        log_dir: Path,
        scoring: Scoring,
        tokenizer=None,
        step_offset: int = 0,
        tracker: TrackedSteps | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.identity = cfg, Path(run_dir), identity
        self.log_dir, self.step_offset = log_dir, step_offset
        self.scoring = scoring
        self.tokenizer = tokenizer
        self.tracker = tracker
        self.timings: dict[str, float] = {}

    def run(self) -> ArmOutcome | None:
        """The whole lifecycle: the outcome on rank 0, None on the other ranks."""
        self.setup()
        self.train()
        if not self.trainer.is_global_zero:
            return None  # rank 0 scores and exports; the other ranks are done
        self.keep_measures()
        self.score()
        return self.export()

    # ------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Resume policy, data, model, LightningModule and Trainer; refused before any model
        is built when last.ckpt is another config's."""
        cfg = self.cfg
        with self._timed("setup"):
            if self.tokenizer is None:
                self.tokenizer = load_tokenizer(cfg.model)
            checkpoint = self.run_dir / CHECKPOINT
            restore_interrupted_save(checkpoint)  # backend=fsdp: a kill mid-swap of its dir
            self.resumed_from_step = resume_step(cfg, checkpoint, self.identity)
            L.seed_everything(cfg.seed, workers=True, verbose=False)  # data, then the model
            algorithm_class = algorithm_module_class(cfg.algorithm.kind)
            self.data = PostTrainingDataModule(cfg, self.tokenizer, algorithm_class)
            self.data.prepare()
            self.module = algorithm_class(
                starting_model(cfg, self.tokenizer),
                self.tokenizer,
                cfg.algorithm,
                seed=cfg.seed,
                compile_decoder=bool(cfg.backend.get("compile")),
                max_length=cfg.data.max_length,
            )
            self.throughput = ThroughputMonitor()
            self.logger = RunLogger(self.log_dir, self.step_offset)
            loggers = [self.logger]
            if self.tracker is not None:
                self.tracker.step_offset = self.step_offset
                loggers.append(self.tracker)
            self.trainer = build_trainer(cfg, self.run_dir, self.throughput, loggers, self.identity)

    # ------------------------------------------------------------------------------ train
    def train(self) -> None:
        """Fit, from last.ckpt when resuming; a sharded model is gathered whole on rank 0."""
        checkpoint = None
        if self.resumed_from_step is not None:
            checkpoint = str(self.run_dir / CHECKPOINT)
            log.info("resuming from %s (step %d)", checkpoint, self.resumed_from_step)
        with self._timed("train"), other_ranks_run_this_job():
            self.trainer.fit(
                self.module, datamodule=self.data, ckpt_path=checkpoint, weights_only=True
            )
            self._finish_final_validation()
        trainer = self.trainer
        if isinstance(trainer.strategy, ShardedStrategy):
            root = trainer.strategy.root_device
            full = gathered_model(self.module.model, trainer.is_global_zero, root)
            if full is not None:  # rank 0 scores and exports one plain model
                self.module.model = full
        log.info(
            "arm %s seed %s: %s parameters, %d training rows -> %s",
            self.cfg.arm, self.cfg.seed, f"{count_parameters(self.module.model):,}",
            len(self.data.train_rows), self.run_dir,
        )  # fmt: skip

    def _finish_final_validation(self) -> None:
        """A run killed during its final validation left training's measures without its
        val/*: validate the trained model again (every rank) rather than train it again."""
        step = self.trainer.global_step
        if self.resumed_from_step == step and awaits_validation(self.run_dir, self.identity, step):
            log.info("step %d's validation was cut short: validating the trained model", step)
            self.trainer.validate(self.module, datamodule=self.data, verbose=False)

    def keep_measures(self) -> None:
        """What training measured, kept in the training record before anything else can fail
        (evsys/run/trained.py); a run that resumed at the end reads an earlier run's instead."""
        measured = Trained(
            step=self.trainer.global_step,
            metrics=train_metrics(self.trainer, self.module),
            tokens=self.throughput.tokens,
            seconds=self.throughput.seconds,
            timings=dict(self.timings),
        )
        self.trained = kept_measures(self.run_dir, measured, self.identity, self.resumed_from_step)
        self.timings.update(self.trained.timings)

    # ------------------------------------------------------------------------------ score
    def score(self) -> None:
        """Every benchmark on the trained model, logged at the last step; with keep_going, a
        benchmark failing after training costs its own scores only."""
        model, held_out = self.module.model, self.data.held_out
        with self._timed("eval"):
            self.scores = self.scoring.score(model, self.tokenizer, self.cfg, held_out)
        self.logger.log_scalars(self.scores.metrics, self.trainer.global_step)
        if self.tracker is not None:
            self.tracker.log_metrics(self.scores.metrics, self.trainer.global_step)

    # ----------------------------------------------------------------------------- export
    def export(self) -> ArmOutcome:
        """The per-item scores and the model in Hugging Face format, into the run dir; when
        they cannot be written (a full disk), the outcome keeps the scores and says why."""
        artifacts, export_error = {"model": MODEL_DIR, "checkpoint": str(CHECKPOINT)}, None
        try:
            write_item_scores(self.run_dir, self.scores.items)
            model, lora_export = self.module.model, self.cfg.model.lora.export
            export_model(model, self.tokenizer, self.run_dir / MODEL_DIR, lora_export)
        except OSError as error:  # each names its file (records.write_atomic, export_model)
            export_error = str(error)
            del artifacts["model"]
        return ArmOutcome(
            train_metrics=self.trained.metrics,
            scores=self.scores.metrics,
            items=self.scores.items,
            benchmark_errors=self.scores.errors,
            tokens=self.trained.tokens,
            train_seconds=self.trained.seconds,
            timings=dict(self.timings),
            artifacts=artifacts,
            resumed_from_step=self.resumed_from_step,
            export_error=export_error,
            parameters=count_parameters(self.module.model),
            devices=self.trainer.world_size,
        )

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started
