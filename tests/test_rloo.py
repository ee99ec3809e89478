"""algorithm=rloo: advantages, KL-penalized rewards and loss against TRL 1.16's RLOOTrainer,
the config's rules, and a real run that completes and records train/reward.

The oracles are TRL's own methods, each called on a minimal stand-in trainer that carries the
attributes it reads: `_generate_and_score_completions` (rewards, KL penalty, leave-one-out
advantages; its generation, log-prob and reward calls return the fixed batch's) and
`_compute_loss` (its log-prob call returns the fixed batch's, so the gradient flows to them).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from types import SimpleNamespace

import pytest
import torch

from evsys import compose_run_config, run_experiment
from evsys.errors import ConfigError
from evsys.lightning.rloo_config import RLOOConfig
from evsys.ops.rloo import kl_penalized_rewards, leave_one_out_advantages, rloo_loss
from tests.conftest import FAST
from tests.test_grpo import GRPO
from tests.test_policy_loss import fixed_batch, trl_inputs

GROUP = 3  # fixed_batch's: 6 completions, 2 prompts


def accelerator() -> SimpleNamespace:
    """One process: gathering and reducing leave a tensor as it is."""
    same = lambda x, *_, **__: x  # noqa: E731
    return SimpleNamespace(
        device="cpu", process_index=0, num_processes=1, gather=same, reduce=same,
        gather_for_metrics=same,
    )  # fmt: skip


def trl_advantages(batch: dict, beta: float, normalize: bool, monkeypatch) -> torch.Tensor:
    """RLOOTrainer._generate_and_score_completions itself, on the fixed batch."""
    from trl.trainer import rloo_trainer

    same = lambda x, *_, **__: x  # noqa: E731  one process: nothing to gather
    monkeypatch.setattr(rloo_trainer, "gather", same)
    monkeypatch.setattr(rloo_trainer, "gather_object", same)
    mask = batch["mask"]
    completions = [[7] * int(length) for length in mask.sum(-1)]  # ragged: the batch's mask
    logps = iter([batch["old_logps"], batch["ref_logps"]])  # the policy's, then the reference's
    trainer = SimpleNamespace(
        accelerator=accelerator(),
        model=SimpleNamespace(training=True, is_gradient_checkpointing=False),
        ref_model=object(),
        args=SimpleNamespace(per_device_train_batch_size=6, gradient_checkpointing_kwargs=None),
        _generate=lambda prompts: ([[1, 2]] * 6, completions, ["text"] * 6),
        _get_per_token_logps_and_entropies=lambda *a, **k: (next(logps), None, None),
        _calculate_rewards=lambda *a: batch["rewards"].unsqueeze(1),
        _tokenizer=SimpleNamespace(pad_token_id=0),
        pad_to_multiple_of=None,
        mask_truncated_completions=False,
        num_generations=GROUP,
        reward_weights=torch.ones(1),
        reward_func_names=["reward"],
        reward_clip_range=None,
        beta=beta,
        normalize_advantages=normalize,
        log_multimodal=False,
        _metrics={"train": defaultdict(list)},
        _logs={
            "prompt": deque(),
            "completion": deque(),
            "advantages": deque(),
            "rewards": defaultdict(deque),
            "extra": defaultdict(deque),
        },  # fmt: skip
        _pending_extra_logs={},
        _pending_metrics={},
    )
    inputs = [{"prompt": "p"}] * 6
    output = rloo_trainer.RLOOTrainer._generate_and_score_completions(trainer, inputs)
    return output["advantages"], trainer._metrics["train"]


def trl_loss(batch: dict, epsilon: float, epsilon_high: float) -> torch.Tensor:
    """RLOOTrainer._compute_loss itself, on the fixed batch (pi_old: its summed log-probs)."""
    from trl import RLOOTrainer

    logps, mask = batch["logps"], batch["mask"]
    trainer = SimpleNamespace(
        accelerator=accelerator(),
        model=SimpleNamespace(training=True),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        epsilon_low=epsilon,
        epsilon_high=epsilon_high,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
    )
    inputs = {**trl_inputs(batch), "old_logps": (batch["old_logps"] * mask).sum(1)}
    return RLOOTrainer._compute_loss(trainer, None, inputs)


def evsys_advantages(batch: dict, beta: float, normalize: bool) -> tuple[torch.Tensor, float]:
    """evsys's advantages and train/kl (the per-token KL's mean over completion tokens)."""
    mask = batch["mask"]
    rewards, kl = kl_penalized_rewards(
        batch["rewards"], batch["old_logps"], batch["ref_logps"], mask, beta
    )
    kl_mean = float((kl * mask).sum() / mask.sum())
    return leave_one_out_advantages(rewards, GROUP, normalize), kl_mean


# ------------------------------------------------------------------------------ the oracle: TRL
@pytest.mark.parametrize("beta", [0.0, 0.05])
@pytest.mark.parametrize("normalize", [False, True])
def test_advantages_match_trl(beta, normalize, monkeypatch):
    batch = fixed_batch()
    expected, trl_metrics = trl_advantages(batch, beta, normalize, monkeypatch)
    advantages, kl = evsys_advantages(batch, beta, normalize)
    torch.testing.assert_close(advantages, expected, rtol=0, atol=1e-5)
    if beta:
        assert kl == pytest.approx(trl_metrics["kl"][0], abs=1e-5)


def test_leave_one_out_baseline_by_hand():
    """r_i minus the mean of the others: [1, 0, 0.5] -> [0.75, -0.75, 0]; a flat group: 0."""
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.3, 0.3, 0.3])
    expected = torch.tensor([0.75, -0.75, 0.0, 0.0, 0.0, 0.0])
    torch.testing.assert_close(leave_one_out_advantages(rewards, GROUP), expected)


@pytest.mark.parametrize("epsilon_high", [None, 0.28, 5.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_gradient_match_trl(epsilon_high, seed):
    batch = fixed_batch(seed)
    # pi_old near the policy: some completions' ratios inside the clip range, some outside
    batch["old_logps"] = batch["logps"].detach() + 0.05 * torch.randn(
        6, 5, generator=torch.Generator().manual_seed(seed)
    )
    high = 0.2 if epsilon_high is None else epsilon_high
    expected = trl_loss(batch, 0.2, high)
    (expected_grad,) = torch.autograd.grad(expected, batch["logps"])
    loss = rloo_loss(
        batch["logps"], batch["old_logps"], batch["advantages"], batch["mask"], 0.2, epsilon_high
    )
    (grad,) = torch.autograd.grad(loss, batch["logps"])
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-5)
    assert grad.abs().sum() > 0  # something was not clipped: the gradient is compared


# ------------------------------------------------------------------------------------ the config
def test_defaults_are_trls():
    """TRL's RLOOConfig field defaults (not instantiated: its checks want an accelerator)."""
    from trl import RLOOConfig as TRLConfig

    trl = {item.name: item.default for item in dataclasses.fields(TRLConfig)}
    ours = RLOOConfig()
    for name in ("beta", "epsilon", "epsilon_high", "normalize_advantages", "num_iterations"):
        assert getattr(ours, name) == trl[name], name


@pytest.mark.parametrize(
    "override",
    [
        "algorithm.loss_type=dapo",
        "algorithm.scale_rewards=false",
        "algorithm.dynamic_sampling=true",
    ],
)
def test_grpo_only_keys_are_refused(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}=.*algorithm=rloo has one loss"):
        compose_run_config(["algorithm=rloo", override])


# ------------------------------------------------------------------------------------ a real run
RLOO = ["algorithm=rloo", *GRPO[1:]]  # GRPO's tiny setup: small groups, short completions


@pytest.mark.integration
def test_tiny_run_records_train_reward(tmp_path):
    """A real run with the KL penalty, normalized advantages and two steps per generation
    completes and records its final train/reward."""
    options = ["algorithm.normalize_advantages=true", "algorithm.num_iterations=2"]
    record = run_experiment(compose_run_config([*RLOO, *FAST, *options]), job_dir=tmp_path)
    assert record.status == "completed", record.error
    assert 0.0 <= record.metrics["train/reward"] <= 1.0
    assert "eval/addition/exact_match" in record.metrics
