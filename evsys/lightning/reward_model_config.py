"""The reward model's config schema, beside its module (evsys/lightning/reward_model.py) and
free of torch, so composing and validating a config never imports the module that trains it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from evsys.config import AlgorithmConfig
from evsys.rules import at_least


@dataclass
class RewardModelConfig(AlgorithmConfig):
    kind: str = "reward_model"
    lr: float = 1e-4  # peak learning rate: the body starts trained, the head fresh
    max_steps: int = 100  # optimizer steps
    warmup_steps: int = 10  # linear warm-up from 0 to lr
    # TRL's center_rewards_coefficient: add it times the mean squared reward (rewards near 0)
    center_rewards_coefficient: float | None = at_least(None, 0, "null: off")
    # Not a config key: the model scores sequences and generates no text, so a run takes no
    # benchmarks (evsys/validate.py refuses eval.benchmarks)
    generates: ClassVar[bool] = False
    # val/<name> each validation logs (evsys/lightning/reward_model.py); the record keeps them
    validation_metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "margin")
    curves: ClassVar[tuple[str, ...]] = ("accuracy", "margin", "lr")
