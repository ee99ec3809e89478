"""Sweep expansion: arms x matrix axes x seeds, labels, and clashes — no training."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from evsys.config import ExperimentConfig
from evsys.errors import ConfigError
from evsys.sweep.plan import expand_jobs


def experiment(**fields) -> OmegaConf:
    return OmegaConf.merge(OmegaConf.structured(ExperimentConfig), fields)


def test_arms_times_axes_times_seeds():
    exp = experiment(n_repeats=2, base_seed=5, arms={"a": {"algorithm.lr": 0.1}, "b": {}})
    jobs = expand_jobs(exp, ["model.hidden_size=64,128"])
    assert len(jobs) == 2 * 2 * 2
    assert {job.seed for job in jobs} == {5, 6}
    assert jobs[0].dir == "a,hidden_size=64_seed5"
    assert "arm='a,hidden_size=64'" in jobs[0].overrides
    assert len({job.dir for job in jobs}) == len(jobs)


def test_an_arm_may_not_override_a_swept_axis():
    exp = experiment(arms={"a": {"algorithm.lr": 0.1}})
    with pytest.raises(ConfigError, match="also swept"):
        expand_jobs(exp, ["algorithm.lr=0.1,0.2"])


def test_explicit_seed_sweep_conflicts_with_repeats():
    with pytest.raises(ConfigError, match="n_repeats"):
        expand_jobs(experiment(n_repeats=2), ["seed=0,1"])
