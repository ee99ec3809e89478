"""The tracker beside TensorBoard (`logger=mlflow` or `logger=wandb`): one run per arm and
seed, opened once the arm has claimed its dir, handed to every Trainer of the arm with its
TensorBoard logger, given the post-training scores, and closed with the arm's record.

TensorBoard stays, always: the conclusion's curves and HParams table read its event files.

    mlflow  one MLflow experiment per evsys experiment (named by its id), one run per arm and
            seed (`<arm>/seed<n>`), tagged arm, seed, sweep dir, success metric, experiment;
            params: the resolved config; in a SQLite store under the outputs root, no server
    wandb   one W&B run per arm and seed, `group` the experiment, `config` the resolved config;
            offline by default: files under `<sweep dir>/wandb/`, nothing sent anywhere

What both packages would write elsewhere (MLflow's telemetry id, W&B's cache, config and
logs under the home dir) is kept under the store or the sweep dir, and their telemetry and
error reporting are off: evsys assumes no network (docs/tensorboard.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger, WandbLogger
from omegaconf import DictConfig

from evsys.records import ArmResult
from evsys.run.context import JobContext
from evsys.run.shifted_steps import ShiftedSteps
from evsys.run.tensorboard import flat_hparams

MLFLOW_STORE = "mlflow.db"  # <outputs root>/mlflow.db: every experiment's runs
MLFLOW_ARTIFACTS = "mlflow-artifacts"  # <outputs root>/mlflow-artifacts/
WANDB_DIR = "wandb"  # <sweep dir>/wandb/ (W&B's own name for it)

log = logging.getLogger("evsys")


class TrackedSteps(ShiftedSteps):
    """Mixed into a Lightning logger, with the steps of TensorBoard's RunLogger; the keys and
    last step logged are kept, so closing adds only what training did not log."""

    last_step = 0
    logged: frozenset[str] = frozenset()

    def write_metrics(self, metrics: dict, step: int | None) -> None:
        if step is not None:
            self.last_step = max(self.last_step, step)
        self.logged = self.logged | set(metrics)
        super().write_metrics(metrics, step)

    def unlogged(self, metrics: dict) -> dict:
        return {key: value for key, value in metrics.items() if key not in self.logged}

    def close(self, record: ArmResult) -> None:
        raise NotImplementedError


def open_tracker(
    cfg: DictConfig, job_dir: Path, context: JobContext | None, record: ArmResult
) -> TrackedSteps | None:
    """The tracker `cfg.logger` asks for beside TensorBoard, or None for TensorBoard alone."""
    kind = cfg.logger.kind
    if kind == "tensorboard":
        return None
    sweep_dir = Path(context.sweep_dir if context is not None else job_dir).absolute()
    tags = {
        "arm": record.arm,
        "seed": str(record.seed),
        "sweep_dir": str(sweep_dir),
        "success_metric": record.success_metric or "",
        "experiment": cfg.experiment.name,
        "experiment_id": cfg.experiment.id or "",
    }
    name = f"{record.arm}/seed{record.seed}"
    if kind == "mlflow":
        return _mlflow(cfg, name, tags)
    return _wandb(cfg, name, tags, sweep_dir / WANDB_DIR)


def close_tracker(tracker: TrackedSteps, record: ArmResult) -> None:
    """The arm's metrics that training did not log (its scores, its success metric), at its
    last step, and how it ended; the tracker's run is then finished. The record is already
    written: a tracker that fails here costs a warning, never the arm."""
    try:
        tracker.close(record)
    except Exception as error:  # noqa: BLE001 - the record on disk is the truth
        log.warning(
            "the %s run of arm %s seed %s was not closed: %s",
            type(tracker).__name__,
            record.arm,
            record.seed,
            error,
        )


# ---------------------------------------------------------------------------------- MLflow
class MLflowTracker(TrackedSteps, MLFlowLogger):
    def close(self, record: ArmResult) -> None:
        MLFlowLogger.log_metrics(self, self.unlogged(record.metrics), self.last_step)
        self.experiment.set_tag(self.run_id, "status", record.status)
        self.finalize("success" if record.completed else "failed")


def _mlflow(cfg: DictConfig, name: str, tags: dict) -> MLflowTracker:
    root = Path(cfg.experiment.stores.outputs_root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # read at each call: never sent
    uri = cfg.logger.tracking_uri or f"sqlite:///{root / MLFLOW_STORE}"
    experiment = cfg.experiment.id or cfg.experiment.name
    tracker = MLflowTracker(
        experiment_name=experiment,
        run_name=name,
        tracking_uri=uri,
        tags=tags,
        artifact_location=None if cfg.logger.tracking_uri else (root / MLFLOW_ARTIFACTS).as_uri(),
        run_id=_unfinished_run(uri, experiment, tags),
    )
    tracker.log_hyperparams(flat_hparams(cfg))
    return tracker


def _unfinished_run(uri: str, experiment: str, tags: dict) -> str | None:
    """The run an interrupted attempt at this arm and seed left open (no `status` tag yet): a
    resumed arm goes on in it, so the experiment keeps one run per arm and seed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    same = ("sweep_dir", "arm", "seed")
    for run in client.search_runs([found.experiment_id], max_results=10_000):
        run_tags = run.data.tags
        if "status" not in run_tags and all(run_tags.get(k) == tags[k] for k in same):
            return run.info.run_id
    return None


# ------------------------------------------------------------------------------------ W&B
class WandbTracker(TrackedSteps, WandbLogger):
    def close(self, record: ArmResult) -> None:
        if unlogged := self.unlogged(record.metrics):
            WandbLogger.log_metrics(self, unlogged, self.last_step)
        run = self.experiment
        run.summary.update({**record.metrics, "status": record.status})
        run.finish(exit_code=0 if record.completed else 1)


def _wandb(cfg: DictConfig, name: str, tags: dict, wandb_dir: Path) -> WandbTracker:
    offline = cfg.logger.mode == "offline"
    _confine_wandb(wandb_dir, offline)
    import wandb

    settings = wandb.Settings(console="off", silent=True, disable_git=True, x_disable_stats=True)
    return WandbTracker(
        name=name,
        save_dir=str(wandb_dir.parent),  # W&B writes into <save_dir>/wandb/
        offline=offline,
        project=cfg.logger.project,
        group=cfg.experiment.id or cfg.experiment.name,
        job_type=tags["arm"],
        config={**flat_hparams(cfg), "evsys": tags},  # tags: arm, seed, sweep dir, metric
        tags=[f"arm={tags['arm']}", f"seed={tags['seed']}"],
        notes=f"sweep dir {tags['sweep_dir']}; success metric {tags['success_metric']}",
        settings=settings,
        reinit="finish_previous",  # one run per arm, also when a process trains several
    )


def _confine_wandb(wandb_dir: Path, offline: bool) -> None:
    """W&B's own files (cache, config, data, artifacts, its service's log) under its dir, not
    the home dir; offline, no error reports either (they would be sent)."""
    wandb_dir.mkdir(parents=True, exist_ok=True)
    for variable, sub in (
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_DATA_DIR", "data"),
        ("WANDB_ARTIFACT_DIR", "artifacts"),
    ):
        os.environ[variable] = str(wandb_dir / sub)
    if offline:
        os.environ["WANDB_MODE"] = "offline"
        os.environ["WANDB_ERROR_REPORTING"] = "false"
