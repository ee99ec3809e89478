"""Group Relative Policy Optimization (GRPO) with verifiable rewards.

One training step, as in the paper (Shao et al. 2024, DeepSeekMath):

  1. for each prompt of the batch, sample G = num_generations completions from the current
     policy (temperature, KV cache, a generator seeded by (run seed, step));
  2. score every completion with the reward functions (their weighted sum is the reward);
  3. advantage = (reward - mean of its group) / (std of its group + 1e-4);
  4. the loss of algorithm.loss_type (evsys/ops/policy_loss.py: the clipped surrogate of
     grpo, dr_grpo, dapo, bnpo, or cispo's or sapo's, + beta * KL_k3(policy || ref)).

num_iterations (mu) optimizer steps reuse one generation: the first computes the log-probs
pi_old of the policy that sampled (logp.detach(), so its ratio is 1 in value and carries the
policy gradient), the next mu - 1 reuse them, and the ratio pi/pi_old moves away from 1, where
the variants' clipping differs. The prompts the loader hands those reuse steps are not used.
dynamic_sampling (DAPO's) trains only on the groups whose rewards differ.
The default loss_type="bnpo" is today's loss: TRL's GRPOTrainer with loss_type="bnpo" (equal
to its default "dapo" with one process and no gradient accumulation).
"""

from __future__ import annotations

import dataclasses

import torch

from evsys.config import GRPOConfig
from evsys.data.tasks import is_task
from evsys.data.tokenize import encode_prompts
from evsys.lightning.base import PostTrainingModule
from evsys.lightning.reference import ReferenceModel
from evsys.lightning.sharding import is_sharded, run_as_forward
from evsys.ops.eval_mode import evaluation_mode
from evsys.ops.logprobs import completion_logps
from evsys.ops.policy_loss import BY_NUM_ITEMS, LossSettings, policy_loss
from evsys.ops.sampling import completion_mask, sample_completions
from evsys.rewards import PER_FUNCTION, REWARD, Rewards

STD_EPSILON = 1e-4  # keeps a group whose rewards all agree at advantage 0, as TRL does


# ------------------------------------------------------------------------------- the objective
def group_advantages(
    rewards: torch.Tensor, num_generations: int, scale_by_std: bool = True
) -> torch.Tensor:
    """Each reward minus its group's mean (and over its group's std): [prompts * G].

    Rows are grouped as sampled: the G completions of one prompt are consecutive. The std is
    the sample std (Bessel-corrected), as in TRL.
    """
    grouped = rewards.view(-1, num_generations)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale_by_std:
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + STD_EPSILON)
    return advantages.flatten()


def loss_settings(algorithm: GRPOConfig) -> LossSettings:
    """The loss variant's settings, from the algorithm.* keys of the same names."""
    names = [item.name for item in dataclasses.fields(LossSettings)]
    return LossSettings(**{name: getattr(algorithm, name) for name in names})


# ------------------------------------------------------------------------------------ the module
class GRPOModule(PostTrainingModule):
    """GRPO: trains on prompts only; completions are sampled and scored in every step."""

    @classmethod
    def build_rows(cls, examples: list[dict], tokenizer, cfg, split: str) -> list[dict]:
        """Training rows are prompts (ids) with their example, for the reward functions.

        Held-out rows stay SFT's, so val/loss is the loss of the reference answers."""
        if split != "train":
            return super().build_rows(examples, tokenizer, cfg, split)
        task = cfg.data.dataset_name if is_task(cfg.data.dataset_name) else None
        prompts = encode_prompts(tokenizer, [example["prompt"] for example in examples])
        keep = cfg.data.max_length  # the end of a long prompt is where the answer starts
        return [
            {"prompt_ids": ids[-keep:], "example": {**example, "task": task}}
            for ids, example in zip(prompts, examples, strict=True)
        ]

    @classmethod
    def collate(cls, rows: list[dict], tokenizer, cfg, split: str) -> dict:
        if split != "train":
            return super().collate(rows, tokenizer, cfg, split)
        prompt_ids, prompt_mask = left_padded([row["prompt_ids"] for row in rows], tokenizer)
        return {
            "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask,
            "examples": [row["example"] for row in rows],
            "num_tokens": int(prompt_mask.sum()),  # replaced by the sampled rows' tokens
        }

    def __init__(
        self, model: torch.nn.Module, tokenizer, algorithm: GRPOConfig, seed: int = 0, **options
    ) -> None:
        super().__init__(model, tokenizer, algorithm, seed, **options)
        self.rewards = Rewards.of(algorithm)
        # optimizer step -> [completions, reward sum, each function's sum]: the last logging
        # window's, which the record keeps as the final train/reward (final_train_metrics)
        self.recent_rewards: dict[int, list[float]] = {}
        # The starting policy; made now, before any checkpoint is restored into the model.
        self.reference = ReferenceModel(model) if algorithm.beta > 0 else None
        self.sampling_seed = self.seed  # the run config's seed, passed in explicitly
        self.loss_settings = loss_settings(algorithm)
        # micro-batch -> its generation, trained on for num_iterations optimizer steps
        self.rollouts: dict[int, dict[str, torch.Tensor]] = {}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        algorithm = self.algorithm
        micro_batch = batch_idx % self.trainer.accumulate_grad_batches
        fresh = self.global_step % algorithm.num_iterations == 0
        if fresh or micro_batch not in self.rollouts:  # a resumed run without its rollouts
            self.rollouts[micro_batch] = self.roll_out(batch, batch_idx)
        # on this device (a checkpoint's rollouts load on the CPU)
        rollout = {
            name: tensor.to(self.device) for name, tensor in self.rollouts[micro_batch].items()
        }
        self.rollouts[micro_batch] = rollout
        input_ids = torch.cat([rollout["prompt_ids"], rollout["completion_ids"]], dim=1)
        attention_mask = torch.cat([rollout["prompt_mask"], rollout["mask"]], dim=1)
        mask = rollout["mask"]
        logps = run_as_forward(  # backend=fsdp: gathers the root's weights
            self.model,
            completion_logps,
            self.model, input_ids, attention_mask, mask.shape[1], algorithm.temperature, mask,
        )  # fmt: skip
        if "old_logps" not in rollout:  # pi_old: the policy that sampled, before any update
            rollout["old_logps"] = logps.detach()
        if self.reference is not None and "ref_logps" not in rollout:
            with self.reference.active() as reference:
                rollout["ref_logps"] = completion_logps(
                    reference, input_ids, attention_mask, mask.shape[1], algorithm.temperature, mask
                )
        loss, kl = self.objective(logps, rollout)
        batch["num_tokens"] = int(attention_mask.sum())  # what the throughput monitor counts
        self.log_step(loss, rollout, kl, len(batch["examples"]))
        return loss

    def objective(
        self, logps: torch.Tensor, rollout: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The loss of the rollout's completions, whose log-probs under the policy are
        `logps`, and its per-token KL to the reference (None without one)."""
        mask = rollout["mask"]
        num_items = None  # dapo's and cispo's normalizer: all processes' tokens, per process
        if self.algorithm.loss_type in BY_NUM_ITEMS:
            num_items = float(self.all_gather(mask.sum()).float().mean())
        return policy_loss(
            logps,
            rollout["old_logps"],
            rollout["advantages"],
            mask,
            self.loss_settings,
            ref_logps=rollout.get("ref_logps"),
            num_items=num_items,
        )

    def roll_out(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Samples and scores G completions of each prompt of `batch`: what the next
        num_iterations optimizer steps train on."""
        group = self.algorithm.num_generations
        prompt_ids = batch["prompt_ids"].repeat_interleave(group, dim=0)
        prompt_mask = batch["prompt_mask"].repeat_interleave(group, dim=0)
        examples = [example for example in batch["examples"] for _ in range(group)]
        completion_ids, mask = self.sample(prompt_ids, prompt_mask, batch_idx)
        rewards_per_function = self.score(completion_ids, mask, examples)
        weights = torch.tensor(self.rewards.weights, device=self.device)
        rewards = rewards_per_function @ weights
        self.remember_rewards(rewards, rewards_per_function)
        trained = {  # the completions the loss sees
            "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask,
            "completion_ids": completion_ids,
            "mask": mask,
            "advantages": group_advantages(rewards, group, self.algorithm.scale_rewards),
        }
        kept = spread_groups(rewards, group)
        if self.algorithm.dynamic_sampling and kept.any():  # none kept: all advantages are 0
            trained = {name: tensor[kept] for name, tensor in trained.items()}
        # what was sampled, for the curves
        sampled = {"rewards": rewards, "rewards_per_function": rewards_per_function}
        return {**trained, **sampled, "lengths": mask.sum(-1)}

    def sample(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, batch_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Completion ids and their mask (1 up to and including EOS), sampled without dropout
        from a generator seeded by (run seed, optimizer step, micro-batch, rank) alone, so a
        resumed or repeated run samples exactly the same completions."""
        micro_batch = batch_idx % self.trainer.accumulate_grad_batches
        seed = (
            self.sampling_seed * 1_000_003
            + self.global_step * 1_009
            + micro_batch * 101
            + self.global_rank
        )
        generator = torch.Generator(device=self.device).manual_seed(seed % 2**63)
        with evaluation_mode(self.model):
            completion_ids = sample_completions(
                self.model,
                prompt_ids,
                prompt_mask,
                max_new_tokens=self.algorithm.max_completion_length,
                temperature=self.algorithm.temperature,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                generator=generator,
                synced=is_sharded(self.model),
            )
        return completion_ids, completion_mask(completion_ids, self.tokenizer.eos_token_id)

    def score(
        self, completion_ids: torch.Tensor, mask: torch.Tensor, examples: list[dict]
    ) -> torch.Tensor:
        """[completions, reward functions]: every reward function's score of every completion."""
        eos = self.tokenizer.eos_token_id
        lengths = mask.sum(-1).tolist()
        texts = [
            # The text up to EOS; EOS and the padding after it are not part of the answer.
            self.tokenizer.decode([t for t in ids[:length] if t != eos], skip_special_tokens=True)
            for ids, length in zip(completion_ids.tolist(), lengths, strict=True)
        ]
        columns = self.rewards.columns(texts, examples)
        return torch.tensor(columns, dtype=torch.float32, device=self.device).T

    def log_step(
        self, loss: torch.Tensor, rollout: dict, kl: torch.Tensor | None, num_prompts: int
    ) -> None:
        group = self.algorithm.num_generations
        rewards, mask = rollout["rewards"], rollout["mask"]  # mask: the trained completions'
        rewards_per_function = rollout["rewards_per_function"]
        metrics = {
            "train/loss": loss,
            "train/reward": rewards.mean(),
            # TRL's reward_std: the spread inside groups, where the learning signal comes from.
            "train/reward_std": rewards.view(-1, group).std(dim=1).mean(),
            "train/completion_length": rollout["lengths"].float().mean(),
        }
        for name, column in zip(self.rewards.labels, rewards_per_function.T, strict=True):
            metrics[f"train/rewards/{name}"] = column.mean()
        if kl is not None:
            metrics["train/kl"] = (kl * mask).sum() / mask.sum().clamp(min=1)
        if self.algorithm.dynamic_sampling:  # the share of groups left out: all rewards equal
            metrics["train/flat_groups"] = 1 - spread_groups(rewards, group).float().mean()
        for key, value in metrics.items():
            self.log(
                key, value, batch_size=num_prompts, on_step=True, on_epoch=False,
                prog_bar=key in ("train/loss", "train/reward"),
            )  # fmt: skip
        self.log_lr()

    # ------------------------------------------------------------ the record's final rewards
    def remember_rewards(self, rewards: torch.Tensor, rewards_per_function: torch.Tensor) -> None:
        """Adds a micro-batch's rewards to its optimizer step's sums; forgets the steps before
        the last logging window (trainer.log_every_n_steps optimizer steps)."""
        sums = [float(len(rewards)), float(rewards.sum()), *rewards_per_function.sum(0).tolist()]
        step = self.global_step
        totals = self.recent_rewards.setdefault(step, [0.0] * len(sums))
        self.recent_rewards[step] = [
            total + value for total, value in zip(totals, sums, strict=True)
        ]
        window = self.trainer.log_every_n_steps
        self.recent_rewards = {s: v for s, v in self.recent_rewards.items() if s > step - window}

    def final_train_metrics(self) -> dict[str, float]:
        """train/reward and train/rewards/<fn>: the mean over every completion sampled in the
        last logging window (the last trainer.log_every_n_steps optimizer steps, fewer in a
        shorter run), on this process (rank 0 in a multi-process run, as its curves)."""
        if not self.recent_rewards:
            return {}
        count, reward, *per_function = (
            sum(c) for c in zip(*self.recent_rewards.values(), strict=True)
        )
        metrics = {f"train/{REWARD}": reward / count}
        for label, total in zip(self.rewards.labels, per_function, strict=True):
            metrics[f"train/{PER_FUNCTION}/{label}"] = total / count
        return metrics

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # A resumed run's window goes on from the checkpoint's: the same final rewards.
        checkpoint["recent_rewards"] = dict(self.recent_rewards)
        # ... and trains on the generation the uninterrupted run would have (num_iterations > 1)
        if self.algorithm.num_iterations == 1:
            return  # every step samples anew
        checkpoint["grpo_rollouts"] = {
            micro_batch: {name: tensor.cpu() for name, tensor in rollout.items()}
            for micro_batch, rollout in self.rollouts.items()
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.recent_rewards = dict(checkpoint.get("recent_rewards", {}))
        self.rollouts = dict(checkpoint.get("grpo_rollouts", {}))


def spread_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """[prompts * G] bools: the completions of groups whose rewards are not all equal (DAPO's
    dynamic sampling keeps only those; a group that agrees has advantages 0, no signal)."""
    grouped = rewards.view(-1, num_generations)
    spread = grouped.max(dim=1).values > grouped.min(dim=1).values
    return spread.repeat_interleave(num_generations)


def left_padded(prompts: list[list[int]], tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt ids padded on the left, and their mask: every prompt ends in the last column,
    where sampling continues."""
    width = max(len(ids) for ids in prompts)
    pad = tokenizer.pad_token_id
    input_ids = [[pad] * (width - len(ids)) + ids for ids in prompts]
    mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts]
    return torch.tensor(input_ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)
