"""fit: one training run of one config in one dir — the step an arm and each continual stage share.

data module -> model (seeded) -> the algorithm's LightningModule -> Trainer -> fit, resuming
from `<run dir>/checkpoints/last.ckpt` when it exists. The arm (evsys/run/arm.py) and the
continual chain (evsys/run/continual.py) call it; neither builds a Trainer of its own.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from evsys import records
from evsys.algorithms import algorithm_module_class
from evsys.errors import ConfigError
from evsys.evaluation.scoring import evaluate_configured, scorer
from evsys.lightning.callbacks import (
    BenchmarkScoring,
    LineProgress,
    StepProgressBar,
    ThroughputMonitor,
)
from evsys.lightning.checkpoint_io import AtomicCheckpointIO
from evsys.lightning.datamodule import PostTrainingDataModule
from evsys.lightning.sharding import ShardedStrategy, gathered_model, restore_interrupted_save
from evsys.lightning.step_checkpoint import StepCheckpoint
from evsys.locks import supersede
from evsys.models import load_model
from evsys.records import (
    CHECKPOINT,
    config_identity,
    identity_config,
    identity_diff,
    write_item_scores,
)
from evsys.run.ranks import other_ranks_run_this_job
from evsys.run.tensorboard import (
    differing_keys,
    ordered_metrics,
    run_log_dir,
    success_metric_of,
    table_hparams,
)

log = logging.getLogger("evsys")


@dataclass
class Fitted:
    """What a finished fit hands back: the trained module and what its record needs."""

    trainer: L.Trainer
    module: L.LightningModule
    data: PostTrainingDataModule
    throughput: ThroughputMonitor
    resumed_from_step: int | None


def fit(
    cfg: DictConfig,
    run_dir: Path,
    tokenizer,
    init_from: Path | None = None,
    logger: TensorBoardLogger | None = None,
    identity: dict | None = None,
) -> Fitted:
    """Train `cfg` in `run_dir` from `init_from`'s weights (None: cfg.model's), resuming an
    interrupted run from its last.ckpt when it was saved by the same config (`identity`, see
    job_identity; None: cfg's); a fresh module, so a fresh optimizer and schedule."""
    identity = identity or job_identity(cfg)
    resume = run_dir / CHECKPOINT
    restore_interrupted_save(resume)  # backend=fsdp: a kill mid-swap of its checkpoint dir
    resumed_from_step = resume_step(cfg, resume, identity)  # refused before any model is built
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # data preparation, then the model
    algorithm_class = algorithm_module_class(cfg.algorithm.kind)
    data = PostTrainingDataModule(cfg, tokenizer, algorithm_class)
    data.prepare()
    model = starting_model(cfg, tokenizer, init_from)
    module = algorithm_class(
        model,
        tokenizer,
        cfg.algorithm,
        seed=cfg.seed,
        compile_decoder=bool(cfg.backend.get("compile")),
        max_length=cfg.data.max_length,
    )
    throughput = ThroughputMonitor()
    trainer = build_trainer(cfg, run_dir, throughput, logger, identity)
    if resumed_from_step is not None:
        log.info("resuming from %s (step %d)", resume, resumed_from_step)
    ckpt_path = str(resume) if resumed_from_step is not None else None
    with other_ranks_run_this_job():
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    if isinstance(trainer.strategy, ShardedStrategy):
        full = gathered_model(module.model, trainer.is_global_zero, trainer.strategy.root_device)
        if full is not None:  # rank 0 scores and exports one plain model; the others are done
            module.model = full
    return Fitted(trainer, module, data, throughput, resumed_from_step)


def starting_model(cfg: DictConfig, tokenizer, init_from: Path | None = None):
    """The model a run starts from, seeded so a fresh model is the same every time."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model_cfg = copy.deepcopy(cfg.model)
    if init_from is not None:
        model_cfg.init_from = str(init_from)
    return load_model(model_cfg, tokenizer)


def build_trainer(
    cfg: DictConfig,
    run_dir: Path,
    throughput: ThroughputMonitor,
    logger: TensorBoardLogger | None = None,  # continual stages share one run across stages
    identity: dict | None = None,  # stored in every checkpoint (job_identity)
) -> L.Trainer:
    algorithm, backend, validation = cfg.algorithm, cfg.backend, cfg.validation
    accumulate = algorithm.accumulate_grad_batches
    checkpoint = StepCheckpoint(
        dirpath=run_dir / CHECKPOINT.parent,
        save_last=True,
        save_top_k=0,
        every_n_train_steps=max(1, min(cfg.checkpoint_every_n_steps, algorithm.max_steps)),
    )
    # Arms running side by side (evsys/sweep/local_launcher.py) print lines, not bars.
    interactive = sys.stdout.isatty() and not os.environ.get("EVSYS_PROGRESS_LINES")
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
        logger=logger or run_logger(run_dir),
        callbacks=[checkpoint, throughput, progress, *_benchmark_scoring(cfg)],
        plugins=[AtomicCheckpointIO(identity), *_slurm_plugins()],
        enable_progress_bar=interactive,
        # a run shorter than the logging interval still gets its train loss into TensorBoard
        log_every_n_steps=max(1, min(cfg.log_every_n_steps, algorithm.max_steps)),
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )


def run_logger(run_dir: Path) -> TensorBoardLogger:
    return RunLogger(run_dir)


class RunLogger(TensorBoardLogger):
    """The run's TensorBoard log at run_log_dir (in a sweep: <sweep>/tensorboard/<arm>/seed<n>),
    without Lightning's `epoch` scalar: training is counted in steps (max_epochs is unbounded),
    and the epoch card would open Time Series ahead of the train loss."""

    def __init__(self, run_dir: Path) -> None:
        log_dir = run_log_dir(run_dir)
        super().__init__(
            save_dir=str(log_dir.parent), name=log_dir.name, version="", default_hp_metric=False
        )
        self._last_logged: tuple[int | None, dict] | None = None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        if (step, metrics) == self._last_logged:
            return  # already written before the step's checkpoint (StepCheckpoint)
        self._last_logged = (step, metrics)
        super().log_metrics(metrics, step)


def _benchmark_scoring(cfg: DictConfig) -> list[BenchmarkScoring]:
    """Benchmarks scored during training too, when validation.benchmarks_every_n_steps asks."""
    every = cfg.validation.benchmarks_every_n_steps
    names = cfg.validation.benchmarks
    names = [str(b) for b in (cfg.eval.benchmarks if names is None else names)]
    return [BenchmarkScoring(scorer(cfg, names), every)] if every > 0 and names else []


def train_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The last train loss and validation metrics Lightning saw."""
    return {
        key: round(float(value), 6)
        for key, value in trainer.callback_metrics.items()
        if key.startswith(("train/loss", "val/"))
    }


def final_metrics(
    fitted: Fitted, cfg: DictConfig, run_dir: Path, errors: dict | None = None
) -> dict[str, float]:
    """Train/validation metrics plus every benchmark's scores, logged at the last step; the
    per-item scores go to <run dir>/scores/<label>.jsonl. With `errors`, a failing benchmark
    is recorded there and the others still scored."""
    trainer = fitted.trainer
    metrics = train_metrics(trainer)
    benchmarks = [str(b) for b in cfg.eval.benchmarks]
    held_out = fitted.data.held_out  # each dataset's eval split (every mixture component's)
    items: dict[str, list[dict]] = {}
    model, tokenizer = fitted.module.model, fitted.data.tokenizer
    scores = evaluate_configured(model, tokenizer, benchmarks, cfg, held_out, items, errors)
    write_item_scores(run_dir, items)
    metrics.update(scores)
    for key, value in scores.items():
        trainer.logger.experiment.add_scalar(key, value, trainer.global_step)
    return metrics


def job_identity(cfg: DictConfig) -> dict:
    """What a checkpoint of `cfg` carries: its identity and the config it hashes."""
    config = identity_config(cfg)
    return {"identity": config_identity(config), "config": config}


def resume_step(cfg: DictConfig, path: Path, identity: dict) -> int | None:
    """The step to resume from `path` at, None to train from step 0 (no checkpoint, or one
    unreadable or of another config moved aside with experiment.on_mismatch=rerun); a
    ConfigError naming the file and the ways on when it is unreadable or of another config."""
    if not path.exists():
        return None
    try:
        step, stored = records.read_checkpoint(path)
        unreadable = ""
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
        # The type only: torch's text advises weights_only=False, which runs a planted file.
        step, stored, unreadable = 0, {}, type(error).__name__
    if not unreadable and stored.get("identity") == identity["identity"]:
        return step
    run_dir = path.parent.parent
    if OmegaConf.select(cfg, "experiment.on_mismatch", default="refuse") == "rerun":
        target = supersede(run_dir, [path.parent])
        why = "is unreadable" if unreadable else "was saved by another config"
        log.warning("%s %s: moved to %s", path, why, target)
        return None
    rerun = (
        f"add experiment.on_mismatch=rerun to move it aside into {run_dir}/.superseded/"
        "<timestamp>/ and train from step 0"
    )
    if unreadable:
        raise ConfigError(
            f"cannot read the checkpoint {path} ({unreadable}); it is not loaded (never "
            f"unpickled with code). Delete or move it, or {rerun}, or run into a fresh directory"
        )
    differ = identity_diff(dict(stored.get("config") or {}), identity["config"])
    raise ConfigError(
        f"the checkpoint {path} was saved by another config ({differ}); resuming from it would "
        f"mix two configs. Run into a new directory, or {rerun}"
    )


def write_hparams(
    logger: TensorBoardLogger,
    hparams: dict,
    metrics: dict,
    group: str | None = None,
    differing: tuple[str, ...] = (),
) -> None:
    """One HParams-table row for this run; its metric columns read the scalars already logged,
    in the order of `metrics`. Runs of one `group` (an arm's seeds) are one row of the table,
    their metrics aggregated (mean, min, max, median: TensorBoard's choice). TensorBoard shows
    the `differing` hparams (what the sweep varies) first, the rest after, each by name."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    writer = logger.experiment
    file_writer = writer._get_file_writer()  # reopens the event file if Lightning closed it
    experiment, start, end = hparams_summary(hparams, metrics)
    with _plugin_data(experiment) as content:
        for info in content.experiment.hparam_infos:
            info.differs = info.name in differing
    with _plugin_data(start) as content:
        content.session_start_info.group_name = group or ""
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    writer.flush()


def write_table_row(
    logger: TensorBoardLogger, cfg: DictConfig, run_dir: Path, metrics: dict, extra=None
) -> None:
    """The run's HParams row: what tells its arm apart from the others, and its scores, the
    success metric first; an arm's seeds share a group (evsys/run/tensorboard.py)."""
    row = table_hparams(cfg, run_dir) | (extra or {})
    columns = ordered_metrics(metrics, success_metric_of(run_dir))
    write_hparams(logger, row, columns, str(cfg.get("arm")), differing_keys(run_dir))


@contextlib.contextmanager
def _plugin_data(summary) -> Iterator:
    """The HParams plugin data of a summary torch built, to edit in place."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    plugin_data = summary.value[0].metadata.plugin_data
    content = HParamsPluginData.FromString(plugin_data.content)
    yield content
    plugin_data.content = content.SerializeToString()


def flat_hparams(cfg: DictConfig) -> dict:
    """Scalar config values by dotted key, for the TensorBoard HParams table."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("experiment", None)
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, (int, float, str, bool)) or node is None:
            flat[prefix[:-1]] = "none" if node is None else node
        else:
            flat[prefix[:-1]] = str(node)

    walk(container, "")
    return flat


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep the log about the experiment while training: no banners, tips or per-file progress
    bars. Warning filters, log levels and transformers' progress bar are restored afterwards,
    so a library user's own settings survive a run."""
    import transformers

    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    bars = transformers.utils.logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        # On a machine with SLURM installed, Lightning warns about every run not started by
        # srun; evsys jobs on SLURM are launched by submitit, so the hint is wrong for them.
        warnings.filterwarnings("ignore", message="The `srun` command is available")
        # Lightning 2.6 on torch >= 2.10 builds a deprecated LeafSpec every step.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        transformers.utils.logging.disable_progress_bar()
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
            if bars:
                transformers.utils.logging.enable_progress_bar()


@contextlib.contextmanager
def timed(timings: dict, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - started


def is_global_zero() -> bool:
    """Rank 0 of a distributed arm, as Lightning sees it (it sets the rank when its strategy
    starts; before that it reads RANK, LOCAL_RANK or SLURM_PROCID, so every launcher agrees)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _slurm_plugins() -> list:
    """On SLURM, requeueing is the launcher's (submitit's) job: Lightning's own auto-requeue
    (a SIGUSR1 handler that saves an hpc checkpoint and requeues) is turned off."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
