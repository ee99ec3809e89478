"""The core's in-process planner: `plan` (an experiment's Plan) and `expand_runs` (its training
runs as composed, validated RunConfigs), without running anything.

The plan is the sweep's own: the experiment's arguments (those `Experiment.run()` gives its
child) are composed by Hydra's config loader as in `evsys train ... -m`, and
evsys/sweep/plan.py's plan_sweep expands matrix axes x named arms x seeds and composes and
validates every job, exactly as the evsys sweeper does before a sweep starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from evsys.records import Plan
from evsys.sweep.experiment import Experiment
from evsys.sweep.page_format import ExperimentConfig, MatrixSpec
from evsys.sweep.plan import plan_arguments

__all__ = ["MatrixSpec", "expand_runs", "plan", "plan_experiment"]


def plan(config: Any, overrides: list[str] | None = None) -> Plan:
    """The experiment's Plan: every job (arm, seed, overrides, identity) the sweep would run,
    composed and validated in-process; raises a ConfigError naming the arm and key.

    `config`: an Experiment, the page's ExperimentConfig (or its mapping), or the path of an
    experiment file (the page's format or a preset). Nothing is written or trained."""
    return plan_experiment(config, overrides, with_runs=False)[0]


def expand_runs(experiment: Any, overrides: list[str] | None = None) -> list[DictConfig]:
    """Every training run of the experiment, in launch order: one validated RunConfig per arm
    and seed (`cfg.arm`, `cfg.seed`), as `Experiment(...).run()` would train them.

    `experiment`: as for `plan`. A ConfigError names the arm and key of anything invalid,
    before anything is trained."""
    return plan_experiment(experiment, overrides)[1]


def plan_experiment(
    experiment: Any, overrides: list[str] | None = None, with_runs: bool = True
) -> tuple[Plan, list[DictConfig]]:
    """The experiment's Plan (its planned jobs: arm, seed, overrides) and each job's
    validated RunConfig (none without `with_runs`); nothing is written or trained."""
    experiment = _as_experiment(experiment, overrides)
    with experiment.config_dir() as config_dir:
        arguments = experiment.arguments(config_dir)
        return plan_arguments(arguments, config_dir / "no-dir", with_runs=with_runs)


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
        "plan and expand_runs take an Experiment, an ExperimentConfig (or its mapping) or the "
        f"path of an experiment file, not {type(experiment).__name__}"
    )


def _with_overrides(experiment: Experiment, overrides: list[str]) -> Experiment:
    extended = copy.copy(experiment)
    extended.overrides = [*experiment.overrides, *overrides]
    return extended
