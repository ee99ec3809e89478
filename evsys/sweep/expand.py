"""expand_runs: an experiment's training runs (arms x seeds) as composed, validated RunConfigs,
without running anything.

The expansion is the sweep's own: the experiment's preset is composed by Hydra, and
evsys/sweep/plan.py's plan_sweep expands matrix axes x named arms x seeds and composes and
validates every job, exactly as the evsys sweeper does before a sweep starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from evsys.compose import register_schemas
from evsys.records import Plan
from evsys.sweep.experiment import Experiment
from evsys.sweep.page_format import ExperimentConfig, MatrixSpec
from evsys.sweep.plan import plan_sweep
from evsys.validate import validate_run_config

__all__ = ["MatrixSpec", "expand_runs", "plan_experiment"]


def expand_runs(experiment: Any, overrides: list[str] | None = None) -> list[DictConfig]:
    """Every training run of the experiment, in launch order: one validated RunConfig per arm
    and seed (`cfg.arm`, `cfg.seed`), as `Experiment(...).run()` would train them.

    `experiment`: an Experiment, the page's ExperimentConfig (or its mapping), or the path of
    an experiment file (the page's format or a preset). A ConfigError names the arm and key
    of anything invalid, before anything is trained."""
    return plan_experiment(experiment, overrides)[1]


def plan_experiment(
    experiment: Any, overrides: list[str] | None = None
) -> tuple[Plan, list[DictConfig]]:
    """The experiment's Plan (its planned jobs: arm, seed, overrides) and each job's
    RunConfig; nothing is written and nothing is trained."""
    experiment = _as_experiment(experiment, overrides)
    register_schemas()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()  # called from inside a Hydra app: compose on our own
    with (
        experiment.config_dir() as config_dir,
        initialize_config_module(config_module="evsys.conf", version_base="1.3"),
    ):
        composer = _Composer([f"hydra.searchpath=[file://{config_dir}]"])
        arguments = [f"+experiment={experiment.stem}", *experiment.overrides]
        config = composer.master(arguments)
        params = config.hydra.sweeper.params or {}
        axes = [f"{key}={value}" for key, value in params.items()] + arguments
        plan = plan_sweep(config, axes, composer, config_dir / "no-sweep-dir")
    return plan, [validate_run_config(job) for job in composer.jobs]


def _as_experiment(experiment: Any, overrides: list[str] | None) -> Experiment:
    if isinstance(experiment, Experiment):
        if overrides:
            experiment = _with_overrides(experiment, overrides)
        return experiment
    if isinstance(experiment, (str, Path)):
        return Experiment.from_yaml(experiment, overrides)
    if isinstance(experiment, (ExperimentConfig, dict)):
        return Experiment(experiment, overrides)
    raise TypeError(
        "expand_runs takes an Experiment, an ExperimentConfig (or its mapping) or the path of "
        f"an experiment file, not {type(experiment).__name__}"
    )


def _with_overrides(experiment: Experiment, overrides: list[str]) -> Experiment:
    extended = copy.copy(experiment)
    extended.overrides = [*experiment.overrides, *overrides]
    return extended


class _Composer:
    """Composes the sweep's configs as the evsys sweeper's Hydra config loader does, keeping
    every job's config (plan_sweep validates each through `load_sweep_config`)."""

    def __init__(self, hydra_overrides: list[str]) -> None:
        self.hydra_overrides = hydra_overrides
        self.jobs: list[DictConfig] = []

    def master(self, arguments: list[str]) -> DictConfig:
        """The sweep's config: the single-valued arguments (axes are planned, not composed)."""
        parsed = OverridesParser.create().parse_overrides(arguments)
        single = [
            arg for arg, o in zip(arguments, parsed, strict=True) if not o.is_sweep_override()
        ]
        overrides = [*self.hydra_overrides, *single]
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)

    def load_sweep_config(self, master_config: DictConfig, overrides: list[str]) -> DictConfig:
        job = compose(config_name="train", overrides=[*self.hydra_overrides, *overrides])
        self.jobs.append(job)
        return job
