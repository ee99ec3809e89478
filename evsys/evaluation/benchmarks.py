"""Post-training scoring: each benchmark turns (model, tokenizer) into named metrics.

A benchmark is found by name through `get_benchmark`:
  <task>                 a built-in task (held-out loss + exact match of greedy generation)
  harness:<task>         an lm-evaluation-harness task (evsys/evaluation/harness.py)
  class:<module.Class>   your own Benchmark subclass (evsys/evaluation/custom.py)
and the training dataset's own eval split by its name. See docs/evaluation.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evsys.config import HarnessConfig
from evsys.data.packing import collate_padded
from evsys.data.tasks import TASKS, Task, get_task, is_task
from evsys.data.tokenize import encode_prompts, tokenize_examples
from evsys.lightning.chunked_logps import shifted_logps

GENERATION_TOKEN_BUDGET = 65_536  # prompt + new tokens per generate call: bounds its KV cache


@dataclass
class BenchmarkSettings:
    """How much of each benchmark to run and how; shared by all benchmarks of one evaluation."""

    data_seed: int = 0  # seed of the held-out examples (the data seed, not the run seed)
    num_eval: int = 256  # held-out examples generated per task
    max_examples: int = 256  # of those, how many are scored
    batch_size: int = 64  # sequences per forward pass / generate call
    max_new_tokens: int = 16  # generation budget per answer
    max_length: int = 128  # truncation limit for the loss
    harness: HarnessConfig | None = None  # settings of harness:<task> benchmarks (eval.harness)


class Benchmark:
    """Something that scores a model. `score` returns metric names without the eval/ prefix.

    Subclass it for your own benchmark (`class:<module.Class>` in eval.benchmarks): evsys
    builds it with the evaluation's settings and logs its scores as eval/<name>/<metric>.
    """

    name: str = ""

    def __init__(self, settings: BenchmarkSettings | None = None):
        self.settings = settings or BenchmarkSettings()

    def score(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        raise NotImplementedError


class HeldOutBenchmark(Benchmark):
    """Held-out prompt/completion pairs: teacher-forced loss and greedy exact match."""

    settings: BenchmarkSettings

    def examples(self) -> list[dict]:
        raise NotImplementedError

    def is_correct(self, prediction: str, example: dict) -> float:
        return float(prediction.strip() == example["completion"].strip())

    def score(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        s = self.settings
        examples = self.examples()
        predictions = generate_greedy(
            model, tokenizer, [ex["prompt"] for ex in examples], s.batch_size, s.max_new_tokens
        )
        scores = [self.is_correct(p, ex) for p, ex in zip(predictions, examples, strict=True)]
        return {
            "loss": completion_loss(model, tokenizer, examples, s.batch_size, s.max_length),
            "exact_match": sum(scores) / max(len(scores), 1),
        }


class TaskBenchmark(HeldOutBenchmark):
    """A built-in task's held-out split, scored by the task's own rule."""

    def __init__(self, task: Task, settings: BenchmarkSettings):
        self.task = task
        self.name = task.name
        self.settings = settings

    def examples(self) -> list[dict]:
        s = self.settings
        return self.task.examples("eval", s.num_eval, s.data_seed)[: s.max_examples]

    def is_correct(self, prediction: str, example: dict) -> float:
        return self.task.score(prediction, example)


class DatasetBenchmark(HeldOutBenchmark):
    """The eval split of a file or hub dataset, named by its short label."""

    def __init__(self, dataset_name: str, examples: list[dict], settings: BenchmarkSettings):
        self.name = benchmark_label(dataset_name)
        self._examples = examples
        self.settings = settings

    def examples(self) -> list[dict]:
        return self._examples[: self.settings.max_examples]


def benchmark_label(name: str) -> str:
    """A metric-friendly name: data/train.jsonl -> train, org/dataset -> dataset,
    harness:hellaswag -> hellaswag, class:pkg.bench.MyBench -> MyBench.name."""
    from evsys.evaluation import custom, harness

    if is_task(name):
        return name
    if harness.is_harness_name(name):
        return harness.harness_task(name)
    if custom.is_class_name(name):
        return custom.class_label(name)
    return Path(name.rstrip("/")).stem or name


def needs_held_out(name: str) -> bool:
    """Whether `name` is a dataset scored on its eval split (not a task, harness or class)."""
    return has_held_out_metrics(name) and not is_task(name)


def has_held_out_metrics(name: str) -> bool:
    """Whether `name` is scored as held-out loss + exact match (a task or a dataset)."""
    from evsys.evaluation import custom, harness

    return not (harness.is_harness_name(name) or custom.is_class_name(name))


def check_benchmark_kinds(names: list[str], harness_config: HarnessConfig | None = None) -> None:
    """harness:<task> and class:<path> names resolve (lm-eval installed, the task known, the
    class importable), or a ConfigError says why; other names are left to the caller."""
    from evsys.evaluation import custom, harness

    for name in names:
        if custom.is_class_name(name):
            custom.benchmark_class(name)
    tasks = [harness.harness_task(name) for name in names if harness.is_harness_name(name)]
    harness.check_harness_tasks(tasks, harness_config or HarnessConfig())


def check_benchmark_names(
    names: list[str], held_out_names: list[str], harness_config: HarnessConfig | None = None
) -> None:
    """Fail before training when a benchmark name resolves to nothing."""
    check_benchmark_kinds(names, harness_config)
    for name in names:
        if name not in held_out_names and needs_held_out(name):
            raise ValueError(
                f"eval.benchmarks: unknown benchmark {name!r}; known benchmarks are: "
                f"{', '.join(known_benchmarks())}, the training dataset itself, "
                "harness:<task> or class:<module.Class>"
            )


def known_benchmarks() -> list[str]:
    return sorted(TASKS)


def get_benchmark(name: str, settings: BenchmarkSettings) -> Benchmark:
    """The benchmark called `name`; a ValueError names the known ones when there is none."""
    from evsys.evaluation import custom, harness

    if is_task(name):
        return TaskBenchmark(get_task(name), settings)
    if harness.is_harness_name(name):
        return harness.HarnessBenchmark(harness.harness_task(name), settings)
    if custom.is_class_name(name):
        return custom.custom_benchmark(name, settings)
    raise ValueError(
        f"unknown benchmark {name!r}; known benchmarks are: {', '.join(known_benchmarks())}"
    )


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
) -> dict[str, float]:
    """Every named benchmark's metrics as {"eval/<name>/<metric>": value}.

    `held_out` maps dataset names that are not built-in tasks (a file, a hub id) to their
    eval examples, so the training data's own eval split can be a benchmark. `harness` holds
    the settings of harness:<task> benchmarks.
    """
    settings = BenchmarkSettings(
        data_seed=data_seed,
        num_eval=num_eval,
        max_examples=max_examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        max_length=max_length,
        harness=harness,
    )
    # Resolve all names first, so a typo fails before any (slow) scoring.
    held_out = held_out or {}
    benchmarks = [
        DatasetBenchmark(name, held_out[name], settings)
        if name in held_out
        else get_benchmark(name, settings)
        for name in names
    ]
    metrics: dict[str, float] = {}
    with evaluation_mode(model):
        for benchmark in benchmarks:
            for metric, value in benchmark.score(model, tokenizer).items():
                metrics[f"eval/{benchmark.name}/{metric}"] = float(value)
    return metrics


def evaluate_configured(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    names: list[str],
    cfg,
    held_out: dict[str, list[dict]] | None = None,
) -> dict[str, float]:
    """`evaluate_benchmarks` with the settings of a run config (data.* and eval.*), rounded."""
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
    )
    return {key: round(float(value), 6) for key, value in scores.items()}


def harness_settings(cfg) -> HarnessConfig:
    """eval.harness of a run config as a HarnessConfig (defaults where a config lacks it)."""
    node = cfg.eval.get("harness")
    return HarnessConfig(**node) if node else HarnessConfig()


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the model's previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def completion_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    batch_size: int,
    max_length: int,
) -> float:
    """Mean cross entropy per target token (completion + EOS) over all examples, teacher forced."""
    tokenized = tokenize_examples(examples, tokenizer, max_length)
    total, count = 0.0, 0
    for start in range(0, len(tokenized), batch_size):
        batch = collate_padded(tokenized[start : start + batch_size], tokenizer.pad_token_id)
        batch = {key: value.to(model.device) for key, value in batch.items()}
        # Only target positions reach the LM head, in chunks: no full-vocabulary logits.
        logps, mask = shifted_logps(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["position_ids"],
            batch["labels"],
        )
        total -= float(logps.sum())
        count += int(mask.sum())
    return total / max(count, 1)


def generate_greedy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    token_budget: int = GENERATION_TOKEN_BUDGET,
) -> list[str]:
    """The model's greedy continuation of each prompt, up to (not including) EOS.

    Prompts are generated longest first, so each batch holds prompts of similar length (little
    left padding), at most `batch_size` of them and at most `token_budget` tokens of prompt
    plus continuation; a batch stops as soon as every row has produced EOS (generate does
    this). The results come back in the order of `prompts`.
    """
    encoded = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    predictions: list[str | None] = [None] * len(encoded)
    with evaluation_mode(model):
        for indices in _generation_batches(
            order, encoded, batch_size, max_new_tokens, token_budget
        ):
            batch = _left_padded([encoded[i] for i in indices], tokenizer.pad_token_id)
            batch = {key: value.to(model.device) for key, value in batch.items()}
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
            for index, ids in zip(indices, new_tokens, strict=True):
                predictions[index] = _decode_answer(tokenizer, ids)
    return predictions


def _generation_batches(
    order: list[int],
    encoded: list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    token_budget: int,
) -> list[list[int]]:
    """Consecutive runs of `order` (longest prompt first) within both limits."""
    batches: list[list[int]] = []
    for index in order:
        if batches:
            current = batches[-1]
            width = len(encoded[current[0]]) + max_new_tokens  # the first is the longest
            if len(current) < batch_size and (len(current) + 1) * width <= token_budget:
                current.append(index)
                continue
        batches.append([index])
    return batches


def _left_padded(prompts: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    # Left padding puts every prompt's last token in the last column, where generation continues;
    # generate derives position ids from the attention mask, so padding does not shift them.
    width = max(len(ids) for ids in prompts)
    input_ids = [[pad_id] * (width - len(ids)) + ids for ids in prompts]
    attention_mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts]
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
    }


def _decode_answer(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    # Finished rows are filled with padding after EOS; everything from the first EOS is dropped.
    if tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return tokenizer.decode(ids, skip_special_tokens=True)
