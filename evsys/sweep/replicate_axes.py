"""A sweep that varies a replicate key (identity.REPLICATE_KEYS: `data.order_seed`) within an
arm: the conclusion counts those runs as the arm's replicates, as its seeds (Plan.by_treatment).
The stages that add seeds to an arm (experiment.adaptive, experiment.confirm) add them per
planned job label, which would split the arm again: that pair is refused before any job runs.
"""

from __future__ import annotations

from omegaconf import DictConfig

from evsys.errors import ConfigError
from evsys.identity import REPLICATE_KEYS, treatment_arm
from evsys.records import PlannedJob

ADAPTIVE, CONFIRM = "experiment.adaptive.max_repeats", "experiment.confirm.repeats"


def check_replicate_axes(experiment: DictConfig, jobs: list[PlannedJob]) -> None:
    """ConfigError when jobs of one arm differ in a replicate key and a stage adds seeds."""
    split = sorted({job.arm for job in jobs if treatment_arm(job.arm) != job.arm})
    adaptive = experiment.adaptive.max_repeats > experiment.n_repeats
    stages = [
        key
        for key, used in ((ADAPTIVE, adaptive), (CONFIRM, experiment.confirm.repeats is not None))
        if used
    ]
    if split and stages:
        keys = " or ".join(REPLICATE_KEYS)
        raise ConfigError(
            f"{stages[0]} adds seeds to arms, and this sweep varies {keys} within an arm "
            f"({', '.join(split[:2])}, ...), whose runs the conclusion counts as that arm's "
            "replicates: drop one of the two (a variance study runs without adaptive seeds or "
            "a confirmation)"
        )
