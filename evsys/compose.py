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
    return validate_run_config(compose_train(list(overrides or [])))


def compose_train(
    overrides: list[str], return_hydra_config: bool = False, job_name: str = "app"
) -> DictConfig:
    """conf/train.yaml composed with `overrides`, not yet validated."""
    register_schemas()
    if GlobalHydra.instance().is_initialized():
        # Called from inside another Hydra app: compose in our own context, then hand it back.
        GlobalHydra.instance().clear()
    init = initialize_config_module(
        config_module="evsys.conf", version_base="1.3", job_name=job_name
    )
    with init:
        return compose(
            config_name="train", overrides=overrides, return_hydra_config=return_hydra_config
        )


# ------------------------------------------------ what Hydra reports with a traceback or no hint
