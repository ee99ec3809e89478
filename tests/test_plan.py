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


def test_a_baseline_split_by_a_sweeper_axis_is_refused_naming_its_arms(tmp_path):
    """arms lo/hi crossed with hydra.sweeper.params become lo,num_layers=1 ...: a baseline lo
    would find no arm after training, so the plan refuses it and names the arms there are."""
    import evsys

    preset = tmp_path / "preset.yaml"
    head = "# @package _global_\nhydra:\n  sweeper:\n    params:\n      model.num_layers: 1,2\n"
    body = (
        "experiment:\n  name: x\n  baseline: {baseline}\n"
        "  arms: {{lo: {{algorithm.lr: 1e-3}}, hi: {{algorithm.lr: 3e-3}}}}\n"
    )
    preset.write_text(head + body.format(baseline="lo"))
    with pytest.raises(ConfigError) as error:
        evsys.expand_runs(preset)
    text = str(error.value)
    assert "experiment.baseline='lo' names an arm that the sweep's matrix axes split" in text
    assert "lo,num_layers=1, lo,num_layers=2" in text
    assert "experiment.baseline='lo,num_layers=1'" in text

    preset.write_text(head + body.format(baseline="'lo,num_layers=1'"))
    plan, _ = evsys.sweep.expand.plan_experiment(preset)
    assert plan.baseline == "lo,num_layers=1"
    assert plan.baseline in {job.arm for job in plan.planned}
