"""The GRPO family's loss on one batch of scored completions: a pure function of tensors.

Per completion token: an importance ratio rho = pi / pi_old (per token, or GSPO's one per
sequence: the exp of the mean log-ratio over its tokens), a per-token policy loss that differs
by `loss_type`, plus beta * k3 KL to the reference; then the aggregation `loss_type` names.

  grpo, dr_grpo, dapo, bnpo:  -min(rho * A, clip(rho, 1 - epsilon, 1 + epsilon_high) * A)
  cispo:                      -sg(min(rho, epsilon_high)) * A * logp   (clips the weight)
  sapo:                       -sigmoid(tau * (rho - 1)) * 4 / tau * A  (tau by the sign of A)

  grpo, sapo:    mean over each completion's tokens, then over completions
  bnpo:          sum over tokens / tokens of this batch
  dapo, cispo:   sum over tokens / `num_items` (tokens of the generation batch per process)
  dr_grpo:       sum over tokens / (completions * max_completion_length)

Each equals TRL 1.16's GRPOTrainer._compute_loss with the same settings (tests/test_policy_loss.py
calls TRL's method as the oracle). No evsys imports: the LightningModule gathers the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CLIPPED = ("grpo", "dr_grpo", "dapo", "bnpo")  # the PPO-style clipped surrogate
PER_SEQUENCE = ("grpo", "sapo")  # each completion weighs the same, whatever its length
BY_NUM_ITEMS = ("dapo", "cispo")  # normalized by the generation batch's token count


@dataclass(frozen=True)
class LossSettings:
    """What picks the variant: the algorithm.* keys of the same names, whose defaults and
    rules are on GRPOConfig (evsys/config.py)."""

    loss_type: str
    epsilon: float  # lower clip range (and upper, when epsilon_high is None)
    epsilon_high: float | None  # clip-higher (DAPO); cispo: the cap on the weight
    importance_sampling_level: str  # token | sequence (GSPO)
    beta: float  # weight of the KL penalty
    sapo_temperature_pos: float  # sapo: tau where the advantage is positive
    sapo_temperature_neg: float  # sapo: tau elsewhere
    max_completion_length: int  # dr_grpo's constant


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference), unbiased and >= 0 (Schulman's k3)."""
    log_ratio = ref_logps - logps
    return torch.exp(log_ratio) - log_ratio - 1


def importance_ratio(
    logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor, level: str
) -> torch.Tensor:
    """pi / pi_old: [completions, tokens] per token, or [completions, 1] per sequence (GSPO)."""
    log_ratio = logps - old_logps
    if level == "sequence":
        mean = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        log_ratio = mean.unsqueeze(-1)
    return torch.exp(log_ratio)


def per_token_policy_loss(
    ratio: torch.Tensor, logps: torch.Tensor, advantages: torch.Tensor, settings: LossSettings
) -> torch.Tensor:
    """The policy term per token (or per sequence, broadcast later); advantages: [n, 1]."""
    high = settings.epsilon if settings.epsilon_high is None else settings.epsilon_high
    kind = settings.loss_type
    if kind in CLIPPED:
        clipped = ratio.clamp(1 - settings.epsilon, 1 + high)
        return -torch.min(ratio * advantages, clipped * advantages)
    if kind == "cispo":
        weight = ratio.clamp(max=high).detach()
        return -weight * advantages * logps
    if kind == "sapo":
        tau = torch.where(
            advantages > 0, settings.sapo_temperature_pos, settings.sapo_temperature_neg
        )
        return -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * advantages
    raise ValueError(f"unknown loss_type {kind!r}")  # the schema's one_of rules this out


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, settings: LossSettings, num_items: float
) -> torch.Tensor:
    """One number from [completions, tokens] losses, as `settings.loss_type` weighs them."""
    kind = settings.loss_type
    masked = per_token * mask
    if kind in PER_SEQUENCE:
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if kind == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if kind == "dr_grpo":
        return masked.sum() / (per_token.shape[0] * settings.max_completion_length)
    return masked.sum() / max(num_items, 1.0)  # BY_NUM_ITEMS


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    ref_logps: torch.Tensor | None = None,
    num_items: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loss of a batch and its per-token KL (None when beta is 0).

    logps (with gradient), old_logps, ref_logps, mask: [completions, tokens]; advantages:
    [completions]. num_items: dapo's and cispo's normalizer, the completion tokens of the
    generation batch per process (default: this batch's)."""
    mask = mask.to(logps.dtype)
    advantages = advantages.unsqueeze(1)
    ratio = importance_ratio(logps, old_logps, mask, settings.importance_sampling_level)
    per_token = per_token_policy_loss(ratio, logps, advantages, settings)
    kl = None
    if settings.beta != 0.0:
        kl = k3_kl(logps, ref_logps)
        per_token = per_token + settings.beta * kl
    items = float(mask.sum()) if num_items is None else float(num_items)
    return aggregate(per_token, mask, settings, items), kl
