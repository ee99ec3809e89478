"""RLOO's config schema, beside its module (evsys/lightning/rloo.py) and free of torch, so
composing and validating a config never imports the module that trains it.

RLOO samples and scores as GRPO does, so its schema is GRPO's (num_generations, temperature,
rewards, num_iterations, epsilon, epsilon_high, ...) with TRL's RLOO defaults; the keys that
pick among GRPO's losses and advantages mean nothing to RLOO's one loss and are refused."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from evsys.config import GRPOConfig
from evsys.errors import ConfigError
from evsys.rules import at_least

# GRPOConfig's keys that RLOO's objective (evsys/ops/rloo.py) has no use for
GRPO_ONLY = (
    "loss_type",
    "importance_sampling_level",
    "scale_rewards",
    "sapo_temperature_pos",
    "sapo_temperature_neg",
    "dynamic_sampling",
)


@dataclass
class RLOOConfig(GRPOConfig):
    kind: str = "rloo"
    # KL(policy || reference) as a penalty on each completion's reward (TRL's default 0.05)
    beta: float = at_least(0.05, 0)
    # subtract the batch's mean advantage and divide by its std (TRL's normalize_advantages)
    normalize_advantages: bool = False
    curves: ClassVar[tuple[str, ...]] = (
        "reward", "reward_std", "completion_length", "rewards/{reward}", "kl", "lr"
    )  # fmt: skip

    def __post_init__(self) -> None:
        """A ConfigError naming a GRPO-only key set to anything but GRPO's default."""
        super().__post_init__()
        defaults = {item.name: item.default for item in dataclasses.fields(GRPOConfig)}
        for name in GRPO_ONLY:
            if getattr(self, name) != defaults[name]:
                raise ConfigError(
                    f"algorithm.{name}={getattr(self, name)!r} picks among GRPO's losses; "
                    "algorithm=rloo has one loss (TRL's RLOOTrainer, docs/algorithms.md): "
                    f"leave algorithm.{name} out or use algorithm=grpo"
                )
