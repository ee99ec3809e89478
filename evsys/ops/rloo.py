"""RLOO's objective (REINFORCE Leave-One-Out, Ahmadian et al. 2024) on one batch of scored
completions: pure functions of tensors, as TRL 1.16's RLOOTrainer computes them.

  reward     r - beta * sum over the completion's tokens of (log pi_old - log pi_ref)
             (the KL is a penalty on the reward, first-order, not a term of the loss)
  advantage  r_i - mean of the other G - 1 rewards of its prompt (the leave-one-out baseline);
             with normalize, then minus the batch's mean and over its std (+ 1e-4)
  loss       -min(rho * A, clip(rho, 1 - epsilon, 1 + epsilon_high) * A), mean over
             completions, where rho = pi / pi_old of the whole completion (its summed log-probs)

tests/test_rloo.py calls TRL's own RLOOTrainer code as the oracle. No evsys imports.
"""

from __future__ import annotations

import torch

STD_EPSILON = 1e-4  # TRL's: a batch whose advantages all agree normalizes to 0


def kl_penalized_rewards(
    rewards: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[completions] rewards less beta * each completion's summed KL, and the per-token KL
    (log pi_old - log pi_ref: can be negative per token; its mean is the logged train/kl)."""
    per_token_kl = old_logps - ref_logps
    return rewards - beta * (per_token_kl * mask).sum(-1), per_token_kl


def leave_one_out_advantages(
    rewards: torch.Tensor, num_generations: int, normalize: bool = False
) -> torch.Tensor:
    """Each reward minus the mean of the other rewards of its group: [prompts * G].

    Rows are grouped as sampled (a prompt's G completions consecutive). normalize: over the
    whole batch, with the sample std (Bessel-corrected), as TRL's normalize_advantages."""
    grouped = rewards.view(-1, num_generations)
    baselines = (grouped.sum(dim=1, keepdim=True) - grouped) / (num_generations - 1)
    advantages = (grouped - baselines).flatten()
    if normalize:
        advantages = (advantages - advantages.mean()) / (advantages.std() + STD_EPSILON)
    return advantages


def rloo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float,
    epsilon_high: float | None = None,
) -> torch.Tensor:
    """The clipped surrogate on whole completions: logps (with gradient), old_logps, mask
    [completions, tokens]; advantages [completions]; epsilon_high None: epsilon."""
    mask = mask.to(logps.dtype)
    high = epsilon if epsilon_high is None else epsilon_high
    ratio = torch.exp((logps * mask).sum(-1) - (old_logps * mask).sum(-1))
    clipped = ratio.clamp(1 - epsilon, 1 + high)
    return -torch.min(ratio * advantages, clipped * advantages).mean()
