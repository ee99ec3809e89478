"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024), on verifiable rewards.

It samples and scores exactly as GRPO does (evsys/lightning/grpo.py: G = num_generations
completions per prompt, the reward functions' weighted sum, num_iterations optimizer steps per
generation); what differs is the objective (evsys/ops/rloo.py), TRL 1.16's RLOOTrainer's:

  1. reward -= beta * the completion's summed log(pi_old / pi_ref) (the KL is in the reward);
  2. advantage = reward - the mean reward of the G - 1 other completions of its prompt
     (normalize_advantages: then standardized over the micro-batch);
  3. the clipped surrogate on each whole completion's ratio, averaged over completions.

The advantages are computed in the first step of a generation, where pi_old's log-probs are
those of the policy that sampled (TRL computes them at generation, the same values).
Unlike TRL, normalize_advantages standardizes over one micro-batch on one process, not over the
generation batch of every process (the same with one process and no gradient accumulation).
"""

from __future__ import annotations

import torch

from evsys.lightning.grpo import GRPOModule
from evsys.ops.rloo import kl_penalized_rewards, leave_one_out_advantages, rloo_loss


class RLOOModule(GRPOModule):
    """RLOO: GRPO's sampling and scoring, the leave-one-out advantage and RLOO's loss."""

    def roll_out(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        rollout = super().roll_out(batch, batch_idx)
        del rollout["advantages"]  # GRPO's; RLOO's need pi_old's log-probs (objective)
        return rollout

    def objective(
        self, logps: torch.Tensor, rollout: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        algorithm, mask = self.algorithm, rollout["mask"]
        rewards, kl = rollout["rewards"], None
        if algorithm.beta > 0:
            rewards, kl = kl_penalized_rewards(
                rewards, rollout["old_logps"], rollout["ref_logps"], mask, algorithm.beta
            )
        if "advantages" not in rollout:  # the generation's first step: kept for the others
            rollout["advantages"] = leave_one_out_advantages(
                rewards, algorithm.num_generations, algorithm.normalize_advantages
            )
        loss = rloo_loss(
            logps,
            rollout["old_logps"],
            rollout["advantages"],
            mask,
            algorithm.epsilon,
            algorithm.epsilon_high,
        )
        return loss, kl
