"""Continual learning: one job trains a chain of datasets, each stage from the last one's weights.

`experiment.continual.datasets` lists the stages. Stage k (1-based) trains on its dataset with
a fresh LightningModule, optimizer, schedule and Trainer, starting from the weights stage k-1
exported; stage 1 starts from the model the job's `model` config names. The starting model and
every stage's result are scored on every benchmark, which gives the matrix R[row][benchmark]
(rows: "start", then one per stage) that the continual metrics below are read from.

Files inside the arm dir:

    stages/start.json                       scores of the starting model (row "start")
    stages/<k>-<name>/checkpoints/last.ckpt the stage's Lightning checkpoint (resume)
    stages/<k>-<name>/model/                the stage's export; stage k+1 starts from it
    stages/<k>-<name>/stage.json            the stage's record, written last: "this stage is done"
    model/                                  the final model (a copy of the last stage's export)
    tensorboard/                            one run: stages back to back on one step axis

Re-running the job skips stages that have a stage.json and resumes an interrupted stage from
its last.ckpt, so a killed chain loses at most one stage's progress since its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from evsys.algorithms import algorithm_module_class
from evsys.config import MixtureComponent
from evsys.data.prepare import check_source
from evsys.data.sources import load_split
from evsys.data.tasks import is_task
from evsys.errors import ConfigError
from evsys.evaluation.base import harness_settings
from evsys.evaluation.names import benchmark_label, check_benchmark_names, has_held_out_metrics
from evsys.evaluation.scoring import evaluate_configured
from evsys.init_from import resolve_init_from
from evsys.models import export_model, load_tokenizer
from evsys.records import (
    CHECKPOINT,
    SCORES_DIR,
    ArmResult,
    group_id,
    write_item_scores,
    write_json_atomic,
)
from evsys.run.continual_metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    chain_metrics,
    flat_metrics,
    score_matrix,
)
from evsys.run.fit import (
    RunLogger,
    fit,
    flat_hparams,
    starting_model,
    train_metrics,
    write_table_row,
)
from evsys.run.tensorboard import relative_log_dir
from evsys.validate import CONTINUAL_KEY

log = logging.getLogger("evsys")

STAGES_DIR = "stages"
START_FILE = "start.json"
STAGE_FILE = "stage.json"


@dataclass
class Stage:
    """One link of the chain: its place, its config (the job's with this stage's data), its dir."""

    index: int  # 1-based: row `index` of the matrix is this stage's result
    name: str
    cfg: DictConfig
    dir: Path
    step_offset: int  # where its steps start on the chain's one TensorBoard step axis

    @property
    def last_step(self) -> int:
        return self.step_offset + self.cfg.algorithm.max_steps

    @property
    def export_dir(self) -> Path:
        return self.dir / "model"


@dataclass
class Scoring:
    """What every row of the matrix is scored on: the same benchmarks, the same settings."""

    cfg: DictConfig  # the job's config: eval settings and the data fields benchmarks share
    names: list[str]  # benchmark names as evaluate_benchmarks takes them
    held_out: dict[str, list[dict]]  # eval examples of stage datasets that are not built-in tasks

    @property
    def labels(self) -> list[str]:
        """The matrix's columns, as named in the metric keys (eval/<label>/<metric>): the
        benchmarks with held-out loss and exact match. Harness and custom benchmarks have
        metrics of their own: they are scored and recorded per stage, not tabled."""
        return [benchmark_label(name) for name in self.names if has_held_out_metrics(name)]

    def score(self, model, tokenizer, run_dir: Path) -> dict[str, float]:
        """The row's scores; its per-item scores go to <run_dir>/scores/<label>.jsonl."""
        items: dict[str, list[dict]] = {}
        scores = evaluate_configured(model, tokenizer, self.names, self.cfg, self.held_out, items)
        write_item_scores(run_dir, items)
        return scores


# ---------------------------------------------------------------------------------- the chain
def run_chain(cfg: DictConfig, job_dir: Path, record: ArmResult) -> None:
    """Train every stage in order (skipping finished ones), then fill the arm's record."""
    started = time.perf_counter()
    record.group_id = group_id(cfg)
    cfg.model.init_from = resolve_init_from(cfg)  # `parent` becomes a directory, for all stages
    stages = plan_stages(cfg, job_dir)
    _check_before_training(stages, cfg)
    record.hparams = flat_hparams(cfg) | {"continual.stages": " -> ".join(s.name for s in stages)}
    if cfg.backend.num_threads:
        torch.set_num_threads(cfg.backend.num_threads)
    tokenizer = load_tokenizer(cfg.model)
    scoring = Scoring(cfg, benchmark_names(cfg), _held_out(stages, tokenizer))
    rows = [_start_row(cfg, job_dir, tokenizer, scoring)]
    stage_records = []
    for stage in stages:
        done = _read_stage(stage, scoring.labels)
        if done is None:
            done = _train_and_log(stage, stages, job_dir, tokenizer, scoring, rows)
            if done["resumed_from_step"] is not None and record.resumed_from_step is None:
                record.resumed_from_step = stage.step_offset + done["resumed_from_step"]
        stage_records.append(done)
        rows.append(done["scores"])
    shutil.copytree(stages[-1].export_dir, job_dir / "model", dirs_exist_ok=True)
    # The arm's scores are its final model's: the last stage's, items included.
    if (stages[-1].dir / SCORES_DIR).is_dir():
        shutil.copytree(stages[-1].dir / SCORES_DIR, job_dir / SCORES_DIR, dirs_exist_ok=True)
    _fill_record(record, job_dir, stages, stage_records, rows, scoring.labels)
    record.timings["total"] = round(time.perf_counter() - started, 3)


def plan_stages(cfg: DictConfig, job_dir: Path) -> list[Stage]:
    """The stages of a continual job, each with its own config and directory."""
    stages, offset = [], 0
    specs = list(cfg.experiment.continual.datasets)
    for index, spec in enumerate(specs, start=1):
        name = spec.name or re.sub(r"[^\w.+=-]", "_", benchmark_label(spec.dataset_name))
        stage_cfg = copy.deepcopy(cfg)
        stage_cfg.data.dataset_name = spec.dataset_name
        stage_cfg.data.transforms = spec.transforms
        stage_cfg.data.mixture = _replay_mixture(specs[:index], cfg.experiment.continual.replay)
        stage_cfg.algorithm.max_steps = spec.max_steps or cfg.algorithm.max_steps
        stage_dir = Path(job_dir) / STAGES_DIR / f"{index}-{name}"
        stages.append(Stage(index, name, stage_cfg, stage_dir, offset))
        offset += stage_cfg.algorithm.max_steps
    return stages


def _replay_mixture(specs: list, replay: float) -> list[DictConfig] | None:
    """The last stage's data plus a `replay` share split equally over the earlier stages' data;
    None (the stage's own dataset alone) without replay or for the first stage."""
    if not replay or len(specs) == 1:
        return None
    *earlier, current = specs
    mixture = [_component(current, 1.0 - replay)]
    return mixture + [_component(spec, replay / len(earlier)) for spec in earlier]


def _component(spec, weight: float) -> DictConfig:
    fields = {"dataset_name": spec.dataset_name, "transforms": spec.transforms, "weight": weight}
    return OmegaConf.merge(OmegaConf.structured(MixtureComponent), fields)


def benchmark_names(cfg: DictConfig) -> list[str]:
    """Every stage's dataset (its held-out split), then eval.benchmarks; each name once."""
    names = [str(s.dataset_name) for s in cfg.experiment.continual.datasets]
    names += [str(b) for b in cfg.eval.benchmarks]
    return list(dict.fromkeys(names))


def _check_before_training(stages: list[Stage], cfg: DictConfig) -> None:
    """Every stage's data and every benchmark resolve, or a ConfigError names the stage."""
    needs = algorithm_module_class(cfg.algorithm.kind).example_format
    for stage in stages:
        try:
            check_source(stage.cfg.data, needs)
        except (ConfigError, ValueError, OSError) as error:
            raise ConfigError(
                f"{CONTINUAL_KEY}[{stage.index - 1}] (stage {stage.index}, dataset "
                f"{stage.cfg.data.dataset_name!r}): {error}"
            ) from None
    datasets = [str(stage.cfg.data.dataset_name) for stage in stages]
    check_benchmark_names([str(b) for b in cfg.eval.benchmarks], datasets, harness_settings(cfg))


def _held_out(stages: list[Stage], tokenizer) -> dict[str, list[dict]]:
    """The eval split of each stage dataset that is a file or hub dataset: its benchmark."""
    held_out = {}
    for stage in stages:
        if not is_task(stage.cfg.data.dataset_name):
            own = copy.deepcopy(stage.cfg.data)
            own.mixture = None  # the stage's own dataset, without what replay mixes in
            held_out[own.dataset_name] = load_split(own, "eval", tokenizer)
    return held_out


# ------------------------------------------------------------------------------------ stages
def _start_row(cfg: DictConfig, job_dir: Path, tokenizer, scoring: Scoring) -> dict:
    """Scores of the starting model (the matrix's row "start"), computed once per job."""
    path = job_dir / STAGES_DIR / START_FILE
    if path.is_file():
        return _checked(path, json.loads(path.read_text()), None, scoring.labels)["scores"]
    model = starting_model(cfg, tokenizer)
    scores = scoring.score(model, tokenizer, job_dir / STAGES_DIR / "start")
    _log_scalars(job_dir, 0, scores)
    write_json_atomic(path, {"scores": scores})
    log.info("continual: starting model scored: %s", _short(scores))
    return scores


def _train_stage(
    stage: Stage, job_dir: Path, previous: Path | None, tokenizer, scoring: Scoring
) -> dict:
    """Train one stage from `previous`'s weights with a fresh optimizer; score, export, record."""
    cfg, started = stage.cfg, time.perf_counter()
    log.info("continual: stage %d %s on %s", stage.index, stage.name, cfg.data.dataset_name)
    trainer, module, throughput, resumed_from_step = _fit(stage, job_dir, previous, tokenizer)
    trained = time.perf_counter()
    scores = scoring.score(module.model, tokenizer, stage.dir)
    export_model(module.model, tokenizer, stage.export_dir, cfg.model.lora.export)
    done = {
        "index": stage.index,
        "name": stage.name,
        "dataset_name": cfg.data.dataset_name,
        "max_steps": cfg.algorithm.max_steps,
        "resumed_from_step": resumed_from_step,
        "scores": scores,
        "train": train_metrics(trainer),
        "throughput": {"tokens": throughput.tokens, "seconds": round(throughput.seconds, 3)},
        "timings": {
            "train": round(trained - started, 3),
            "eval": round(time.perf_counter() - trained, 3),
        },
    }
    write_json_atomic(stage.dir / STAGE_FILE, done)  # last: from now on the stage counts as done
    return done


def _fit(stage: Stage, job_dir: Path, previous: Path | None, tokenizer) -> tuple:
    """The stage trained from `previous`'s weights with a fresh module, optimizer, schedule
    and Trainer, on the chain's one TensorBoard run; an interrupted stage goes on from its
    last.ckpt. Returns what the stage record needs."""
    if (stage.dir / CHECKPOINT).exists():
        log.info("continual: stage %d %s resumes from %s", stage.index, stage.name, stage.dir)
    logger = ChainLogger(job_dir, step_offset=stage.step_offset)
    fitted = fit(stage.cfg, stage.dir, tokenizer, init_from=previous, logger=logger)
    return fitted.trainer, fitted.module, fitted.throughput, fitted.resumed_from_step


def _train_and_log(
    stage: Stage, stages: list[Stage], job_dir: Path, tokenizer, scoring: Scoring, rows: list
) -> dict:
    """Train a stage from the previous one's export, then log its scores and the chain's
    metrics so far at the step where it ended."""
    previous = stages[stage.index - 2].export_dir if stage.index > 1 else None
    done = _train_stage(stage, job_dir, previous, tokenizer, scoring)
    summary = continual_summary(stages, [*rows, done["scores"]], scoring.labels)
    _log_scalars(job_dir, stage.last_step, done["scores"] | flat_metrics(summary))
    return done


def _read_stage(stage: Stage, labels: list[str]) -> dict | None:
    """The record of a finished stage, or None when it has not finished yet."""
    path = stage.dir / STAGE_FILE
    if not path.is_file():
        return None
    done = _checked(path, json.loads(path.read_text()), stage, labels)
    log.info("continual: stage %d %s already done, skipped", stage.index, stage.name)
    return done


def _checked(path: Path, done: dict, stage: Stage | None, labels: list[str]) -> dict:
    """A record left by an earlier run of this job, if it belongs to the same chain."""
    same = all(f"eval/{b}/{m}" in done["scores"] for b in labels for m in METRICS)
    if stage is not None:
        same &= done["dataset_name"] == stage.cfg.data.dataset_name
        same &= done["max_steps"] == stage.cfg.algorithm.max_steps
    if not same:
        raise ConfigError(
            f"{path} was written by a different chain (dataset, steps or benchmarks differ); "
            "run this config into a fresh directory"
        )
    return done


def _named(metrics: dict, stages: list[Stage], benchmarks: list[str]) -> dict:
    """Column indices replaced by benchmark names, row indices by stage names, for the files."""
    named = dict(metrics)
    named["forgetting"] = {benchmarks[c]: v for c, v in metrics["forgetting"].items()}
    if metrics["max_drop_at"] is not None:
        row, column = metrics["max_drop_at"]
        named["max_drop_at"] = {"stage": stages[row - 1].name, "benchmark": benchmarks[column]}
    return named


def continual_summary(stages: list[Stage], rows: list[dict], benchmarks: list[str]) -> dict:
    """The `continual` section of the arm record for the rows so far (start + finished stages)."""
    done = stages[: len(rows) - 1]
    columns = [benchmarks.index(benchmark_label(s.cfg.data.dataset_name)) for s in done]
    matrices = {m: score_matrix(rows, benchmarks, m) for m in METRICS}
    metrics = {
        m: _named(chain_metrics(matrices[m], columns, HIGHER_IS_BETTER[m]), done, benchmarks)
        for m in METRICS
    }
    return {
        "stages": [_stage_entry(s) for s in done],
        "benchmarks": benchmarks,
        "rows": ["start", *(s.name for s in done)],
        "matrix": matrices,
        "metrics": metrics,
    }


def _stage_entry(stage: Stage) -> dict:
    return {
        "index": stage.index,
        "name": stage.name,
        "dataset_name": stage.cfg.data.dataset_name,
        "max_steps": stage.cfg.algorithm.max_steps,
        "dir": str(stage.dir.relative_to(stage.dir.parent.parent)),
    }


# ----------------------------------------------------------------------------- record, logs
def _fill_record(
    record: ArmResult,
    job_dir: Path,
    stages: list[Stage],
    stage_records: list[dict],
    rows: list[dict],
    benchmarks: list[str],
) -> None:
    summary = continual_summary(stages, rows, benchmarks)
    record.continual = summary
    record.metrics = stage_records[-1]["train"] | rows[-1] | flat_metrics(summary)
    tokens = sum(s["throughput"]["tokens"] for s in stage_records)
    seconds = sum(s["throughput"]["seconds"] for s in stage_records)
    record.throughput = {
        "tokens_per_second": round(tokens / seconds, 1) if seconds else 0.0,
        "train_tokens": tokens,
    }
    record.timings = {
        "train": round(sum(s["timings"]["train"] for s in stage_records), 3),
        "eval": round(sum(s["timings"]["eval"] for s in stage_records), 3),
    }
    record.artifacts = {
        "model": "model",
        "checkpoint": str(stages[-1].dir.relative_to(job_dir) / CHECKPOINT),
        "tensorboard": relative_log_dir(job_dir),
        "stages": STAGES_DIR,
    }
    logger = ChainLogger(job_dir)
    stages_key = {"continual.stages": record.hparams["continual.stages"]}
    write_table_row(logger, stages[0].cfg, job_dir, record.metrics, stages_key)
    logger.finalize("success")


def _log_scalars(job_dir: Path, step: int, scalars: dict[str, float]) -> None:
    """A row of scores (and the chain's metrics so far) at the step its stage ended."""
    logger = ChainLogger(job_dir)
    for key, value in scalars.items():
        logger.experiment.add_scalar(key, value, step)
    logger.finalize("success")


class ChainLogger(RunLogger):
    """The arm's one TensorBoard run; a stage's step s is logged at step_offset + s, so the
    stages' curves follow each other on one axis instead of overlapping."""

    def __init__(self, job_dir: Path, step_offset: int = 0) -> None:
        super().__init__(job_dir)
        self.step_offset = step_offset

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        super().log_metrics(metrics, None if step is None else step + self.step_offset)


def _short(scores: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in scores.items() if k.endswith("exact_match"))
