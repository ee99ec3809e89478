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


def test_a_swept_path_names_its_arm_by_its_last_component():
    """model.name=/tmp/x/llama,... labels the arm name=llama, not name=_tmp_x_llama."""
    jobs = expand_jobs(experiment(), ["model.name=/tmp/x/llama,/tmp/x/qwen/"])
    assert [job.arm for job in jobs] == ["name=llama", "name=qwen"]
    assert "model.name=/tmp/x/llama" in jobs[0].overrides  # the value itself is unchanged


def test_swept_paths_sharing_a_last_component_keep_enough_of_it_to_differ():
    paths = "/runs/a/final,/runs/b/final,/other/b/final"
    jobs = expand_jobs(experiment(), [f"model.name={paths}"])
    assert [job.arm for job in jobs] == [
        "name=a_final",  # a/final alone tells it apart
        "name=runs_b_final",
        "name=other_b_final",
    ]
    jobs = expand_jobs(experiment(), ["model.name=/m/a/final,/m/b/final,org/model"])
    assert [job.arm for job in jobs] == ["name=a_final", "name=b_final", "name=model"]
