"""run_experiment: one arm from config to record — data, model, training, scoring, export.

The record's lifecycle lives here: created `running`, then built once from the outcome of the
arm's training — one ArmRun (evsys/run/lifecycle.py), or a continual chain of them
(evsys/run/continual.py) — and written `completed`, `failed` or `diverged`, last and
atomically, to the job dir (evsys/records.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shlex
import traceback
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from evsys import provenance
from evsys.algorithms import algorithm_module_class
from evsys.cost import arm_cost, reset_peak_memory
from evsys.data.mixture import dataset_names
from evsys.data.prepare import check_source
from evsys.errors import DirInUse, Diverged
from evsys.evaluation.base import harness_settings
from evsys.evaluation.names import check_benchmark_names
from evsys.free_text import as_written
from evsys.identity import group_id
from evsys.init_from import resolve_init_from, with_init_from
from evsys.interrupts import interrupt_exit_code, tell
from evsys.locks import dir_lock
from evsys.metric_names import checked_record
from evsys.records import ArmResult, record_path
from evsys.run.claim import OtherConfigsResults, claim_dir
from evsys.run.context import JobContext
from evsys.run.continual import chain_hparams, run_chain
from evsys.run.lifecycle import ArmOutcome, ArmRun, Scoring
from evsys.run.loggers import TrackedSteps, close_tracker, open_tracker
from evsys.run.progress import ensure_log_handler, quiet_libraries, summary_line, sweep_position
from evsys.run.ranks import end_process_group, is_global_zero
from evsys.run.resume import job_identity
from evsys.run.tensorboard import flat_hparams, relative_log_dir, run_log_dir, write_table_row
from evsys.run.trainer import RunLogger
from evsys.validate import success_metric, validate_run_config

log = logging.getLogger("evsys")


def run_experiment(
    cfg: DictConfig, job_dir: str | Path | None = None, context: JobContext | None = None
) -> ArmResult:
    """Train and score one arm (one RunConfig); always returns its record (status completed,
    failed or diverged), with no experiment bookkeeping.

    `context`: the planned job of a sweep this run is (evsys/run/context.py), passed by the
    sweep's task function; None for a run of its own. The record is written to the job dir
    last, atomically. Failures are recorded, not raised, so one arm never takes a sweep down.
    """
    ensure_log_handler()
    job_dir = Path(job_dir or _default_job_dir(cfg))
    job_dir.mkdir(parents=True, exist_ok=True)
    record = _new_record(cfg)
    trackers: list[TrackedSteps] = []  # the run beside TensorBoard, once open (logger=...)
    if position := sweep_position(context):
        log.info("arm %s seed %s: %s", record.arm, record.seed, position)
    try:
        # One process per job dir: a second run into it is refused, not mixed in.
        with dir_lock(job_dir, "run") if is_global_zero() else contextlib.nullcontext():
            try:
                record = _run(cfg, job_dir, record, context, trackers)
            finally:
                end_process_group()
    except (DirInUse, OtherConfigsResults) as error:
        record = _failed(record, error, trace=None)  # a refusal, not a crash
        # The dir is another run's or config's: its record is not ours to write.
        return dataclasses.replace(record, dir=str(job_dir))
    except (KeyboardInterrupt, SystemExit) as error:  # Ctrl-C, SIGTERM (Lightning's exits)
        _interrupted(record, job_dir)
        raise SystemExit(interrupt_exit_code(error)) from None  # 130 or 143, never 0
    record = dataclasses.replace(record, finished_at=_now())
    if is_global_zero():
        _save(record, job_dir)
        if record.completed:
            log.info(summary_line(record))
    for tracker in trackers:  # after the record: a tracker's trouble never costs it
        close_tracker(tracker, record)
    return dataclasses.replace(record, dir=str(job_dir))


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


def _run(
    cfg: DictConfig,
    job_dir: Path,
    record: ArmResult,
    context: JobContext | None,
    trackers: list[TrackedSteps],
) -> ArmResult:
    """The arm's record after training: completed, or failed with what went wrong. The
    tracker it opens (logger=mlflow, wandb) is added to `trackers`, for the caller to close
    with the final record."""
    try:
        cfg = validate_run_config(cfg)
        record = dataclasses.replace(record, success_metric=success_metric(cfg)["name"])
        identity = job_identity(cfg)
        record = dataclasses.replace(
            record, identity=identity["identity"], identity_config=identity["config"]
        )
        claim_dir(cfg, job_dir, identity, mover=is_global_zero())
        record = dataclasses.replace(
            record,
            group_id=group_id(cfg),
            hparams=flat_hparams(cfg) | _chain_hparams(cfg),
            placement=_torch_threads(cfg, record.placement),
        )
        if (tracker := open_tracker(cfg, job_dir, context, record)) is not None:
            trackers.append(tracker)
        reset_peak_memory()
        with quiet_libraries():
            outcome = _train(cfg, job_dir, identity, context, tracker)
        if outcome is None:  # another rank of a multi-process arm: rank 0 records it
            return dataclasses.replace(record, status="completed")
        # checked against the metrics the plan expected of this job (evsys/metric_names.py)
        record = checked_record(cfg, finished_record(record, outcome, job_dir, context))
        _write_table_row(record, cfg, job_dir, context)
        return record
    except OtherConfigsResults:
        raise  # another config's results: this job writes no record over them
    except Diverged as error:
        return _diverged(record, error)
    except Exception as error:  # noqa: BLE001 - every failure becomes the arm's record
        return _failed(record, error, traceback.format_exc())


def _train(
    cfg: DictConfig,
    job_dir: Path,
    identity: dict,
    context: JobContext | None,
    tracker: TrackedSteps | None,
) -> ArmOutcome | None:
    """One ArmRun in the job dir, or a continual chain of them (one per stage)."""
    log_dir = run_log_dir(job_dir, context)
    if cfg.experiment.continual.datasets is not None:
        return run_chain(cfg, job_dir, log_dir, tracker)
    _check_inputs(cfg)
    # `parent` becomes the parent experiment's best export before anything is loaded.
    cfg = with_init_from(cfg, resolve_init_from(cfg))
    scoring = Scoring(tuple(str(b) for b in cfg.eval.benchmarks), keep_going=True)
    return ArmRun(
        cfg, job_dir, identity=identity, log_dir=log_dir, scoring=scoring, tracker=tracker
    ).run()


def finished_record(
    record: ArmResult, outcome: ArmOutcome, job_dir: Path, context: JobContext | None
) -> ArmResult:
    """The arm's record from its outcome — one function for a single arm and a chain. A
    benchmark or the export failing after training fails the arm, keeping the checkpoint and
    every metric measured, and the record says what failed."""
    errors = dict(outcome.benchmark_errors)
    timings = dict(outcome.timings)
    timings["total"] = sum(timings.values())
    error = _after_training_error(errors, outcome.export_error)
    return dataclasses.replace(
        record,
        status="failed" if error else "completed",
        error=error,
        benchmark_errors=errors,
        metrics=outcome.metrics,
        throughput=outcome.throughput,
        timings={key: round(value, 3) for key, value in timings.items()},
        artifacts={**outcome.artifacts, "tensorboard": relative_log_dir(job_dir, context)},
        resumed_from_step=outcome.resumed_from_step,
        continual=dict(outcome.continual) if outcome.continual is not None else None,
        cost=_cost(outcome, timings["total"]),
    )


def _cost(outcome: ArmOutcome, wall_seconds: float) -> dict:
    return arm_cost(
        wall_seconds=wall_seconds,
        devices=outcome.devices,
        tokens=outcome.tokens,
        parameters=outcome.parameters,
    )


def _after_training_error(benchmark_errors: dict[str, str], export_error: str | None) -> str | None:
    """What failed once the model was trained, or None."""
    failed = []
    if benchmark_errors:
        kept = "the model is kept" if export_error is None else "the others are kept"
        listed = "; ".join(f"{key}: {value}" for key, value in benchmark_errors.items())
        failed.append(f"benchmarks failed after training ({kept}): {listed}")
    if export_error is not None:
        failed.append(
            f"export failed after scoring (the metrics are kept; a re-run scores and exports "
            f"again from the last checkpoint): {export_error}"
        )
    return "; ".join(failed) or None


def _write_table_row(
    record: ArmResult, cfg: DictConfig, job_dir: Path, context: JobContext | None
) -> None:
    """The arm's row of the TensorBoard HParams table, from its record."""
    logger = RunLogger(run_log_dir(job_dir, context))
    write_table_row(logger, cfg, context, record.metrics, _chain_hparams(cfg))
    logger.finalize("success")


def _chain_hparams(cfg: DictConfig) -> dict:
    return chain_hparams(cfg) if cfg.experiment.continual.datasets is not None else {}


def _torch_threads(cfg: DictConfig, placement: dict | None) -> dict | None:
    """Use backend.num_threads; the placement a launcher gave says how many torch uses."""
    if cfg.backend.num_threads:
        torch.set_num_threads(cfg.backend.num_threads)
    return None if placement is None else placement | {"torch_threads": torch.get_num_threads()}


def _failed(record: ArmResult, error: BaseException, trace: str | None) -> ArmResult:
    record = dataclasses.replace(
        record, status="failed", error=f"{type(error).__name__}: {error}", traceback=trace
    )
    log.error("arm %s (seed %s) failed: %s", record.arm, record.seed, record.error)
    return record


def _diverged(record: ArmResult, error: Diverged) -> ArmResult:
    """Not a result: nothing is scored or exported (nan weights score 0 on everything, and an
    export of them is a trap); the checkpoints stay, to look at what went wrong."""
    record = dataclasses.replace(
        record,
        status="diverged",
        error=f"diverged: {error}",
        divergence={"quantity": error.quantity, "step": error.step, "value": str(error.value)},
    )
    log.error("arm %s (seed %s) %s", record.arm, record.seed, record.error)
    return record


def _interrupted(record: ArmResult, job_dir: Path) -> None:
    """No record is written (the job stays pending); say what stopped and how to go on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    log.error("interrupted: arm %s (seed %s) in %s", record.arm, record.seed, job_dir)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN:
        command = ["python", "-m", "evsys.train", *record.overrides, f"hydra.run.dir={job_dir}"]
        tell(log, f"resume it from its last checkpoint with:\n  {shlex.join(command)}")


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
        provenance=provenance.collect(),
    )


def _check_inputs(cfg: DictConfig) -> None:
    """Data and benchmarks resolve, before any model is built."""
    check_source(cfg.data, algorithm_module_class(cfg.algorithm.kind).example_format)
    benchmarks = [str(b) for b in cfg.eval.benchmarks]
    check_benchmark_names(benchmarks, dataset_names(cfg.data), harness_settings(cfg))


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
    return as_written(HydraConfig.get().overrides.task)


def _placement() -> dict | None:
    """The GPUs or CPU threads a launcher gave this job (evsys/sweep/local_launcher.py)."""
    placement = os.environ.get("EVSYS_PLACEMENT")
    return json.loads(placement) if placement else None


def _requeues() -> int:
    """How many times SLURM requeued this job (preemption, timeout, scontrol requeue)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", 0))


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
