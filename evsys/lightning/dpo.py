"""Direct Preference Optimization and two common variants, on prompt/chosen/rejected pairs.

For each pair the policy scores both answers by their log-probability given the prompt
(completion tokens and EOS only). The loss prefers the chosen answer:

    sigmoid  DPO (Rafailov et al. 2023): -log sigmoid(beta * (chosen log-ratio - rejected
             log-ratio)), a log-ratio being log p_policy - log p_reference of the answer;
             with label_smoothing e, the conservative form (cDPO) that assumes a share e of the
             labels is flipped.
    ipo      IPO (Azar et al. 2023): (h - 1 / (2 beta))^2 with h the difference of the
             per-token (length-normalised) log-ratios, as TRL computes it.
    simpo    SimPO (Meng et al. 2024): reference-free, -log sigmoid(beta * (mean log p of the
             chosen tokens - mean log p of the rejected tokens) - gamma), label smoothing as
             in sigmoid.

`sft_weight` adds that many times the chosen answers' mean token NLL to any of them (RPO,
Pang et al. 2024; TRL's loss_type=[..., "sft"]): it keeps the chosen answers likely while
the pair margins grow, where pure DPO often lowers both answers' log-probs.

The reference is the starting policy, frozen (see evsys/lightning/reference.py). Its
log-probs can be computed for every pair once, before training (`precompute_ref_logps`), so
no reference forward runs per step and the reference copy is freed. Rewards are what TRL logs:
beta times each answer's log-ratio (for simpo, beta times its mean log-prob).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from evsys.data.formats import PREFERENCE
from evsys.data.packing import collate_padded
from evsys.data.tokenize import IGNORE_INDEX, tokenize_examples
from evsys.lightning.base import PostTrainingModule
from evsys.lightning.dpo_config import DPOConfig
from evsys.lightning.reference import ReferenceModel
from evsys.lightning.sharding import run_as_forward
from evsys.ops.chunked_logps import shifted_logps

log = logging.getLogger(__name__)

NO_LIMIT = 1 << 62  # tokenize whole sequences; pairs are cut together afterwards


# ---------------------------------------------------------------------------------------- loss
def preference_losses(
    algorithm: DPOConfig,
    logps: tuple[torch.Tensor, torch.Tensor],
    reference_logps: tuple[torch.Tensor, torch.Tensor] | None,
    lengths: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss per pair, chosen reward, rejected reward) from summed answer log-probs.

    Each argument is a (chosen, rejected) pair of [pairs] tensors: the policy's and the
    reference's summed log-probs of each answer, and each answer's scored token count.
    `reference_logps` is unused (may be None) for simpo.
    """
    beta, smoothing = algorithm.beta, algorithm.label_smoothing
    if algorithm.loss_type == "simpo":
        chosen, rejected = (logp / length for logp, length in zip(logps, lengths, strict=True))
        margin = beta * (chosen - rejected) - algorithm.simpo_gamma
        losses = _smoothed_logistic(margin, smoothing)
        return losses, beta * chosen.detach(), beta * rejected.detach()
    chosen, rejected = (logp - ref for logp, ref in zip(logps, reference_logps, strict=True))
    if algorithm.loss_type == "ipo":
        per_token = (chosen / lengths[0]) - (rejected / lengths[1])
        losses = (per_token - 1 / (2 * beta)) ** 2
    else:
        losses = _smoothed_logistic(beta * (chosen - rejected), smoothing)
    return losses, beta * chosen.detach(), beta * rejected.detach()


def _smoothed_logistic(margin: torch.Tensor, smoothing: float) -> torch.Tensor:
    return -(1 - smoothing) * F.logsigmoid(margin) - smoothing * F.logsigmoid(-margin)


# ---------------------------------------------------------------------------------------- rows
def tokenize_pairs(examples: list[dict], tokenizer, max_length: int) -> list[dict]:
    """Each pair as chosen and rejected token rows, prompt masked, each cut to max_length.

    A pair where either answer loses all its tokens to the cut is dropped: it has nothing to
    compare.
    """
    chosen = tokenize_examples(examples, tokenizer, NO_LIMIT)
    rejected_examples = [{"prompt": ex["prompt"], "completion": ex["rejected"]} for ex in examples]
    rejected = tokenize_examples(rejected_examples, tokenizer, NO_LIMIT)
    rows, dropped = [], 0
    for good, bad in zip(chosen, rejected, strict=True):
        row = {
            "chosen_input_ids": good["input_ids"][:max_length],
            "chosen_labels": good["labels"][:max_length],
            "rejected_input_ids": bad["input_ids"][:max_length],
            "rejected_labels": bad["labels"][:max_length],
        }
        if _scores_nothing(row["chosen_labels"]) or _scores_nothing(row["rejected_labels"]):
            dropped += 1
            continue
        rows.append(row)
    if dropped:
        log.warning(
            "%d of %d preference pairs lost a whole answer to max_length=%d and were dropped",
            dropped, len(examples), max_length,
        )  # fmt: skip
    return rows


def _scores_nothing(labels: list[int]) -> bool:
    return all(label == IGNORE_INDEX for label in labels)


def collate_pairs(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """One padded batch of 2 x pairs sequences, all chosen answers first, then all rejected
    (one forward pass scores both), with the reference log-probs where precomputed."""
    sequences = [
        {"input_ids": row[f"{side}_input_ids"], "labels": row[f"{side}_labels"]}
        for side in ("chosen", "rejected")
        for row in rows
    ]
    batch = collate_padded(sequences, pad_id)
    batch["num_tokens"] = sum(len(sequence["input_ids"]) for sequence in sequences)
    if all("ref_chosen_logps" in row for row in rows):
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            batch[key] = torch.tensor([row[key] for row in rows], dtype=torch.float32)
    return batch


# -------------------------------------------------------------------------------------- module
class DPOModule(PostTrainingModule):
    """DPO / IPO / SimPO on preference pairs; the reference is the frozen starting policy."""

    example_format = PREFERENCE

    @classmethod
    def build_rows(cls, examples: list[dict], tokenizer, cfg, split: str) -> list[dict]:
        return tokenize_pairs(examples, tokenizer, cfg.data.max_length)  # pairs are never packed

    @classmethod
    def collate(cls, rows: list[dict], tokenizer, cfg, split: str) -> dict:
        return collate_pairs(rows, tokenizer.pad_token_id)

    def __init__(
        self, model: torch.nn.Module, tokenizer, algorithm: DPOConfig, seed: int = 0, **options
    ) -> None:
        super().__init__(model, tokenizer, algorithm, seed, **options)
        # Made now, before Lightning restores a checkpoint: a resumed run keeps the true start.
        self.reference = ReferenceModel(model) if self.uses_reference else None

    @property
    def uses_reference(self) -> bool:
        return self.algorithm.loss_type != "simpo"

    def on_fit_start(self) -> None:
        if self.reference is not None and self.algorithm.precompute_ref_logps:
            data = self.trainer.datamodule
            for rows in (data.train_rows, data.eval_examples):
                self.precompute_reference_logps(rows)
            self.reference = None  # every pair carries its reference log-probs now

    @torch.no_grad()
    def precompute_reference_logps(self, rows: list[dict], batch_size: int = 64) -> None:
        """Add the reference's summed log-probs of both answers to every row, in place."""
        log.info("precomputing reference log-probs of %d preference pairs", len(rows))
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            batch = collate_pairs(chunk, self.tokenizer.pad_token_id)
            batch = {
                key: value.to(self.device) for key, value in batch.items() if key != "num_tokens"
            }
            chosen, rejected = self.reference_logps(batch)
            for row, good, bad in zip(chunk, chosen.tolist(), rejected.tolist(), strict=True):
                row["ref_chosen_logps"], row["ref_rejected_logps"] = good, bad

    def sequence_logps(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed log-prob of each answer, its token count), both [2 x pairs].

        `model` is the policy or the ReferenceModel; only answer tokens reach the LM head."""
        if isinstance(model, ReferenceModel):
            with model.active() as reference:
                return self.sequence_logps(reference, batch)
        logps, mask = run_as_forward(  # backend=fsdp: gathers the root's weights
            model,
            shifted_logps,
            model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["position_ids"],
            batch["labels"],
        )
        return logps.sum(-1), mask.sum(-1)

    def reference_logps(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if "ref_chosen_logps" in batch:
            return batch["ref_chosen_logps"], batch["ref_rejected_logps"]
        logps, _ = self.sequence_logps(self.reference, batch)
        return logps.chunk(2)

    def pair_stats(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss and the reward statistics of a batch of pairs."""
        logps, lengths = self.sequence_logps(self.model, batch)
        reference = self.reference_logps(batch) if self.uses_reference else None
        losses, chosen, rejected = preference_losses(
            self.algorithm, logps.chunk(2), reference, lengths.chunk(2)
        )
        # Token-mean over the batch, like SFT's loss, so sft_weight=1 weighs both alike.
        chosen_nll = -logps.chunk(2)[0].sum() / lengths.chunk(2)[0].sum().clamp(min=1)
        return {
            "loss": losses.mean() + self.algorithm.sft_weight * chosen_nll,
            "chosen_nll": chosen_nll.detach(),
            "rewards/chosen": chosen.mean(),
            "rewards/rejected": rejected.mean(),
            "rewards/margins": (chosen - rejected).mean(),
            "rewards/accuracy": (chosen > rejected).float().mean(),
        }

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        stats = self.pair_stats(batch)
        pairs = batch["input_ids"].shape[0] // 2
        for name, value in stats.items():
            # sync_dist: with several processes, the mean over all of them (equal pair counts).
            self.log(
                f"train/{name}", value, batch_size=pairs, prog_bar=name == "loss",
                on_step=True, on_epoch=False, sync_dist=True,
            )  # fmt: skip
        self.log_lr()
        return stats["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        stats = self.pair_stats(batch)
        pairs = batch["input_ids"].shape[0] // 2
        for name, value in stats.items():
            self.log(
                f"val/{name}", value, batch_size=pairs, prog_bar=name == "loss", sync_dist=True
            )
