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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from evsys.identity import config_identity
from evsys.records import PlannedJob
from evsys.sweep.patched_jobs import PatchedJobs

# An interpolation that names a key `seed`: its value may differ between repeats.
SEED_REFERENCE = re.compile(r"\$\{[^}]*\bseed\b")


@dataclass
class Composed:
    """The first composed job of a set of jobs that differ only in their seed."""

    run: DictConfig | None  # its validated RunConfig (None where the plan keeps no runs)
    identity_config: dict[str, Any]
    seed_free: bool  # no interpolation reads a seed: the others are this config but `seed`


@dataclass
class SharedChecks:
    """One plan's cache: composed jobs by their overrides but the seed, checked data keys,
    Hydra's composition of each distinct set of config-group overrides, and the checked jobs
    whose values a job may change (evsys/sweep/patched_jobs.py). `keep_runs`: each job's
    validated RunConfig is kept (a copy per job)."""

    keep_runs: bool = False
    composed: dict[tuple[str, ...], Composed] = field(default_factory=dict)
    data_checked: set[str] = field(default_factory=set)
    bases: dict[tuple[str, ...], DictConfig] = field(default_factory=dict)
    patched: PatchedJobs = field(default_factory=PatchedJobs)
    parsed: dict[str, tuple[Override, bool]] = field(default_factory=dict)

    def split(self, config_loader, overrides: list[str]) -> tuple[tuple[str, ...], list[Override]]:
        """The job's config-group (and hydra.*) overrides, as a key, and its value overrides;
        each distinct override parsed once per plan."""
        parser = None
        for line in overrides:
            if line not in self.parsed:
                parser = parser or OverridesParser.create()
                (override,) = parser.parse_overrides([line])
                group = override.is_hydra_override() or _is_group(
                    override, config_loader.repository
                )
                self.parsed[line] = override, group
        defaults = tuple(line for line in overrides if self.parsed[line][1])
        return defaults, [self.parsed[line][0] for line in overrides if not self.parsed[line][1]]

    def compose(
        self, config_loader, master: DictConfig, defaults: tuple[str, ...], values: list[Override]
    ) -> DictConfig:
        """The job's config (without its hydra node) as Hydra's load_sweep_config composes it,
        but the defaults list is composed once per distinct set of group (and hydra.*)
        overrides: Hydra composes from the defaults list, then applies the value overrides in
        order, as done here (its own call), so a matrix over values costs a copy, not a
        composition, per cell."""
        if defaults not in self.bases:
            base = config_loader.load_sweep_config(master, list(defaults))
            with open_dict(base):  # the run's config only: the copies need no hydra node
                del base["hydra"]
            self.bases[defaults] = base
        job = copy.deepcopy(self.bases[defaults])
        ConfigLoaderImpl._apply_overrides_to_config(values, job)
        return job

    def reuse(self, job: PlannedJob) -> Composed | None:
        """The composed job this one repeats with another seed, if it may take its config."""
        known = self.composed.get(_but_seed(job.overrides))
        return known if known is not None and known.seed_free else None

    def remember(
        self, job: PlannedJob, job_config: DictConfig, run: DictConfig, defaults, values
    ) -> None:
        """The job's composed config (unresolved, as Hydra made it) and its validated run."""
        raw = OmegaConf.to_container(job_config, resolve=False)
        raw.pop("hydra", None)
        seed_free = not SEED_REFERENCE.search(repr(raw))
        self.composed[_but_seed(job.overrides)] = Composed(run, job.identity_config, seed_free)
        self.patched.learn(
            defaults, values, self.bases[defaults], run, self.composed[_but_seed(job.overrides)]
        )

    def patch(self, job: PlannedJob, defaults, values, check: Callable) -> Composed | None:
        """The job checked as a job checked before with some other values, its identity set;
        None where it must be composed in full."""
        done = self.patched.patched(defaults, values, check)
        if done is None:
            return None
        config, job.identity_config, seed_free = done
        job.identity = config_identity(job.identity_config)
        run = copy.deepcopy(config) if self.keep_runs else None
        composed = Composed(run, job.identity_config, seed_free)
        self.composed[_but_seed(job.overrides)] = composed
        return composed


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


def _is_group(override: Override, repository) -> bool:
    """Hydra's own rule (hydra._internal.defaults_list.Overrides): a config-group choice."""
    is_dict = isinstance(override.value(), dict)
    return not is_dict and repository.group_exists(override.key_or_group)


def _but_seed(overrides: list[str]) -> tuple[str, ...]:
    return tuple(o for o in overrides if not o.startswith("seed="))
