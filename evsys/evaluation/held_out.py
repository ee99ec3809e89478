"""Held-out prompt/completion benchmarks: teacher-forced loss and greedy exact match.

A built-in task's held-out split (TaskBenchmark) or a dataset's eval split (DatasetBenchmark).
Plain text (every prompt empty: nothing to generate from) is scored by loss and perplexity.
An arm with reward functions (algorithm=grpo, settings.rewards) also scores the same greedy
answers (eval.max_new_tokens) with them: reward and rewards/<fn>, per item like every metric.
"""

from __future__ import annotations

import hashlib
import math

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evsys.data.packing import collate_padded
from evsys.data.tasks import Task
from evsys.data.tokenize import encode_prompts, tokenize_examples
from evsys.evaluation.base import Benchmark, BenchmarkSettings
from evsys.evaluation.names import benchmark_label
from evsys.ops.chunked_logps import shifted_logps
from evsys.ops.eval_mode import evaluation_mode

GENERATION_TOKEN_BUDGET = 65_536  # prompt + new tokens per generate call: bounds its KV cache


class HeldOutBenchmark(Benchmark):
    """Held-out prompt/completion pairs: teacher-forced loss and greedy exact match."""

    settings: BenchmarkSettings
    task_name: str | None = None  # the built-in task a reward function may score by

    def examples(self) -> list[dict]:
        raise NotImplementedError

    def is_correct(self, prediction: str, example: dict) -> float:
        return float(prediction.strip() == example["completion"].strip())

    def score(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        """Mean over items of each item's exact match and loss; the items in `item_scores`."""
        s = self.settings
        examples = self.examples()
        if examples and not any(example["prompt"] for example in examples):
            return self._score_text(model, tokenizer, examples)
        predictions = generate_greedy(
            model, tokenizer, [ex["prompt"] for ex in examples], s.batch_size, s.max_new_tokens
        )
        losses = completion_losses(model, tokenizer, examples, s.batch_size, s.max_length)
        rewards = self._rewards(predictions, examples)
        self.item_scores = [
            {
                "item": item_id(index, example),
                "exact_match": float(self.is_correct(prediction, example)),
                "loss": loss,
                **reward,
                "prediction": prediction,
            }
            for index, (example, prediction, loss, reward) in enumerate(
                zip(examples, predictions, losses, rewards, strict=True)
            )
        ]
        count = max(len(self.item_scores), 1)
        return {
            metric: math.fsum(item[metric] for item in self.item_scores) / count
            for metric in ("loss", "exact_match", *(s.rewards.metrics if s.rewards else ()))
        }

    def _rewards(self, predictions: list[str], examples: list[dict]) -> list[dict[str, float]]:
        """Each greedy answer's reward and rewards/<fn>, as training scores a sampled one (the
        example carries its task, as GRPO's training rows do); {} each without rewards."""
        rewards = self.settings.rewards
        if rewards is None:
            return [{} for _ in examples]
        examples = [{**example, "task": self.task_name} for example in examples]
        return rewards.item_scores(predictions, examples)

    def _score_text(self, model, tokenizer, examples: list[dict]) -> dict[str, float]:
        """Loss per token of each text, and the perplexity exp(mean loss)."""
        s = self.settings
        losses = completion_losses(model, tokenizer, examples, s.batch_size, s.max_length)
        self.item_scores = [
            {"item": item_id(index, example), "loss": loss}
            for index, (example, loss) in enumerate(zip(examples, losses, strict=True))
        ]
        loss = math.fsum(losses) / max(len(losses), 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


class TaskBenchmark(HeldOutBenchmark):
    """A built-in task's held-out split, scored by the task's own rule."""

    def __init__(self, task: Task, settings: BenchmarkSettings):
        self.task = task
        self.name = self.task_name = task.name
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


def completion_losses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    batch_size: int,
    max_length: int,
) -> list[float]:
    """Each example's mean cross entropy per target token (completion + EOS), teacher forced.

    Batches are taken longest first, so each holds examples of similar length (little right
    padding, which every layer would otherwise compute); the losses come back in the order
    of `examples`.
    """
    tokenized = tokenize_examples(examples, tokenizer, max_length)
    order = sorted(range(len(tokenized)), key=lambda i: -len(tokenized[i]["input_ids"]))
    losses: list[float] = [0.0] * len(tokenized)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = collate_padded([tokenized[i] for i in indices], tokenizer.pad_token_id)
        batch = {key: value.to(model.device) for key, value in batch.items()}
        # Only target positions reach the LM head, in chunks: no full-vocabulary logits.
        logps, mask = shifted_logps(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["position_ids"],
            batch["labels"],
        )
        counts = mask.sum(-1).clamp(min=1)
        for index, loss in zip(indices, (-logps.sum(-1) / counts).tolist(), strict=True):
            losses[index] = loss
    return losses


def item_id(index: int, example: dict) -> str:
    """A stable id of a held-out item: its place and a hash of its text. Arms and seeds of a
    sweep score the same items (the split is seeded by data.seed), so ids pair them."""
    text = f"{example['prompt']}\x00{example['completion']}".encode()
    return f"{index}-{hashlib.sha1(text).hexdigest()[:8]}"


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
