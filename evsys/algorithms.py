"""The algorithms evsys trains, by kind: each a config schema and the LightningModule that
trains it, named as "module:Class" and imported only when training starts (so composing and
validating a config never imports torch).

The built-in ones are listed below. A new algorithm is one module (its config dataclass, a
subclass of evsys.config.AlgorithmConfig whose `kind` default is its name, and its
LightningModule) plus one conf/algorithm/<kind>.yaml; a package outside evsys registers it
with an entry point in the group `evsys.algorithms` that names an `Algorithm`:

    [project.entry-points."evsys.algorithms"]
    kto = "my_package.kto:ALGORITHM"      # ALGORITHM = Algorithm(KTOConfig, "my_package.kto:KTO")
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from evsys.config import GRPOConfig, PretrainConfig, SFTConfig
from evsys.errors import ConfigError
from evsys.lightning.dpo_config import DPOConfig
from evsys.lightning.kto_config import KTOConfig
from evsys.lightning.reward_model_config import RewardModelConfig
from evsys.lightning.rloo_config import RLOOConfig

ENTRY_POINT_GROUP = "evsys.algorithms"


@dataclass(frozen=True)
class Algorithm:
    config: type  # an AlgorithmConfig subclass; its `kind` default names the algorithm
    module: str  # "package.module:Class" of the LightningModule that trains it

    @property
    def kind(self) -> str:
        return self.config.kind


BUILTIN = (
    Algorithm(SFTConfig, "evsys.lightning.sft:SFTModule"),
    Algorithm(PretrainConfig, "evsys.lightning.pretrain:PretrainModule"),
    Algorithm(DPOConfig, "evsys.lightning.dpo:DPOModule"),
    Algorithm(GRPOConfig, "evsys.lightning.grpo:GRPOModule"),
    Algorithm(KTOConfig, "evsys.lightning.kto:KTOModule"),
    Algorithm(RLOOConfig, "evsys.lightning.rloo:RLOOModule"),
    Algorithm(RewardModelConfig, "evsys.lightning.reward_model:RewardModelModule"),
)


@functools.cache
def algorithms() -> dict[str, Algorithm]:
    """Every known algorithm by kind: the built-in ones, then those of installed plugins."""
    known = {algorithm.kind: algorithm for algorithm in BUILTIN}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        algorithm = entry.load()
        if not isinstance(algorithm, Algorithm):
            raise ConfigError(
                f"entry point {entry.name} = {entry.value!r} (group {ENTRY_POINT_GROUP}) is not "
                "an evsys.algorithms.Algorithm"
            )
        known[algorithm.kind] = algorithm
    return known


def algorithm_schema(kind: str) -> type:
    """The config dataclass of `algorithm.kind`, or a ConfigError naming the known kinds."""
    known = algorithms()
    if kind not in known:
        raise ConfigError(
            f"algorithm.kind={kind!r} is not a known algorithm; choose one of {sorted(known)}"
        )
    return known[kind].config


def algorithm_module_class(kind: str) -> type:
    """The LightningModule class that trains `algorithm.kind` (imports torch and lightning)."""
    algorithm_schema(kind)  # a clear error for an unknown kind
    module_name, _, class_name = algorithms()[kind].module.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
