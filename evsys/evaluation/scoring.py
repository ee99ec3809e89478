"""Scoring a model on benchmarks by name: eval/<label>/<metric> for each one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evsys.config import HarnessConfig
from evsys.data.tasks import get_task, is_task
from evsys.evaluation import custom, harness
from evsys.evaluation.base import Benchmark, BenchmarkSettings, harness_settings
from evsys.evaluation.held_out import DatasetBenchmark, TaskBenchmark
from evsys.evaluation.names import (
    harness_task,
    is_harness_name,
    known_benchmarks,
    needs_held_out,
)
from evsys.ops.eval_mode import evaluation_mode
from evsys.rewards import Rewards


def get_benchmark(name: str, settings: BenchmarkSettings) -> Benchmark:
    """The benchmark called `name`; a ValueError names the known ones when there is none."""
    if is_task(name):
        return TaskBenchmark(get_task(name), settings)
    if is_harness_name(name):
        return harness.HarnessBenchmark(harness_task(name), settings)
    if custom.is_class_name(name):
        return custom.custom_benchmark(name, settings)
    raise ValueError(
        f"unknown benchmark {name!r}; known benchmarks are: {', '.join(known_benchmarks())}"
    )


@dataclass(frozen=True)
class BenchmarkScores:
    """What scoring returns: the metrics, each benchmark's per-item scores and its failures."""

    metrics: dict[str, float]  # eval/<label>/<metric> -> value
    items: dict[str, list[dict]] = field(default_factory=dict)  # label -> per-item scores
    errors: dict[str, str] = field(default_factory=dict)  # eval/<label> -> error (keep_going)


def evaluate_benchmarks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    names: list[str],
    *,
    data_seed: int,
    num_eval: int,
    max_examples: int,
    batch_size: int,
    max_new_tokens: int,
    max_length: int,
    held_out: dict[str, list[dict]] | None = None,
    harness: HarnessConfig | None = None,
    rewards: Rewards | None = None,
    keep_going: bool = False,
) -> BenchmarkScores:
    """Every named benchmark's metrics as {"eval/<name>/<metric>": value}, with each
    benchmark's per-item scores by label (benchmarks that score item by item).

    `held_out` maps dataset names that are not built-in tasks (a file, a hub id) to their
    eval examples, so the training data's own eval split can be a benchmark. `harness` holds
    the settings of harness:<task> benchmarks; `rewards` the reward functions held-out greedy
    answers are scored with (reward, rewards/<fn>). With `keep_going`, a benchmark that fails while
    scoring is returned among the errors (eval/<name> -> error) and the others are still
    scored; without it, the failure is raised.
    """
    settings = BenchmarkSettings(
        data_seed=data_seed,
        num_eval=num_eval,
        max_examples=max_examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        max_length=max_length,
        harness=harness,
        rewards=rewards,
    )
    # Resolve all names first, so a typo fails before any (slow) scoring. A built-in task is
    # scored on its own examples, whatever shape the run trained on: an algorithm's eval rows
    # of it (KTO's labelled near misses) are not answers to score against.
    held_out = held_out or {}
    benchmarks = [
        DatasetBenchmark(name, held_out[name], settings)
        if name in held_out and needs_held_out(name)
        else get_benchmark(name, settings)
        for name in names
    ]
    scores = BenchmarkScores({})
    with evaluation_mode(model):
        for benchmark in benchmarks:
            try:
                metrics = benchmark.score(model, tokenizer)
            except Exception as error:
                if not keep_going:
                    raise
                scores.errors[f"eval/{benchmark.name}"] = f"{type(error).__name__}: {error}"
                continue
            for metric, value in metrics.items():
                scores.metrics[f"eval/{benchmark.name}/{metric}"] = float(value)
            scores.items.update(benchmark.items_by_label())
    return scores


def evaluate_configured(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    names: list[str],
    cfg,
    held_out: dict[str, list[dict]] | None = None,
    keep_going: bool = False,
) -> BenchmarkScores:
    """`evaluate_benchmarks` with the settings of a run config (data.*, eval.* and the
    algorithm's reward functions), rounded."""
    scores = evaluate_benchmarks(
        model,
        tokenizer,
        names,
        data_seed=cfg.data.seed,
        num_eval=cfg.data.num_eval,
        max_examples=cfg.eval.max_examples,
        batch_size=cfg.eval.batch_size,
        max_new_tokens=cfg.eval.max_new_tokens,
        max_length=cfg.data.max_length,
        held_out=held_out,
        harness=harness_settings(cfg),
        rewards=Rewards.of(cfg.algorithm),
        keep_going=keep_going,
    )
    rounded = {key: round(float(value), 6) for key, value in scores.metrics.items()}
    return BenchmarkScores(rounded, scores.items, scores.errors)


def scorer(cfg, names: list[str]) -> Callable[..., dict[str, float]]:
    """`score(model, tokenizer, held_out)` for scoring during training (BenchmarkScoring): the
    named benchmarks that can be scored with the eval splits at hand, with `cfg`'s settings."""

    def score(model, tokenizer, held_out: dict[str, list[dict]]) -> dict[str, float]:
        # A continual stage has only its own datasets' eval splits at hand.
        scoreable = [n for n in names if n in held_out or not needs_held_out(n)]
        return evaluate_configured(model, tokenizer, scoreable, cfg, held_out).metrics

    return score
