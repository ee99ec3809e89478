"""run_experiment: one arm from config to record — data, model, training, scoring, export.

The record's lifecycle lives here: created `running`, filled by the training (evsys/run/fit.py)
or by a continual chain (evsys/run/continual.py), and written `completed` or `failed`, last
and atomically, to the job dir (evsys/records.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shlex
import traceback
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from evsys.algorithms import algorithm_module_class
from evsys.data.mixture import dataset_names
from evsys.data.prepare import check_source
from evsys.errors import DirInUse
from evsys.evaluation.base import harness_settings
from evsys.evaluation.names import check_benchmark_names
from evsys.init_from import resolve_init_from
from evsys.locks import dir_lock
from evsys.metric_names import check_record
from evsys.models import count_parameters, export_model, load_tokenizer
from evsys.records import CHECKPOINT, ArmResult, group_id, record_path
from evsys.run.claim import OtherConfigsResults, claim_dir
from evsys.run.fit import (
    final_metrics,
    fit,
    flat_hparams,
    is_global_zero,
    job_identity,
    quiet_libraries,
    timed,
    write_table_row,
)
from evsys.run.progress import ensure_log_handler, summary_line, sweep_position
from evsys.run.ranks import end_process_group
from evsys.run.tensorboard import relative_log_dir
from evsys.validate import success_metric, validate_run_config

log = logging.getLogger("evsys")


def run_experiment(cfg: DictConfig, job_dir: str | Path | None = None) -> ArmResult:
    """Train and score one arm (one RunConfig); always returns its record (status completed or
    failed), with no experiment bookkeeping.

    The record is written to the job dir last, atomically. Failures are recorded, not
    raised, so one arm never takes a sweep down.
    """
    ensure_log_handler()
    job_dir = Path(job_dir or _default_job_dir(cfg))
    job_dir.mkdir(parents=True, exist_ok=True)
    record = _new_record(cfg)
    if position := sweep_position(job_dir):
        log.info("arm %s seed %s: %s", record.arm, record.seed, position)
    try:
        # One process per job dir: a second run into it is refused, not mixed in.
        with dir_lock(job_dir, "run") if is_global_zero() else contextlib.nullcontext():
            try:
                _run(cfg, job_dir, record)
            finally:
                end_process_group()
    except (DirInUse, OtherConfigsResults) as error:
        _failed(record, error)
        record.traceback = None  # a refusal, not a crash; and no record of it is written
        record.dir = str(job_dir)
        return record  # the dir is another run's or config's: its record is not ours to write
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C (Lightning turns it into exit 1)
        _interrupted(record, job_dir)
        raise
    record.finished_at = _now()
    if is_global_zero():
        _save(record, job_dir)
        if record.completed:
            log.info(summary_line(record))
    record.dir = str(job_dir)
    return record


def _save(record: ArmResult, job_dir: Path) -> None:
    """Write the record; when even that fails (a full disk), say where and how the arm ended:
    the sweep then reports the arm missing and a re-run resumes it."""
    try:
        record.save(job_dir)
    except OSError as error:
        log.error(
            "cannot write the record %s (%s); arm %s seed %s ended %s%s",
            record_path(job_dir), error, record.arm, record.seed, record.status,
            f": {record.error}" if record.error else "",
        )  # fmt: skip


def _run(cfg: DictConfig, job_dir: Path, record: ArmResult) -> None:
    try:
        cfg = validate_run_config(cfg)
        record.success_metric = success_metric(cfg)["name"]
        identity = job_identity(cfg)
        record.identity, record.identity_config = identity["identity"], identity["config"]
        claim_dir(cfg, job_dir, identity, mover=is_global_zero())
        with quiet_libraries():
            if cfg.experiment.continual.datasets is not None:
                from evsys.run.continual import run_chain  # a chain of stages, each one fit

                run_chain(cfg, job_dir, record)
            else:
                _train_and_score(cfg, job_dir, record, identity)
        record.status = "completed" if not record.error else "failed"
        if is_global_zero():  # (ranks > 0 hold no metrics)
            check_record(cfg, record)  # against the metrics the plan expected (metric_names)
    except OtherConfigsResults:
        raise  # another config's results: this job writes no record over them
    except Exception as error:  # noqa: BLE001 - every failure becomes the arm's record
        _failed(record, error)


def _failed(record: ArmResult, error: BaseException) -> None:
    record.status = "failed"
    record.error = f"{type(error).__name__}: {error}"
    record.traceback = traceback.format_exc()
    log.error("arm %s (seed %s) failed: %s", record.arm, record.seed, record.error)


def _interrupted(record: ArmResult, job_dir: Path) -> None:
    """No record is written (the job stays pending); say what stopped and how to go on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    log.error("interrupted: arm %s (seed %s) in %s", record.arm, record.seed, job_dir)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN:
        command = ["python", "-m", "evsys.train", *record.overrides, f"hydra.run.dir={job_dir}"]
        log.error("resume it from its last checkpoint with:\n  %s", shlex.join(command))


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
        placement=_placement(),
    )


def _check_inputs(cfg: DictConfig) -> None:
    """Data and benchmarks resolve, before any model is built."""
    check_source(cfg.data, algorithm_module_class(cfg.algorithm.kind).example_format)
    benchmarks = [str(b) for b in cfg.eval.benchmarks]
    check_benchmark_names(benchmarks, dataset_names(cfg.data), harness_settings(cfg))


def _train_and_score(cfg: DictConfig, job_dir: Path, record: ArmResult, identity: dict) -> None:
    timings: dict[str, float] = {}
    with timed(timings, "setup"):
        record.group_id = group_id(cfg)
        record.hparams = flat_hparams(cfg)
        _check_inputs(cfg)
        if cfg.backend.num_threads:
            torch.set_num_threads(cfg.backend.num_threads)
        if record.placement is not None:
            record.placement["torch_threads"] = torch.get_num_threads()
        # `parent` becomes the parent experiment's best export before anything is loaded.
        cfg.model.init_from = resolve_init_from(cfg)
        tokenizer = load_tokenizer(cfg.model)
    with timed(timings, "train"):
        fitted = fit(cfg, job_dir, tokenizer, identity=identity)
    record.resumed_from_step = fitted.resumed_from_step
    log.info(
        "arm %s seed %s: %s parameters, %d training rows -> %s",
        record.arm, record.seed, f"{count_parameters(fitted.module.model):,}",
        len(fitted.data.train_rows), job_dir,
    )  # fmt: skip
    if not fitted.trainer.is_global_zero:
        return
    with timed(timings, "eval"):
        # A benchmark failing after training costs its own scores only: the model, the
        # checkpoint and every other metric are kept, and the record says what failed.
        metrics = final_metrics(fitted, cfg, job_dir, record.benchmark_errors)
    if record.benchmark_errors:
        failed = "; ".join(f"{k}: {v}" for k, v in record.benchmark_errors.items())
        record.error = f"benchmarks failed after training (the model is kept): {failed}"
    model = fitted.module.model
    export_dir = export_model(model, tokenizer, job_dir / "model", cfg.model.lora.export)
    write_table_row(fitted.trainer.logger, cfg, job_dir, metrics)
    record.metrics = metrics
    record.throughput = {
        "tokens_per_second": round(fitted.throughput.tokens_per_second, 1),
        "train_tokens": fitted.throughput.tokens,
    }
    timings["total"] = sum(timings.values())
    record.timings = {k: round(v, 3) for k, v in timings.items()}
    record.artifacts = {
        "model": str(export_dir.relative_to(job_dir)),
        "checkpoint": str(CHECKPOINT),
        "tensorboard": relative_log_dir(job_dir),
    }


def _default_job_dir(cfg: DictConfig) -> Path:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
    root = OmegaConf.select(cfg, "experiment.stores.outputs_root", default="outputs")
    return Path(root) / "runs" / f"{stamp}_{cfg.get('arm', 'default')}_seed{cfg.get('seed', 0)}"


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _placement() -> dict | None:
    """The GPUs or CPU threads a launcher gave this job (evsys/sweep/local_launcher.py)."""
    placement = os.environ.get("EVSYS_PLACEMENT")
    return json.loads(placement) if placement else None


def _requeues() -> int:
    """How many times SLURM requeued this job (preemption, timeout, scontrol requeue)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", 0))


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
