"""A Bradley-Terry reward model on prompt/chosen/rejected pairs, as TRL's RewardTrainer.

The policy's body gets a linear head with one output (transformers'
AutoModelForSequenceClassification, num_labels=1): the reward of a sequence is the head's
output at its last non-pad token. The loss of a pair is

    -log sigmoid(r_chosen - r_rejected - margin)  (+ c * mean((r_chosen + r_rejected)^2))

with margin 0 unless a pair carries one, and c = center_rewards_coefficient (off by default).
What is exported is the classifier, loadable with AutoModelForSequenceClassification and usable
as a GRPO reward by path (`model:<dir>`, evsys/rewards.py). It generates nothing, so a run
scores no benchmark (eval.benchmarks=[]; a run with some is refused). Left out: a margin
column in the data (the loss takes one), LoRA and FSDP.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
import transformers

from evsys.data.formats import PREFERENCE
from evsys.errors import ConfigError
from evsys.lightning.base import PostTrainingModule
from evsys.lightning.dpo import DPOModule, collate_pairs, tokenize_pairs
from evsys.lightning.reward_model_config import RewardModelConfig


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float | None = None,
) -> torch.Tensor:
    """The mean loss of [pairs] rewards of the chosen and the rejected answers."""
    difference = chosen - rejected if margin is None else chosen - rejected - margin
    loss = -F.logsigmoid(difference).mean()
    if center_rewards_coefficient is not None:
        loss = loss + center_rewards_coefficient * torch.mean((chosen + rejected) ** 2)
    return loss


def sequence_classifier(causal_lm: transformers.PreTrainedModel) -> transformers.PreTrainedModel:
    """A one-output sequence classifier sharing `causal_lm`'s body (its LM head dropped)."""
    if hasattr(causal_lm, "peft_config"):
        raise ConfigError(
            "algorithm=reward_model with model.lora.r > 0: a LoRA reward model is not supported "
            "yet; set model.lora.r=0"
        )
    config = copy.deepcopy(causal_lm.config)
    config.num_labels = 1
    config.architectures = None
    classifier = transformers.AutoModelForSequenceClassification.from_config(config)
    prefix = classifier.base_model_prefix
    setattr(classifier, prefix, getattr(causal_lm, prefix))
    return classifier


class RewardModelModule(PostTrainingModule):
    """Bradley-Terry on preference pairs; the model is a one-output sequence classifier."""

    example_format = PREFERENCE

    @classmethod
    def build_rows(cls, examples: list[dict], tokenizer, cfg, split: str) -> list[dict]:
        return tokenize_pairs(examples, tokenizer, cfg.data.max_length)  # as DPO: chosen+rejected

    @classmethod
    def collate(cls, rows: list[dict], tokenizer, cfg, split: str) -> dict:
        return collate_pairs(rows, tokenizer.pad_token_id)  # all chosen first, then all rejected

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        algorithm: RewardModelConfig,
        seed: int = 0,
        **options,
    ) -> None:
        super().__init__(sequence_classifier(model), tokenizer, algorithm, seed, **options)

    def pair_stats(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss, the share of pairs ranked right and the mean reward margin."""
        rewards = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        chosen, rejected = rewards.logits.squeeze(-1).chunk(2)
        coefficient = self.algorithm.center_rewards_coefficient
        loss = bradley_terry_loss(chosen, rejected, batch.get("margin"), coefficient)
        return {
            "loss": loss,
            "accuracy": (chosen > rejected).float().mean(),
            "margin": (chosen - rejected).detach().mean(),
        }

    # Logged as DPO logs its pairs: train/<stat> each step, val/<stat> each validation.
    training_step = DPOModule.training_step
    validation_step = DPOModule.validation_step
