"""The metrics a job writes to its record, known from its composed config before any model is
built. The plan refuses a success metric, baseline, prediction or min_effect that its jobs
cannot evaluate (evsys/sweep/plan.py), and a finished job's record is checked against the same
list (evsys/run/arm.py). No torch.

What a record's `metrics` hold (evsys/run/lifecycle.py ArmOutcome, evsys/run/continual.py):
  train/loss                 always (the last step's)
  train/reward               algorithm=grpo: the reward (the reward functions' weighted sum) and
  train/rewards/<fn>         each function's, averaged over every completion sampled in the last
                             logging window (log_every_n_steps optimizer steps); other train/*
                             are TensorBoard curves only
  val/<name>                 when validation runs at least once: validation.enabled and
                             validation.every_n_steps <= the steps trained (Lightning validates
                             every every_n_steps optimizer steps, never at the end of training);
                             <name>: the algorithm's `validation_metrics` (evsys/config.py)
  eval/<label>/<metric>      every benchmark: loss and exact_match (perplexity instead of
                             exact_match for text); a harness task or your own class reports
                             metrics of its own, known only when it runs: eval/<label>/*
  eval/<label>/reward        algorithm=grpo, every held-out benchmark with prompts: its greedy
  eval/<label>/rewards/<fn>  answers scored by the arm's reward functions (evsys/rewards.py)
  continual/...              continual chains: avg_final, max_drop, bwt and fwt (two stages or
                             more), forgetting/<label> of each earlier stage; and continual/loss/...
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import logging
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from evsys.algorithms import algorithm_schema
from evsys.errors import ConfigError
from evsys.evaluation.names import benchmark_label, has_held_out_metrics
from evsys.metric_kinds import metric_bounds, metric_kind
from evsys.rewards import reward_label, reward_metrics

HELD_OUT_METRICS = ("loss", "exact_match")  # evsys/evaluation/held_out.py
TEXT_METRICS = ("loss", "perplexity")  # text has no prompt to generate an answer from
CONTINUAL_PREFIXES = ("continual/", "continual/loss/")  # exact match, then loss matrices

log = logging.getLogger("evsys")


@dataclass
class Produced:
    """The metric names one job's record will hold."""

    names: list[str] = field(default_factory=list)  # exact names
    patterns: list[str] = field(default_factory=list)  # eval/<label>/*: known when it runs
    # names the job logs (or could) that its record will not hold, and why
    absent: dict[str, str] = field(default_factory=dict)

    def holds(self, name: str) -> bool:
        return name in self.names or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def listed(self) -> str:
        return ", ".join(self.names + self.patterns)


def produced_metrics(cfg: DictConfig) -> Produced:
    """What the record of the job `cfg` (composed and validated) will hold in `metrics`."""
    produced = Produced(names=["train/loss"])
    _validation(cfg, produced)
    _curves(cfg, produced)
    for name in benchmarks_scored(cfg):
        label = benchmark_label(name)
        if has_held_out_metrics(name):
            # an arm with reward functions (grpo) scores each prompt's greedy answer with them
            rewards = reward_metrics(cfg.algorithm)
            metrics = TEXT_METRICS if scored_as_text(cfg, name) else [*HELD_OUT_METRICS, *rewards]
            produced.names += [f"eval/{label}/{metric}" for metric in metrics]
        else:
            produced.patterns.append(f"eval/{label}/*")
    if _stages(cfg) is not None:
        produced.names += _continual(cfg)
    return produced


def benchmarks_scored(cfg: DictConfig) -> list[str]:
    """eval.benchmarks, and for a continual chain every stage's dataset first."""
    names = [str(b) for b in cfg.eval.benchmarks]
    stages = _stages(cfg)
    if stages is not None:
        names = [str(stage.dataset_name) for stage in stages] + names
    return list(dict.fromkeys(names))


def _stages(cfg: DictConfig):
    return OmegaConf.select(cfg, "experiment.continual.datasets", default=None)


def _validation(cfg: DictConfig, produced: Produced) -> None:
    """val/<name> when validation runs at least once (in a chain: in its last stage, whose
    metrics the record keeps)."""
    names = [f"val/{name}" for name in algorithm_schema(cfg.algorithm.kind).validation_metrics]
    every, steps = cfg.validation.every_n_steps, cfg.algorithm.max_steps
    stages = _stages(cfg)
    if stages:
        steps = stages[-1].max_steps or steps
    if not cfg.validation.enabled:
        why = "validation.enabled=false: validation never runs"
    elif every > steps:
        trained = (
            f"the {steps} steps of the last stage" if stages else f"algorithm.max_steps={steps}"
        )
        why = (
            f"validation never runs, since validation.every_n_steps={every} > {trained} (set "
            f"validation.every_n_steps <= {steps} to validate)"
        )
    else:
        produced.names += names
        return
    produced.absent.update({name: why for name in names})


def _curves(cfg: DictConfig, produced: Produced) -> None:
    """train/* the algorithm logs besides train/loss: TensorBoard curves, in the record when
    the algorithm lists them in its recorded_curves (GRPO's rewards)."""
    algorithm = cfg.algorithm
    schema = algorithm_schema(algorithm.kind)
    recorded = [f"train/{name}" for curve in schema.recorded_curves for name in _each(cfg, curve)]
    produced.names += recorded
    for curve in schema.curves:
        for name in [f"train/{name}" for name in _each(cfg, curve)]:
            if name not in recorded:
                produced.absent[name] = (
                    f"algorithm={algorithm.kind} logs {name} to TensorBoard each step, but a "
                    f"record keeps {', '.join(['train/loss', *recorded])} only of the train/ "
                    "curves"
                )


def _each(cfg: DictConfig, curve: str) -> list[str]:
    """A curve's names: {reward} stands for each reward function's label."""
    if "{reward}" not in curve:
        return [curve]
    return [curve.format(reward=reward_label(str(r))) for r in cfg.algorithm.get("rewards", [])]


def _continual(cfg: DictConfig) -> list[str]:
    """continual/* of evsys/run/continual_metrics.py flat_metrics, for this chain's stages."""
    stages = _stages(cfg)
    labels = [benchmark_label(str(stage.dataset_name)) for stage in stages]
    names = ["avg_final", "max_drop"] + (["bwt", "fwt"] if len(stages) > 1 else [])
    # forgetting of each dataset learned before, other than the last stage's
    names += [f"forgetting/{label}" for label in dict.fromkeys(labels) if label != labels[-1]]
    return [prefix + name for prefix in CONTINUAL_PREFIXES for name in names]


def scored_as_text(cfg: DictConfig, benchmark: str) -> bool:
    """Whether `benchmark` is the eval split of a dataset the arm trains on, scored as plain
    text: every one under algorithm=pretrain (which trains on examples rendered as text), and
    a text-format dataset (data.format=text, a .txt file) under any algorithm."""
    from evsys.data.mixture import dataset_names, is_mixture

    if benchmark not in map(str, dataset_names(cfg.data)):
        return False
    if cfg.algorithm.kind == "pretrain" or benchmark.endswith(".txt"):
        return True
    components = cfg.data.mixture if is_mixture(cfg.data) else [cfg.data]
    return any(str(c.dataset_name) == benchmark and c.format == "text" for c in components)


# ----------------------------------------------------------------------------------- checks
def check_metric(cfg: DictConfig, name: str, key: str = "experiment.success_metric.name") -> None:
    """A ConfigError unless the job's record will hold `name`: it says why the metric is not
    there where evsys knows, the closest name, and what the job does produce."""
    produced = produced_metrics(cfg)
    if produced.holds(name):
        return
    why = produced.absent.get(name)
    text = f"{key}={name!r} is not a metric this job produces" + (f": {why}." if why else ".")
    known = produced.names + list(produced.absent)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close and not why:
        text += f" Did you mean {close[0]!r}?"
        if close[0] in produced.absent:
            text += f" It is not produced either: {produced.absent[close[0]]}."
    label = name.split("/")[1] if name.startswith("eval/") and name.count("/") >= 2 else None
    if own := [n for n in produced.names if label and n.startswith(f"eval/{label}/")]:
        text += f" eval/{label} produces {', '.join(own)}."
    raise ConfigError(f"{text} The job produces {produced.listed()}.")


def check_min_effect(name: str, min_effect: float) -> None:
    """A min_effect no difference between two arms can reach, by the metric's kind, is
    refused: a share's lie in [-1, 1], a difference of shares' in [-2, 2]."""
    bounds = metric_bounds(name)
    if bounds is None or min_effect < bounds[1] - bounds[0]:
        return
    raise ConfigError(
        f"experiment.success_metric.min_effect={min_effect} cannot be reached: {name} lies "
        f"in [{bounds[0]:g}, {bounds[1]:g}], so no two arms differ by that much; state the "
        "smallest difference that matters, e.g. 0.05"
    )


def check_threshold(name: str, threshold: float | None) -> None:
    """A threshold the metric cannot lie on both sides of, by its kind, is refused: no interval
    could ever clear a share's 1.5 (or a loss's 0)."""
    bounds = metric_bounds(name)
    if threshold is None or bounds is None or bounds[0] < threshold < bounds[1]:
        return
    raise ConfigError(
        f"experiment.success_metric.threshold={threshold:g} cannot be decided: {name} is a "
        f"{metric_kind(name).replace('_', ' ')} in [{bounds[0]:g}, {bounds[1]:g}], so no arm "
        "can lie on both sides of it; state a level strictly inside that range"
    )


def missing_from_record(cfg: DictConfig, metrics: dict) -> list[str]:
    """The exact names the plan expected of this job that its record lacks (benchmarks that
    failed after training are the record's own error, not counted here)."""
    return [name for name in produced_metrics(cfg).names if name not in metrics]


def checked_record(cfg: DictConfig, record):
    """The record (evsys.records.ArmResult), failed if it is completed but lacks a success
    metric the plan expected of it, naming what was expected: the record then agrees with the
    conclusion. A metric the plan knew the job would not produce (a single run's default
    val/loss without validation) leaves the record as it is, with a warning."""
    name, metrics = record.success_metric, record.metrics or {}
    if not record.completed or not name or name in metrics:
        return record
    produced = produced_metrics(cfg)
    present = ", ".join(sorted(metrics)) or "none"
    if not produced.holds(name):
        why = produced.absent.get(name, "not a metric this job produces")
        log.warning("success metric %s is not in the record (%s); it holds %s", name, why, present)
        return record
    error = (
        f"metric {name!r} missing from the record (metrics present: {present}); the plan "
        f"expected {produced.listed()}"
    )
    log.error("arm %s (seed %s) failed: %s", record.arm, record.seed, error)
    return dataclasses.replace(record, status="failed", error=error)
