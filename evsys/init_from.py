"""model.init_from=parent: a follow-up experiment starts from its parent's best arm.

Torch-free, so the sweep checks every job's parent before the first job trains."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.errors import ConfigError, RegistryError
from evsys.registry import best_arm_model_dir

log = logging.getLogger(__name__)

PARENT = "parent"  # model.init_from value: start from the parent experiment's best arm


def resolve_init_from(cfg: DictConfig) -> str | None:
    """model.init_from as a directory (or None): `parent` becomes the parent's best export."""
    init_from = cfg.model.init_from
    if init_from != PARENT:
        return init_from
    model_dir = parent_model_dir(cfg)
    parent_id = cfg.experiment.parent_experiment_id
    log.info("model.init_from=parent: starting from %s (experiment %s)", model_dir, parent_id)
    return str(model_dir)


def with_init_from(cfg: DictConfig, init_from: str | Path | None) -> DictConfig:
    """`cfg` itself when model.init_from is already `init_from`, else a new config that starts
    from it (a resolved `parent`, a continual stage's previous export); `cfg` is not changed."""
    init_from = None if init_from is None else str(init_from)
    if cfg.model.init_from == init_from:
        return cfg
    return OmegaConf.merge(cfg, {"model": {"init_from": init_from}})


def parent_model_dir(cfg: DictConfig) -> Path:
    """The export of the parent experiment's best arm; a ConfigError naming the key when the
    parent cannot be found, so a follow-up fails before any training rather than silently
    starting from scratch."""
    parent_id = cfg.experiment.parent_experiment_id
    if not parent_id:
        raise ConfigError(
            "model.init_from=parent needs experiment.parent_experiment_id: "
            "the id of the experiment whose best arm to start from"
        )
    try:
        return best_arm_model_dir(cfg.experiment.stores.outputs_root, parent_id)
    except RegistryError as error:
        raise ConfigError(f"model.init_from=parent: {error}") from None
