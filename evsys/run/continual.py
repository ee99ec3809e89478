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

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.algorithms import algorithm_module_class
from evsys.config import MixtureComponent
from evsys.data.mixture import DATASET_FIELDS
from evsys.data.prepare import check_source
from evsys.data.sources import load_split
from evsys.data.tasks import is_task
from evsys.errors import ConfigError
from evsys.evaluation.base import harness_settings
from evsys.evaluation.names import benchmark_label, check_benchmark_names, has_held_out_metrics
from evsys.init_from import resolve_init_from, with_init_from
from evsys.models import load_tokenizer
from evsys.records import CHECKPOINT, MODEL_DIR, SCORES_DIR, write_item_scores, write_json_atomic
from evsys.run.continual_metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    chain_metrics,
    flat_metrics,
    score_matrix,
)
from evsys.run.lifecycle import ArmOutcome, ArmRun, Scoring
from evsys.run.loggers import TrackedSteps
from evsys.run.resume import job_identity
from evsys.run.trainer import RunLogger, starting_model
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
        return self.dir / MODEL_DIR


# ---------------------------------------------------------------------------------- the chain
def run_chain(
    cfg: DictConfig, job_dir: Path, log_dir: Path, tracker: TrackedSteps | None = None
) -> ArmOutcome:
    """Train every stage in order (skipping finished ones): the chain's outcome, its metrics
    the last stage's plus the continual ones, its TensorBoard run `log_dir` (and `tracker`'s)."""
    started = time.perf_counter()
    cfg = with_init_from(cfg, resolve_init_from(cfg))  # `parent`: a directory, for all stages
    stages = plan_stages(cfg, job_dir)
    _check_before_training(stages, cfg)
    tokenizer = load_tokenizer(cfg.model)
    scoring = Scoring(tuple(benchmark_names(cfg)), _held_out(stages, tokenizer), keep_going=False)
    labels = matrix_labels(scoring.names)
    rows = [_start_row(cfg, job_dir, tokenizer, scoring, log_dir)]
    outcomes, resumed_from_step = [], None
    for stage in stages:
        outcome = _read_stage(stage, labels)
        if outcome is None:
            outcome = _train_stage(stage, stages, tokenizer, scoring, log_dir, tracker)
            summary = continual_summary(stages, [*rows, dict(outcome.scores)], labels)
            _log_scalars(log_dir, stage.last_step, flat_metrics(summary))
            if outcome.resumed_from_step is not None and resumed_from_step is None:
                resumed_from_step = stage.step_offset + outcome.resumed_from_step
        outcomes.append(outcome)
        rows.append(dict(outcome.scores))
    shutil.copytree(stages[-1].export_dir, job_dir / MODEL_DIR, dirs_exist_ok=True)
    # The arm's scores are its final model's: the last stage's, items included.
    if (stages[-1].dir / SCORES_DIR).is_dir():
        shutil.copytree(stages[-1].dir / SCORES_DIR, job_dir / SCORES_DIR, dirs_exist_ok=True)
    summary = continual_summary(stages, rows, labels)
    seconds = time.perf_counter() - started
    return _chain_outcome(stages, outcomes, summary, resumed_from_step, seconds, job_dir)


def chain_hparams(cfg: DictConfig) -> dict[str, str]:
    """What the record's hparams and the HParams row add for a chain: its stages in order."""
    names = [_stage_name(spec) for spec in cfg.experiment.continual.datasets]
    return {"continual.stages": " -> ".join(names)}


def matrix_labels(names: tuple[str, ...]) -> list[str]:
    """The matrix's columns, as named in the metric keys (eval/<label>/<metric>): the
    benchmarks with held-out loss and exact match. Harness and custom benchmarks have
    metrics of their own: they are scored and recorded per stage, not tabled."""
    return [benchmark_label(name) for name in names if has_held_out_metrics(name)]


def plan_stages(cfg: DictConfig, job_dir: Path) -> list[Stage]:
    """The stages of a continual job, each with its own config and directory."""
    stages, offset = [], 0
    specs = list(cfg.experiment.continual.datasets)
    for index, spec in enumerate(specs, start=1):
        name = _stage_name(spec)
        data = {"dataset_name": spec.dataset_name, "transforms": spec.transforms}
        if replayed := _replay_mixture(specs[:index], cfg.experiment.continual.replay, cfg.data):
            # replay within the stage's budget: as many examples as its own data alone
            data.update(mixture=replayed, mixture_size="first")
        else:
            data["mixture"] = None
        steps = spec.max_steps or cfg.algorithm.max_steps
        stage_cfg = OmegaConf.merge(cfg, {"data": data, "algorithm": {"max_steps": steps}})
        stage_dir = Path(job_dir) / STAGES_DIR / f"{index}-{name}"
        stages.append(Stage(index, name, stage_cfg, stage_dir, offset))
        offset += stage_cfg.algorithm.max_steps
    return stages


def _stage_name(spec) -> str:
    return spec.name or re.sub(r"[^\w.+=-]", "_", benchmark_label(spec.dataset_name))


def _replay_mixture(specs: list, replay: float, data: DictConfig) -> list[DictConfig] | None:
    """The last stage's data plus a `replay` share split equally over the earlier stages' data;
    None (the stage's own dataset alone) without replay or for the first stage."""
    if not replay or len(specs) == 1:
        return None
    *earlier, current = specs
    mixture = [_component(current, 1.0 - replay, data)]
    return mixture + [_component(spec, replay / len(earlier), data) for spec in earlier]


def _component(spec, weight: float, data: DictConfig) -> DictConfig:
    """A stage's dataset in a replay mix, read as the stage alone reads it: the job's data
    fields (num_train, format, columns, ...) with the stage's dataset and transforms."""
    shared = {name: data[name] for name in DATASET_FIELDS if name != "seed"}
    fields = {"dataset_name": spec.dataset_name, "transforms": spec.transforms, "weight": weight}
    return OmegaConf.merge(OmegaConf.structured(MixtureComponent), shared, fields)


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
            # The stage's own dataset, without what replay mixes in.
            own = OmegaConf.merge(stage.cfg.data, {"mixture": None})
            held_out[own.dataset_name] = load_split(own, "eval", tokenizer)
    return held_out


# ------------------------------------------------------------------------------------ stages
def _start_row(cfg: DictConfig, job_dir: Path, tokenizer, scoring: Scoring, log_dir: Path) -> dict:
    """Scores of the starting model (the matrix's row "start"), computed once per job."""
    path = job_dir / STAGES_DIR / START_FILE
    labels = matrix_labels(scoring.names)
    if path.is_file():
        return _checked(path, json.loads(path.read_text()), None, labels)["scores"]
    scores = scoring.score(starting_model(cfg, tokenizer), tokenizer, cfg)
    write_item_scores(job_dir / STAGES_DIR / "start", scores.items)
    _log_scalars(log_dir, 0, scores.metrics)
    write_json_atomic(path, {"scores": scores.metrics})
    log.info("continual: starting model scored: %s", _short(scores.metrics))
    return scores.metrics


def _train_stage(
    stage: Stage,
    stages: list[Stage],
    tokenizer,
    scoring: Scoring,
    log_dir: Path,
    tracker: TrackedSteps | None = None,
) -> ArmOutcome:
    """Train one stage from the previous stage's export (stage 1: the job's model) with a
    fresh module, optimizer, schedule and Trainer, on the chain's one TensorBoard run; an
    interrupted stage goes on from its last.ckpt. Scored, exported, then recorded."""
    cfg = stage.cfg
    log.info("continual: stage %d %s on %s", stage.index, stage.name, cfg.data.dataset_name)
    if (stage.dir / CHECKPOINT).exists():
        log.info("continual: stage %d %s resumes from %s", stage.index, stage.name, stage.dir)
    if stage.index > 1:
        cfg = with_init_from(cfg, stages[stage.index - 2].export_dir)
    run = ArmRun(
        cfg,
        stage.dir,
        identity=job_identity(stage.cfg),  # the stage as planned, whichever weights it starts from
        log_dir=log_dir,
        scoring=scoring,
        tokenizer=tokenizer,
        step_offset=stage.step_offset,
        tracker=tracker,
    )
    outcome = run.run()  # never None: a chain runs in one process (evsys/validate.py)
    if outcome.export_error is not None:  # the next stage starts from this export
        raise OSError(outcome.export_error)
    done = {
        "index": stage.index,
        "name": stage.name,
        "dataset_name": cfg.data.dataset_name,
        "max_steps": cfg.algorithm.max_steps,
        "resumed_from_step": outcome.resumed_from_step,
        "scores": dict(outcome.scores),
        "train": dict(outcome.train_metrics),
        "throughput": {"tokens": outcome.tokens, "seconds": round(outcome.train_seconds, 3)},
        "timings": {key: round(value, 3) for key, value in outcome.timings.items()},
    }
    write_json_atomic(stage.dir / STAGE_FILE, done)  # last: from now on the stage counts as done
    return outcome


def _stage_outcome(done: dict) -> ArmOutcome:
    """The outcome of a stage finished by an earlier run of this job, from its stage.json."""
    return ArmOutcome(
        train_metrics=done["train"],
        scores=done["scores"],
        items={},  # already in the stage's scores/
        benchmark_errors={},
        tokens=done["throughput"]["tokens"],
        train_seconds=done["throughput"]["seconds"],
        timings=done["timings"],
        artifacts={"model": MODEL_DIR, "checkpoint": str(CHECKPOINT)},
        resumed_from_step=done["resumed_from_step"],
    )


def _read_stage(stage: Stage, labels: list[str]) -> ArmOutcome | None:
    """The outcome of a finished stage, or None when it has not finished yet."""
    path = stage.dir / STAGE_FILE
    if not path.is_file():
        return None
    done = _checked(path, json.loads(path.read_text()), stage, labels)
    log.info("continual: stage %d %s already done, skipped", stage.index, stage.name)
    return _stage_outcome(done)


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


# ---------------------------------------------------------------------------- outcome, logs
def _chain_outcome(
    stages: list[Stage],
    outcomes: list[ArmOutcome],
    summary: dict,
    resumed_from_step: int | None,
    seconds: float,
    job_dir: Path,
) -> ArmOutcome:
    """The chain as one outcome: the last stage's model, metrics and scores, the stages'
    tokens and times summed, the continual metrics and the chain's section of the record."""
    train = sum(o.timings.get("setup", 0.0) + o.timings.get("train", 0.0) for o in outcomes)
    scoring = sum(o.timings.get("eval", 0.0) for o in outcomes)
    last = outcomes[-1]
    return ArmOutcome(
        train_metrics=last.train_metrics,
        scores=last.scores,
        items={},  # the last stage's, copied into the job's scores/
        benchmark_errors={},
        tokens=sum(o.tokens for o in outcomes),
        train_seconds=sum(o.train_seconds for o in outcomes),
        timings={"setup": max(0.0, seconds - train - scoring), "train": train, "eval": scoring},
        artifacts={
            "model": MODEL_DIR,
            "checkpoint": str(stages[-1].dir.relative_to(job_dir) / CHECKPOINT),
            "stages": STAGES_DIR,
        },
        resumed_from_step=resumed_from_step,
        extra_metrics=flat_metrics(summary),
        continual=summary,
        parameters=max(o.parameters for o in outcomes),
        devices=max(o.devices for o in outcomes),
    )


def _log_scalars(log_dir: Path, step: int, scalars: dict[str, float]) -> None:
    """A row of scores (or the chain's metrics so far) at the step its stage ended."""
    logger = RunLogger(log_dir)
    logger.log_scalars(scalars, step)
    logger.finalize("success")


def _short(scores: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in scores.items() if k.endswith("exact_match"))
