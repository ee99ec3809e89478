"""KTO's config schema, beside its module (evsys/lightning/kto.py) and free of torch, so
composing and validating a config never imports the module that trains it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from evsys import choices as allowed
from evsys.config import AlgorithmConfig
from evsys.errors import ConfigError
from evsys.rules import above, one_of


@dataclass
class KTOConfig(AlgorithmConfig):
    kind: str = "kto"
    lr: float = 1e-4  # peak learning rate; well below SFT's: KTO fine-tunes a trained policy
    max_steps: int = 100  # optimizer steps
    warmup_steps: int = 10  # linear warm-up from 0 to lr
    # kto: KTO (Ethayarajh et al. 2024), with the KL estimate | apo_zero_unpaired: APO-zero,
    # no KL term
    loss_type: str = one_of("kto", allowed.KTO_LOSS_TYPES)
    beta: float = above(0.1, 0)  # pull towards the reference (TRL's beta)
    desirable_weight: float = above(1.0, 0)  # weight of the losses of rows labelled desirable
    undesirable_weight: float = above(1.0, 0)  # weight of the losses of rows labelled undesirable
    # val/<name> each validation logs (evsys/lightning/kto.py); the record keeps them
    validation_metrics: ClassVar[tuple[str, ...]] = ("loss", "kl")
    curves: ClassVar[tuple[str, ...]] = ("kl", "rewards/chosen", "rewards/rejected", "lr")

    def __post_init__(self) -> None:
        """The one rule between two keys (each key's own range is on its field)."""
        super().__post_init__()
        if self.loss_type == "kto" and self.batch_size < 2:
            raise ConfigError(
                f"algorithm.batch_size={self.batch_size} with algorithm.loss_type=kto: the KL "
                "estimate pairs each prompt with another row's completion, so a micro-batch "
                "needs at least 2 rows (or use loss_type=apo_zero_unpaired)"
            )
