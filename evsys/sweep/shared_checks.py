"""What the jobs of one plan share, composed and checked once, so planning costs little per job.

Jobs that differ only in their seed (n_repeats) compose to the same config but `seed`: the plan
composes and validates the first of them and gives the others its identity with their own seed.
Where an interpolation in the config reads the seed (`${seed}`, `${data.seed}`), each job is
composed on its own, as before. A job's data is checked once per distinct data config,
algorithm and tokenizer, however many arms share it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evsys.records import PlannedJob, config_identity

# An interpolation that names a key `seed`: its value may differ between repeats.
SEED_REFERENCE = re.compile(r"\$\{[^}]*\bseed\b")


@dataclass
class Composed:
    """The first composed job of a set of jobs that differ only in their seed."""

    run: DictConfig  # its validated RunConfig
    identity_config: dict[str, Any]
    seed_free: bool  # no interpolation reads a seed: the others are this config but `seed`


@dataclass
class SharedChecks:
    """One plan's cache: composed jobs by their overrides but the seed, checked data keys."""

    composed: dict[tuple[str, ...], Composed] = field(default_factory=dict)
    data_checked: set[str] = field(default_factory=set)

    def reuse(self, job: PlannedJob) -> Composed | None:
        """The composed job this one repeats with another seed, if it may take its config."""
        known = self.composed.get(_but_seed(job.overrides))
        return known if known is not None and known.seed_free else None

    def remember(self, job: PlannedJob, job_config: DictConfig, run: DictConfig) -> None:
        """The job's composed config (unresolved, as Hydra made it) and its validated run."""
        raw = OmegaConf.to_container(job_config, resolve=False)
        raw.pop("hydra", None)
        seed_free = not SEED_REFERENCE.search(repr(raw))
        self.composed[_but_seed(job.overrides)] = Composed(run, job.identity_config, seed_free)


def repeat(job: PlannedJob, known: Composed) -> None:
    """Set the identity of a job that repeats `known` with its own seed."""
    job.identity_config = {**known.identity_config, "seed": job.seed}
    job.identity = config_identity(job.identity_config)


def repeated_run(known: Composed, seed: int) -> DictConfig:
    """The RunConfig of a repeat of `known` with `seed` (a copy: each job owns its config)."""
    run = copy.deepcopy(known.run)
    run.seed = seed
    return run


def data_key(cfg: DictConfig) -> str:
    """What a job's data check depends on: its data, algorithm kind and model (tokenizer)."""
    parts = (cfg.data, cfg.algorithm.kind, cfg.model)
    return repr(
        [OmegaConf.to_container(p, resolve=True) if OmegaConf.is_config(p) else p for p in parts]
    )


def _but_seed(overrides: list[str]) -> tuple[str, ...]:
    return tuple(o for o in overrides if not o.startswith("seed="))
