"""Kahneman-Tversky Optimization (Ethayarajh et al. 2024) on unpaired labelled examples.

Each row is a prompt, a completion and a label: desirable (True) or undesirable (False) —
TRL's `KTOTrainer` data format, declared here as this module's own data shape (`LABELLED`).
No row needs a partner: thumbs-up / thumbs-down data as it is collected.

With r = beta * (log p_policy - log p_reference) of a completion, the loss of a row is

    desirable     w_d * (1 - sigmoid(r - beta * z))
    undesirable   w_u * (1 - sigmoid(beta * z - r))

averaged over the micro-batch, where z estimates KL(policy || reference): the mean over the
micro-batch of the log-ratio of *mismatched* sequences, each prompt with the completion of the
row before it, cyclically ((x_1, y_n), (x_2, y_1), ..., (x_n, y_{n-1})), as TRL builds them;
it is detached and clamped at 0. `loss_type=apo_zero_unpaired` (APO-zero, D'Oosterlinck et
al. 2024) drops z: 1 - sigmoid(r) for desirable rows, sigmoid(r) for undesirable ones. Built-in
tasks emit labelled rows: each problem once, its right answer (desirable) or a near miss
(undesirable), chosen by a coin seeded with the problem.

The reference is the starting policy, frozen (evsys/lightning/reference.py). With several
processes z is the mean of their micro-batches' estimates, clamped after averaging, as TRL
gathers it. Left out: precomputed reference log-probs (TRL's precompute_ref_log_probs).
"""

from __future__ import annotations

import logging
import random

import torch

from evsys.data.formats import ExampleFormat
from evsys.data.packing import collate_padded
from evsys.data.tokenize import IGNORE_INDEX, tokenize_examples
from evsys.lightning.base import PostTrainingModule
from evsys.lightning.kto_config import KTOConfig
from evsys.lightning.reference import ReferenceModel
from evsys.lightning.sharding import run_as_forward
from evsys.ops.chunked_logps import shifted_logps

log = logging.getLogger(__name__)

NO_LIMIT = 1 << 62  # tokenize whole sequences; they are cut to max_length when collated


# ---------------------------------------------------------------------------------------- data
def labelled_example(row: dict) -> dict:
    label = row["label"]
    if not isinstance(label, bool) and label not in (0, 1):
        raise ValueError(f"label {label!r} is not a boolean (true: desirable, false: undesirable)")
    return {"prompt": row["prompt"], "completion": row["completion"], "label": bool(label)}


def task_labelled_examples(task, split: str, n: int, seed: int) -> list[dict]:
    """n problems of a built-in task, each once: its answer labelled desirable or a near miss
    labelled undesirable, by a coin seeded with (task, seed, prompt)."""
    rows = []
    for pair in task.preference_examples(split, n, seed):
        desirable = random.Random(f"{task.name}/label/{seed}/{pair['prompt']}").random() < 0.5
        completion = pair["chosen"] if desirable else pair["rejected"]
        rows.append({"prompt": pair["prompt"], "completion": completion, "label": desirable})
    return rows


LABELLED = ExampleFormat(
    "labelled", ("prompt", "completion", "label"), labelled_example, task_labelled_examples
)


# ---------------------------------------------------------------------------------------- loss
def kto_losses(
    algorithm: KTOConfig,
    logps: torch.Tensor,
    reference_logps: torch.Tensor,
    labels: torch.Tensor,
    kl: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted loss per row, reward per row) from summed completion log-probs [rows];
    `labels` True for desirable rows, `kl` the batch's KL estimate z (unused by APO-zero)."""
    rewards = algorithm.beta * (logps - reference_logps)
    if algorithm.loss_type == "apo_zero_unpaired":
        desirable, undesirable = 1 - torch.sigmoid(rewards), torch.sigmoid(rewards)
    else:
        shifted = rewards - algorithm.beta * kl
        desirable, undesirable = 1 - torch.sigmoid(shifted), 1 - torch.sigmoid(-shifted)
    losses = torch.where(
        labels,
        algorithm.desirable_weight * desirable,
        algorithm.undesirable_weight * undesirable,
    )
    return losses, rewards.detach()


def kl_estimate(
    mismatched_logps: torch.Tensor, reference_mismatched_logps: torch.Tensor, gather=None
) -> torch.Tensor:
    """z: the mean log-ratio of the mismatched sequences, detached, never below 0; `gather`
    (Lightning's all_gather, with several processes) averages the processes' means first."""
    mean = (mismatched_logps - reference_mismatched_logps).mean().detach()
    if gather is not None:
        mean = gather(mean).mean()
    return mean.clamp(min=0)


# ---------------------------------------------------------------------------------------- rows
def tokenize_labelled(examples: list[dict], tokenizer) -> list[dict]:
    """Each example as prompt and completion token ids (EOS ending the completion) + label."""
    rows = []
    tokenized = tokenize_examples(examples, tokenizer, NO_LIMIT)  # none dropped: no limit
    for example, tokens in zip(examples, tokenized, strict=True):
        prompt_length = sum(label == IGNORE_INDEX for label in tokens["labels"])
        ids = tokens["input_ids"]
        rows.append(
            {"prompt_ids": ids[:prompt_length], "completion_ids": ids[prompt_length:],
             "label": example["label"]}
        )  # fmt: skip
    return rows


def mismatched_completions(rows: list[dict]) -> list[list[int]]:
    """Row i's KL completion: row i-1's completion, cyclically (TRL's rotation by +1)."""
    completions = [row["completion_ids"] for row in rows]
    return [completions[-1], *completions[:-1]]


def collate_labelled(rows: list[dict], pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """The rows as sequences, then the mismatched (KL) sequences, each cut to max_length."""

    def sequence(prompt: list[int], completion: list[int]) -> dict:
        ids = (prompt + completion)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt) + completion)[:max_length]
        return {"input_ids": ids, "labels": labels}

    matched = [sequence(row["prompt_ids"], row["completion_ids"]) for row in rows]
    kl = [
        sequence(row["prompt_ids"], other)
        for row, other in zip(rows, mismatched_completions(rows), strict=True)
    ]
    batch = collate_padded(matched, pad_id)
    batch.update({f"kl_{key}": value for key, value in collate_padded(kl, pad_id).items()})
    batch["label"] = torch.tensor([row["label"] for row in rows], dtype=torch.bool)
    batch["num_tokens"] = sum(len(s["input_ids"]) for s in matched)
    return batch


def _warn_if_unbalanced(rows: list[dict], algorithm: KTOConfig) -> None:
    """TRL's advice (KTO paper, eq. 8): with unequal counts, weigh the rarer label up so that
    w_d * n_d / (w_u * n_u) lies in [1, 4/3]."""
    desirable = max(sum(row["label"] for row in rows), 1)
    undesirable = max(len(rows) - desirable, 1)
    ratio = algorithm.desirable_weight * desirable / (algorithm.undesirable_weight * undesirable)
    if desirable != undesirable and not 1 <= ratio <= 4 / 3:
        log.warning(
            "%d desirable and %d undesirable training rows: desirable_weight * n_desirable / "
            "(undesirable_weight * n_undesirable) = %.2f, outside the KTO paper's [1, 1.33]; "
            "set algorithm.desirable_weight or algorithm.undesirable_weight (not both)",
            desirable, undesirable, ratio,
        )  # fmt: skip


# -------------------------------------------------------------------------------------- module
class KTOModule(PostTrainingModule):
    """KTO / APO-zero on unpaired labelled rows; the reference is the frozen starting policy."""

    example_format = LABELLED

    @classmethod
    def build_rows(cls, examples: list[dict], tokenizer, cfg, split: str) -> list[dict]:
        rows = tokenize_labelled(examples, tokenizer)  # never packed: each row is scored alone
        if split == "train":
            _warn_if_unbalanced(rows, cfg.algorithm)
        return rows

    @classmethod
    def collate(cls, rows: list[dict], tokenizer, cfg, split: str) -> dict:
        return collate_labelled(rows, tokenizer.pad_token_id, cfg.data.max_length)

    def __init__(
        self, model: torch.nn.Module, tokenizer, algorithm: KTOConfig, seed: int = 0, **options
    ) -> None:
        super().__init__(model, tokenizer, algorithm, seed, **options)
        # Made now, before Lightning restores a checkpoint: a resumed run keeps the true start.
        self.reference = ReferenceModel(model)

    def completion_logps(self, model, batch: dict, prefix: str = "") -> torch.Tensor:
        """Summed log-prob of each completion [rows]; prefix "kl_": of the mismatched ones."""
        if isinstance(model, ReferenceModel):
            with model.active() as reference:
                return self.completion_logps(reference, batch, prefix)
        logps, _ = run_as_forward(  # backend=fsdp: gathers the root's weights
            model, shifted_logps, model, *(batch[prefix + key] for key in SEQUENCE_KEYS)
        )
        return logps.sum(-1)

    def row_stats(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss, the KL estimate and the mean reward of each label of a batch."""
        logps = self.completion_logps(self.model, batch)
        with torch.no_grad():
            reference = self.completion_logps(self.reference, batch)
            kl = torch.zeros((), device=logps.device)
            if self.algorithm.loss_type == "kto":
                kl = kl_estimate(
                    self.completion_logps(self.model, batch, "kl_"),
                    self.completion_logps(self.reference, batch, "kl_"),
                    self.all_gather
                    if self._trainer is not None and self.trainer.world_size > 1
                    else None,
                )
        labels = batch["label"]
        losses, rewards = kto_losses(self.algorithm, logps, reference, labels, kl)
        stats = {"loss": losses.mean(), "kl": kl}
        for name, rows in (("rewards/chosen", labels), ("rewards/rejected", ~labels)):
            if rows.any():  # TRL logs a label's reward only when the batch has such rows
                stats[name] = rewards[rows].mean()
        return stats

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        stats = self.row_stats(batch)
        for name, value in stats.items():
            self.log(
                f"train/{name}", value, batch_size=len(batch["label"]),
                prog_bar=name == "loss", on_step=True, on_epoch=False,
            )  # fmt: skip
        self.log_lr()
        return stats["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        stats = self.row_stats(batch)
        for name in KTOConfig.validation_metrics:  # a ClassVar: not on the composed config
            self.log(f"val/{name}", stats[name], batch_size=len(batch["label"]), prog_bar=True)


SEQUENCE_KEYS = ("input_ids", "attention_mask", "position_ids", "labels")
