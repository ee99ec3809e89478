"""The GRPO family's loss (evsys/ops/policy_loss.py) against TRL 1.16's, variant by variant.

The oracle is TRL's own GRPOTrainer._compute_loss, called on a minimal stand-in trainer whose
per-token log-prob function returns the fixed batch's log-probs: the loss and its gradient
with respect to those log-probs must be evsys's to 1e-5.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from evsys.config import GRPOConfig
from evsys.lightning.grpo import loss_settings
from evsys.ops.policy_loss import LossSettings, policy_loss

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo")
MAX_COMPLETION_LENGTH = 7  # dr_grpo's constant: longer than the batch's 5 tokens


def settings_of(**keys) -> LossSettings:
    """The loss settings of algorithm=grpo with these algorithm.* keys, the rest default."""
    return loss_settings(GRPOConfig(**keys))


def fixed_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """6 completions of up to 5 tokens in groups of 3, with rewards, and ragged masks."""
    generator = torch.Generator().manual_seed(seed)
    logps = -torch.rand(6, 5, generator=generator) * 3
    return {
        "logps": logps.requires_grad_(),
        # Away from the current policy, as after an earlier optimization step: clipping bites.
        "old_logps": logps.detach() + 0.4 * torch.randn(6, 5, generator=generator),
        "ref_logps": logps.detach() + 0.3 * torch.randn(6, 5, generator=generator),
        "rewards": torch.tensor([1.0, 0.0, 0.5, 0.2, 0.2, 0.9]),
        "advantages": torch.tensor([1.1, -0.9, -0.2, -0.6, -0.6, 1.2]),
        "mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]] * 2),
    }


def trl_inputs(batch: dict) -> dict[str, torch.Tensor]:
    """What a TRL trainer's _compute_loss reads of the fixed batch besides its log-probs."""
    return {
        "prompt_ids": torch.zeros(6, 2, dtype=torch.long),
        "prompt_mask": torch.ones(6, 2, dtype=torch.long),
        "completion_ids": torch.zeros(6, 5, dtype=torch.long),
        "completion_mask": batch["mask"],
        "advantages": batch["advantages"],
    }


def trl_loss(batch: dict, settings: LossSettings, num_items: float):
    """GRPOTrainer._compute_loss itself, on a stand-in trainer with just what it reads."""
    from trl import GRPOTrainer

    logps = batch["logps"]
    accelerator = SimpleNamespace(
        num_processes=1, reduce=lambda x, reduction: x, gather=lambda x: x
    )
    high = settings.epsilon if settings.epsilon_high is None else settings.epsilon_high
    args = SimpleNamespace(
        use_bias_correction_kl=False,
        delta=None,
        steps_per_generation=1,
        sapo_temperature_pos=settings.sapo_temperature_pos,
        sapo_temperature_neg=settings.sapo_temperature_neg,
    )
    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=settings.importance_sampling_level,
        beta=settings.beta,
        loss_type=settings.loss_type,
        epsilon_low=settings.epsilon,
        epsilon_high=high,
        max_completion_length=settings.max_completion_length,
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        accelerator=accelerator,
        args=args,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
    )
    inputs = {
        **trl_inputs(batch),
        "old_per_token_logps": batch["old_logps"],
        "ref_per_token_logps": batch["ref_logps"],
        "num_items_in_batch": torch.tensor(num_items),
    }
    loss = GRPOTrainer._compute_loss(trainer, None, inputs)
    return loss, trainer._metrics["train"]


def evsys_loss(batch: dict, settings: LossSettings, num_items: float | None = None):
    return policy_loss(
        batch["logps"],
        batch["old_logps"],
        batch["advantages"],
        batch["mask"],
        settings,
        ref_logps=batch["ref_logps"],
        num_items=num_items,
    )


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("epsilon_high", [None, 0.28, 5.0])
def test_loss_and_gradient_match_trl(loss_type, level, beta, epsilon_high):
    batch = fixed_batch()
    settings = settings_of(
        loss_type=loss_type,
        epsilon_high=epsilon_high,
        importance_sampling_level=level,
        beta=beta,
        max_completion_length=MAX_COMPLETION_LENGTH,
    )
    num_items = 17.0  # dapo/cispo: the generation batch's tokens, not only this batch's 20
    expected, trl_metrics = trl_loss(batch, settings, num_items)
    (expected_grad,) = torch.autograd.grad(expected, batch["logps"])
    loss, kl = evsys_loss(batch, settings, num_items)
    (grad,) = torch.autograd.grad(loss, batch["logps"])
    assert abs(loss.item() - expected.item()) < 1e-5
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-5)
    assert grad.abs().sum() > 0
    if loss_type in ("grpo", "dapo") and epsilon_high != 5.0:
        assert trl_metrics["clip_ratio/region_mean"][0] > 0  # the clipped branch was exercised
    if beta:
        mask = batch["mask"]
        assert abs(((kl * mask).sum() / mask.sum()).item() - trl_metrics["kl"][0]) < 1e-5


def on_policy(batch: dict) -> dict:
    """num_iterations=1: pi_old is the policy itself (TRL's per_token_logps.detach())."""
    return {**batch, "old_logps": batch["logps"].detach()}


def loss_and_grad(batch: dict, settings: LossSettings) -> tuple[float, torch.Tensor]:
    loss, _ = evsys_loss(batch, settings)
    (grad,) = torch.autograd.grad(loss, batch["logps"])
    return loss.item(), grad


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_with_one_iteration_clipping_and_ratio_level_change_nothing(loss_type):
    """num_iterations=1: the ratio is 1, so epsilon, epsilon_high and the ratio's level leave
    each variant at its own on-policy loss and gradient (cispo's cap, above 1, too)."""
    batch = on_policy(fixed_batch())
    base = settings_of(loss_type=loss_type, epsilon_high=5.0)
    loss, grad = loss_and_grad(batch, base)
    for other in (
        replace(base, epsilon=0.1, epsilon_high=3.0 if loss_type == "cispo" else 0.28),
        replace(base, importance_sampling_level="sequence"),
    ):
        other_loss, other_grad = loss_and_grad(batch, other)
        assert other_loss == pytest.approx(loss, abs=1e-6)
        torch.testing.assert_close(other_grad, grad, rtol=0, atol=1e-6)


def test_with_one_iteration_every_variant_is_todays_policy_gradient():
    """On policy, cispo (its cap above 1) and dapo follow bnpo's gradient (today's default),
    sapo follows grpo's: they differ only by aggregation."""
    batch = on_policy(fixed_batch())
    grads = {
        kind: loss_and_grad(batch, settings_of(loss_type=kind, epsilon_high=5.0))[1]
        for kind in LOSS_TYPES
    }
    for kind, same_as in (("cispo", "bnpo"), ("dapo", "bnpo"), ("sapo", "grpo")):
        torch.testing.assert_close(grads[kind], grads[same_as], rtol=0, atol=1e-6)
    assert not torch.allclose(grads["grpo"], grads["bnpo"])  # aggregations do differ


def test_off_policy_the_clipped_variants_differ():
    """Off policy (what num_iterations=2's second step sees), every pair of variants that
    shares an aggregation gives a different loss: clip-higher, GSPO, cispo, sapo."""
    batch = fixed_batch()
    variants = {
        "bnpo": settings_of(loss_type="bnpo"),
        "bnpo clip-higher": settings_of(loss_type="bnpo", epsilon_high=0.28),
        "bnpo gspo": settings_of(loss_type="bnpo", importance_sampling_level="sequence"),
        "cispo": settings_of(loss_type="cispo", epsilon_high=5.0),
    }
    grads = {name: loss_and_grad(batch, settings)[1] for name, settings in variants.items()}
    names = list(grads)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not torch.allclose(grads[first], grads[second], atol=1e-4), (first, second)
    grpo = loss_and_grad(batch, settings_of(loss_type="grpo"))[1]
    sapo = loss_and_grad(batch, settings_of(loss_type="sapo"))[1]
    assert not torch.allclose(grpo, sapo, atol=1e-4)
