"""The rules of an algorithm's optimizer settings that a single field's range cannot say: each
failure a ConfigError naming the keys. Run by AlgorithmConfig.__post_init__ (evsys/config.py),
so every composed config is checked before anything trains. Imports nothing but errors."""

from __future__ import annotations

from typing import Any

from evsys.errors import ConfigError


def check_optimizer(algorithm: Any) -> None:
    """betas in [0, 1), min_lr_ratio <= 1, and a chosen warm-up that ends within training."""
    betas = list(algorithm.betas)
    if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):  # nan fails 0 <= nan
        raise ConfigError(
            f"algorithm.betas={betas} must be two numbers in [0, 1) "
            "(AdamW's decay rates of its gradient averages)"
        )
    if algorithm.min_lr_ratio > 1:
        raise ConfigError(
            f"algorithm.min_lr_ratio={algorithm.min_lr_ratio} must be <= 1 (the final lr as a "
            "fraction of algorithm.lr)"
        )
    # A warm-up chosen longer than the run contradicts itself. The algorithm's default one is
    # left alone: short runs (tests, smoke runs) keep it and every key they did not set.
    # lr=0 trains nothing (an arm that scores its starting model): its warm-up is moot.
    chosen = algorithm.warmup_steps != _default(algorithm, "warmup_steps")
    if chosen and algorithm.warmup_steps > algorithm.max_steps and algorithm.lr > 0:
        raise ConfigError(
            f"algorithm.warmup_steps={algorithm.warmup_steps} is more than "
            f"algorithm.max_steps={algorithm.max_steps}: the lr would never reach algorithm.lr; "
            "lower algorithm.warmup_steps or raise algorithm.max_steps"
        )


def _default(algorithm: Any, name: str) -> Any:
    """The default of field `name` in the algorithm's schema (a subclass's own, e.g. GRPO's)."""
    return type(algorithm).__dataclass_fields__[name].default
