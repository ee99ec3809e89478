"""Compose configs in-process exactly as `evsys train` does: one composer for a single run
(`compose_run_config`, the CLI's help and typo check) and for a sweep's plan (`evsys.plan`,
`expand_runs`, `Experiment.run()`).

The composer is Hydra's own: its config loader composes the sweep's master config as
`Hydra.multirun` does and each job through `load_sweep_config`, the very method the evsys
sweeper calls inside a real multirun, so an in-process plan and the CLI's cannot diverge. A user
config dir is put on the search path with `hydra.searchpath`, the override `Experiment` also
gives its child process, so both compose from the same arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from hydra.types import RunMode
from omegaconf import DictConfig

from evsys import null_node_overrides
from evsys.algorithms import algorithms
from evsys.config import GROUP_SCHEMAS, RunConfig
from evsys.hydra_lines import initialize_options
from evsys.validate import validate_run_config

PRIMARY = "train"  # conf/train.yaml, and the CLI's job name (hydra.job.name)


@cache  # once per process: Hydra 1.4 warns on every repeated registration
def register_schemas() -> None:
    """Store schemas under schema/<group>/, where they are not user-facing options; and let
    a dict override fill a schema node whose default is null (evsys/null_node_overrides.py)."""
    null_node_overrides.install()
    cs = ConfigStore.instance()
    cs.store(name="run_schema", group="schema", node=RunConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(name="base", group=f"schema/{group}", node=schema)
    for kind, algorithm in algorithms().items():
        cs.store(name=kind, group="schema/algorithm", node=algorithm.config)


def search_path(config_dirs: Sequence[Path]) -> list[str]:
    """User config dirs as the override that puts them on Hydra's search path (where
    `--config-dir` puts one: after conf/, before the schemas)."""
    dirs = [quoted(f"file://{Path(d).resolve()}") for d in config_dirs]
    return [f"hydra.searchpath=[{','.join(dirs)}]"] if dirs else []


def quoted(text: str) -> str:
    """A string in Hydra's override grammar, whatever it holds (a space, a comma, a bracket)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Composer:
    """conf/train.yaml composed by Hydra's config loader."""

    def __init__(self) -> None:
        self.loader = GlobalHydra.instance().hydra.config_loader
        self.repository = self.loader.repository  # where config groups are found

    def run(self, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
        """One run's config (no -m), not yet validated."""
        return compose(
            config_name=PRIMARY, overrides=overrides, return_hydra_config=return_hydra_config
        )

    def sweep(self, arguments: list[str]) -> DictConfig:
        """A sweep's master config, composed as `Hydra.multirun` composes it: sweep values
        (`a=1,2`) are recorded in hydra.overrides.task, not composed."""
        hydra = GlobalHydra.instance().hydra
        return hydra.compose_config(
            config_name=PRIMARY, overrides=arguments, run_mode=RunMode.MULTIRUN, from_shell=False
        )

    def load_sweep_config(self, master_config: DictConfig, overrides: list[str]) -> DictConfig:
        """One job's config: Hydra's own loader call, as in the evsys sweeper's plan."""
        return self.loader.load_sweep_config(master_config, overrides)


@contextmanager
def composer() -> Iterator[Composer]:
    """A Composer in its own Hydra context; a caller's (inside a Hydra app) is restored."""
    register_schemas()
    caller = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(
            config_module="evsys.conf", job_name=PRIMARY, **initialize_options()
        ):
            yield Composer()
    finally:
        restore_gh_from_backup(caller)


def compose_run_config(overrides: list[str] | None = None) -> DictConfig:
    """The validated config of one arm, e.g. compose_run_config(["data=addition"])."""
    return validate_run_config(compose_train(list(overrides or [])))


def compose_train(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """conf/train.yaml composed with `overrides`, not yet validated."""
    with composer() as compose_with:
        return compose_with.run(overrides, return_hydra_config)
