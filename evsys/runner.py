"""run_experiment: one arm from config to record — data, model, training, scoring, export."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from evsys.config import validate_run_config
from evsys.data.mixture import dataset_names
from evsys.data.sources import check_source
from evsys.evaluation.benchmarks import (
    check_benchmark_names,
    evaluate_configured,
    harness_settings,
)
from evsys.lightning import algorithm_module_class
from evsys.lightning.callbacks import BenchmarkScoring, LineProgress, ThroughputMonitor
from evsys.lightning.checkpoint_io import AtomicCheckpointIO
from evsys.lightning.datamodule import PostTrainingDataModule
from evsys.models import (
    count_parameters,
    export_model,
    load_model,
    load_tokenizer,
    resolve_init_from,
)
from evsys.results import ArmResult

log = logging.getLogger("evsys")

CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Keys that say where or which replicate, not what is trained: left out of group_id.
NOT_IN_GROUP = ("seed", "arm", "tags", "experiment", "hydra")


def run_experiment(cfg: DictConfig, job_dir: str | Path | None = None) -> ArmResult:
    """Train and score one arm; always returns its record (status completed or failed).

    The record is written to `<job_dir>/result.json` last, atomically. Failures are recorded,
    not raised, so one arm never takes a sweep down.
    """
    job_dir = Path(job_dir or _default_job_dir(cfg))
    job_dir.mkdir(parents=True, exist_ok=True)
    record = _new_record(cfg)
    try:
        cfg = validate_run_config(cfg)
        if cfg.experiment.continual.datasets is not None:
            from evsys.continual import run_chain  # a chain of stages, each one arm-like run

            run_chain(cfg, job_dir, record)
        else:
            _train_and_score(cfg, job_dir, record)
        record.status = "completed"
    except Exception as error:  # noqa: BLE001 - every failure becomes the arm's record
        record.status = "failed"
        record.error = f"{type(error).__name__}: {error}"
        record.traceback = traceback.format_exc()
        log.error("arm %s (seed %s) failed: %s", record.arm, record.seed, record.error)
    record.finished_at = _now()
    if _is_global_zero():
        record.save(job_dir)
    record.dir = str(job_dir)
    return record


def group_id(cfg: DictConfig) -> str:
    """Stable hash of what is trained: the resolved config minus seed, names and paths."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    identity = {k: v for k, v in container.items() if k not in NOT_IN_GROUP}
    continual = (container.get("experiment") or {}).get("continual") or {}
    if continual.get("datasets") is not None:  # the chain is what is trained, not bookkeeping
        identity["continual"] = continual
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _new_record(cfg: DictConfig) -> ArmResult:
    experiment = cfg.get("experiment") or {}
    return ArmResult(
        arm=str(cfg.get("arm", "default")),
        seed=int(cfg.get("seed", 0)),
        status="running",
        experiment=str(experiment.get("name", "")),
        experiment_id=experiment.get("id"),
        overrides=_job_overrides(),
        requeues=_requeues(),
        started_at=_now(),
    )


def _quiet_libraries() -> None:
    """Keep the log about the experiment: no banners, tips or per-file progress bars."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    # On a machine with SLURM installed, Lightning warns about every run not started by srun;
    # evsys jobs on SLURM are launched by submitit, so the hint is wrong for them.
    warnings.filterwarnings("ignore", message="The `srun` command is available")
    # Lightning 2.6 on torch >= 2.10 builds a deprecated LeafSpec every step; nothing to act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _train_and_score(cfg: DictConfig, job_dir: Path, record: ArmResult) -> None:
    _quiet_libraries()
    timings: dict[str, float] = {}
    with _timed(timings, "setup"):
        record.group_id = group_id(cfg)
        record.hparams = _flat_hparams(cfg)
        check_source(cfg.data, algorithm_module_class(cfg.algorithm.kind).example_format)
        benchmarks = [str(b) for b in cfg.eval.benchmarks]
        check_benchmark_names(benchmarks, dataset_names(cfg.data), harness_settings(cfg))
        if cfg.backend.num_threads:
            torch.set_num_threads(cfg.backend.num_threads)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        # `parent` becomes the parent experiment's best export before anything is loaded.
        cfg.model.init_from = resolve_init_from(cfg)
        tokenizer = load_tokenizer(cfg.model)
        algorithm_class = algorithm_module_class(cfg.algorithm.kind)
        data = PostTrainingDataModule(cfg, tokenizer, algorithm_class)
        data.prepare()
        model = load_model(cfg.model, tokenizer)
        module = algorithm_class(model, tokenizer, cfg.algorithm)
        throughput = ThroughputMonitor()
        trainer = _build_trainer(cfg, job_dir, throughput)
        log.info(
            "arm %s seed %s: %s parameters, %d training rows -> %s",
            record.arm, record.seed, f"{count_parameters(model):,}", len(data.train_rows), job_dir,
        )  # fmt: skip
    with _timed(timings, "train"):
        resume = job_dir / CHECKPOINT
        if resume.exists():
            record.resumed_from_step = _checkpoint_step(resume)
            log.info("resuming from %s (step %d)", resume, record.resumed_from_step)
        trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume.exists() else None)
    if not trainer.is_global_zero:
        return
    with _timed(timings, "eval"):
        held_out = data.held_out  # each dataset's eval split (every mixture component's)
        metrics = _final_metrics(trainer, cfg, module.model, tokenizer, held_out)
    export_dir = export_model(module.model, tokenizer, job_dir / "model", cfg.model.lora.export)
    _write_hparams(trainer.logger, record.hparams, metrics)
    record.metrics = metrics
    record.throughput = {
        "tokens_per_second": round(throughput.tokens_per_second, 1),
        "train_tokens": throughput.tokens,
    }
    timings["total"] = sum(timings.values())
    record.timings = {k: round(v, 3) for k, v in timings.items()}
    record.artifacts = {
        "model": str(export_dir.relative_to(job_dir)),
        "checkpoint": str(CHECKPOINT),
        "tensorboard": "tensorboard",
    }


def _build_trainer(
    cfg: DictConfig,
    job_dir: Path,
    throughput: ThroughputMonitor,
    logger: TensorBoardLogger | None = None,  # continual stages share one run across stages
) -> L.Trainer:
    algorithm, backend, validation = cfg.algorithm, cfg.backend, cfg.validation
    accumulate = algorithm.accumulate_grad_batches
    checkpoint = ModelCheckpoint(
        dirpath=job_dir / CHECKPOINT.parent,
        save_last=True,
        save_top_k=0,
        every_n_train_steps=max(1, min(cfg.checkpoint_every_n_steps, algorithm.max_steps)),
    )
    interactive = sys.stdout.isatty()
    progress = RichProgressBar() if interactive else LineProgress(f"[{cfg.arm} seed {cfg.seed}]")
    return L.Trainer(
        accelerator=backend.accelerator,
        devices=backend.devices,
        num_nodes=backend.num_nodes,
        strategy=backend.strategy,
        precision=backend.precision,
        max_steps=algorithm.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=algorithm.grad_clip or None,
        val_check_interval=validation.every_n_steps * accumulate,
        check_val_every_n_epoch=None,
        limit_val_batches=validation.num_batches if validation.enabled else 0,
        num_sanity_val_steps=0,
        logger=logger
        or TensorBoardLogger(
            save_dir=str(job_dir), name="tensorboard", version="", default_hp_metric=False
        ),
        callbacks=[checkpoint, throughput, progress, *_benchmark_scoring(cfg)],
        plugins=[AtomicCheckpointIO(), *_slurm_plugins()],
        enable_progress_bar=interactive,
        log_every_n_steps=cfg.log_every_n_steps,
        enable_model_summary=False,
        default_root_dir=str(job_dir),
    )


def _benchmark_scoring(cfg: DictConfig) -> list[BenchmarkScoring]:
    """Benchmarks scored during training too, when validation.benchmarks_every_n_steps asks."""
    every = cfg.validation.benchmarks_every_n_steps
    names = cfg.validation.benchmarks
    names = [str(b) for b in (cfg.eval.benchmarks if names is None else names)]
    return [BenchmarkScoring(cfg, names, every)] if every > 0 and names else []


def _final_metrics(
    trainer: L.Trainer, cfg: DictConfig, model, tokenizer, held_out: dict[str, list[dict]]
) -> dict[str, float]:
    metrics = {
        key: round(float(value), 6)
        for key, value in trainer.callback_metrics.items()
        if key.startswith(("train/loss", "val/"))
    }
    benchmarks = [str(b) for b in cfg.eval.benchmarks]
    scores = evaluate_configured(model, tokenizer, benchmarks, cfg, held_out)
    metrics.update(scores)
    for key, value in scores.items():
        trainer.logger.experiment.add_scalar(key, value, trainer.global_step)
    return metrics


def _checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def _write_hparams(logger: TensorBoardLogger, hparams: dict, metrics: dict) -> None:
    """One HParams-table row for this arm; its metric columns read the scalars already logged."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    writer = logger.experiment
    file_writer = writer._get_file_writer()  # reopens the event file if Lightning closed it
    for summary in hparams_summary(hparams, metrics):
        file_writer.add_summary(summary)
    writer.flush()


def _flat_hparams(cfg: DictConfig) -> dict:
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
def _timed(timings: dict, name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - started


def _default_job_dir(cfg: DictConfig) -> Path:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    root = OmegaConf.select(cfg, "experiment.stores.outputs_root", default="outputs")
    return Path(root) / "runs" / f"{stamp}_{cfg.get('arm', 'default')}_seed{cfg.get('seed', 0)}"


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _is_global_zero() -> bool:
    """Rank 0 of a distributed arm, as Lightning sees it (it sets the rank when its strategy
    starts; before that it reads RANK, LOCAL_RANK or SLURM_PROCID, so every launcher agrees)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _requeues() -> int:
    """How many times SLURM requeued this job (preemption, timeout, scontrol requeue)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", 0))


def _slurm_plugins() -> list:
    """On SLURM, requeueing is the launcher's (submitit's) job: Lightning's own auto-requeue
    (a SIGUSR1 handler that saves an hpc checkpoint and requeues) is turned off."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
