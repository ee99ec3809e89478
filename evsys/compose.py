"""Compose a RunConfig in Python, exactly as `python -m evsys.train` would."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from evsys.algorithms import algorithms
from evsys.config import GROUP_SCHEMAS, RunConfig
from evsys.validate import validate_run_config


def register_schemas() -> None:
    """Store schemas under schema/<group>/, where they are not user-facing options."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", group="schema", node=RunConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(name="base", group=f"schema/{group}", node=schema)
    for kind, algorithm in algorithms().items():
        cs.store(name=kind, group="schema/algorithm", node=algorithm.config)


def compose_run_config(overrides: list[str] | None = None) -> DictConfig:
    """The validated config of one arm, e.g. compose_run_config(["data=addition"])."""
    register_schemas()
    if GlobalHydra.instance().is_initialized():
        # Called from inside another Hydra app: compose in our own context, then hand it back.
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="evsys.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides or []))
    return validate_run_config(cfg)
