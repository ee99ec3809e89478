"""DPO's config schema, beside its module (evsys/lightning/dpo.py) and free of torch, so
composing and validating a config never imports the module that trains it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from evsys import choices as allowed
from evsys.config import AlgorithmConfig
from evsys.errors import ConfigError
from evsys.rules import above, at_least, one_of, within


@dataclass
class DPOConfig(AlgorithmConfig):
    kind: str = "dpo"
    lr: float = 1e-4  # peak learning rate; well below SFT's: DPO fine-tunes a trained policy
    max_steps: int = 100  # optimizer steps
    warmup_steps: int = 10  # linear warm-up from 0 to lr
    loss_type: str = one_of("sigmoid", allowed.LOSS_TYPES)  # sigmoid: DPO | ipo: IPO | simpo: SimPO
    beta: float = above(0.1, 0)  # sigmoid/ipo: pull towards the reference; simpo: reward scale
    # sigmoid/simpo: assumed share of flipped labels
    label_smoothing: float = within(0.0, 0, 0.5)
    simpo_gamma: float = 0.5  # simpo: target reward margin between chosen and rejected
    sft_weight: float = at_least(0.0, 0)  # add this times the chosen answers' token NLL (RPO)
    precompute_ref_logps: bool = False  # score all pairs with the reference once, before training
    # val/<name> each validation logs (evsys/lightning/dpo.py); the record keeps them
    validation_metrics: ClassVar[tuple[str, ...]] = (
        "loss", "chosen_nll", "rewards/chosen", "rewards/rejected", "rewards/margins",
        "rewards/accuracy",
    )  # fmt: skip
    curves: ClassVar[tuple[str, ...]] = validation_metrics[1:] + ("lr",)

    def __post_init__(self) -> None:
        """The one rule between two keys (each key's own range is on its field)."""
        super().__post_init__()
        if self.label_smoothing and self.loss_type not in allowed.SMOOTHED:
            raise ConfigError(
                f"algorithm.label_smoothing={self.label_smoothing} has no meaning for "
                f"algorithm.loss_type={self.loss_type}; it applies to "
                f"{' and '.join(allowed.SMOOTHED)}"
            )
