"""The concept page's experiment file, checked: wrong types and typos anywhere in the file (deep
in matrix.base, in an axis path, in stores) named as written in the file, on one line, before
anything trains; and the page's own snippets load as they stand. No training."""

from __future__ import annotations

import re

import pytest

import evsys
from evsys.errors import ConfigError
from evsys.sweep.page_format import check_page

RUN = {"algorithm": {"kind": "sft", "max_steps": 5}}
ARMS = [{"name": "a"}, {"name": "b", "algorithm": {"lr": "fast"}}]


@pytest.mark.parametrize(
    ("page", "message"),
    [
        # a wrong type, named as in the file
        ({"runs": ARMS}, "bad value for 'runs[1].algorithm.lr'"),
        ({"runs": {"a": {"model": {"hidden_size": "big"}}}}, "'runs.a.model.hidden_size'"),
        ({"run": {"seed": "x"}}, "bad value for 'run.seed'"),
        # a typo deep in matrix.base
        (
            {"matrix": {"base": {"model": {"hiden_size": 1}}, "axes": {"algorithm.lr": [1]}}},
            "Did you mean 'matrix.base.model.hidden_size'?",
        ),
        # axis paths: a typo at any depth gets the whole corrected path
        (
            {"matrix": {"base": RUN, "axes": {"model.hiden_size": [64]}}},
            "Did you mean 'matrix.axes.model.hidden_size'?",
        ),
        (
            {"matrix": {"base": RUN, "axes": {"modle.hidden_size": [64]}}},
            "Did you mean 'matrix.axes.model.hidden_size'?",
        ),
        ({"matrix": {"base": RUN, "axes": {"algorithm.lr.x": [1]}}}, "is not a config key"),
        (
            {"matrix": {"base": RUN, "axes": {"algorithm.kind": ["sft", "ppo"]}}},
            "matrix.axes.algorithm.kind[1]='ppo' is not a known algorithm",
        ),
        # the experiment's own keys
        ({"run": RUN, "stores": {"cache_dri": "c"}}, "Did you mean 'stores.cache_dir'?"),
        ({"run": RUN, "stores": {"output_root": "o"}}, "Did you mean 'stores.outputs_root'?"),
        ({"run": RUN, "stores": "outputs"}, "stores must be {outputs_root, cache_dir}"),
        ({"run": RUN, "output_dir": 3}, "output_dir must be a directory path"),
        ({"run": RUN, "success_metric": 5}, "success_metric must be a metric name"),
        (
            {"run": RUN, "success_metric": {"name": "val/loss", "mode": "lowest"}},
            "success_metric.mode='lowest': use max or min",
        ),
        ({"run": RUN, "n_repeats": "two"}, "bad value for 'n_repeats'"),
        (
            {"run": RUN, "continual": {"datasets": [{"dataset_name": "a", "max_steps": "x"}]}},
            "bad value for 'continual.datasets[0].max_steps'",
        ),
    ],
)
def test_wrong_types_and_typos_are_named_as_in_the_file(page, message):
    with pytest.raises(ConfigError) as refused:
        check_page(page)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert "matrix.axes.algorithm.kind.algorithm.kind" not in str(refused.value)


# The refusals the issue lists, as files: each one line naming the key, before anything runs.
REFUSED_FILES = {
    "none": ("name: x\n", "one of run, runs or matrix"),
    "two": ("run: {}\nruns: {a: {}}\n", "one of run, runs or matrix"),
    "continual_runs": (
        "runs: {a: {}}\ncontinual: {datasets: [{dataset_name: reversal}]}\n",
        "continual requires a single run base, as the concept page says",
    ),
    "continual_matrix": (
        "matrix: {axes: {algorithm.lr: [1e-3]}}\ncontinual: {datasets: [{dataset_name: a}]}\n",
        "continual requires a single run base, as the concept page says",
    ),
    "axis_path": (
        "matrix: {axes: {algorithm.lerning_rate: [1e-3]}}\n",
        "'matrix.axes.algorithm.lerning_rate' is not a config key",
    ),
    "empty_axis": ("matrix: {axes: {algorithm.lr: []}}\n", "matrix.axes.algorithm.lr is empty"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_FILES))
def test_the_issues_refusals_are_one_line_before_anything_runs(tmp_path, case):
    text, message = REFUSED_FILES[case]
    path = tmp_path / "config.yaml"
    path.write_text(f"output_dir: {tmp_path / 'sweep'}\n{text}")
    with pytest.raises(ConfigError) as refused:
        evsys.Experiment.from_yaml(path)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="one of|continual requires|matrix.axes"):
        evsys.ExperimentConfig.from_yaml(path)
    assert not (tmp_path / "sweep").exists()


# The concept page's continual snippet, adapted as the issue allows: a tiny model saved with
# save_pretrained in place of Qwen/Qwen3.5-4B (still `model: { name: ... }`), built-in tasks and
# built-in transforms in place of corpus_a..c and their `[...]`.
PAGE_CONTINUAL = """
run:                       # the base recipe; its own `data` is ignored
  model: { name: MODEL_DIR }
  algorithm: { kind: sft }
continual:
  datasets:                # one training stage per entry, chained in order
    - { dataset_name: reversal, transforms: [dedupe] }
    - { dataset_name: sorting, transforms: [{name: take, n: 500}] }
    - { dataset_name: addition, transforms: [shuffle] }
"""


def test_the_pages_continual_snippet_loads_as_it_stands(tmp_path):
    from tests.test_real_model import save_tiny_llama

    model_dir = str(save_tiny_llama(tmp_path / "tiny_llama"))
    path = tmp_path / "config.yaml"
    path.write_text(PAGE_CONTINUAL.replace("MODEL_DIR", model_dir))
    config = evsys.ExperimentConfig.from_yaml(path)
    assert config.run == {"model": {"name": model_dir}, "algorithm": {"kind": "sft"}}
    (run,) = evsys.expand_runs(evsys.Experiment.from_yaml(path))
    stages = run.experiment.continual.datasets
    assert [stage.dataset_name for stage in stages] == ["reversal", "sorting", "addition"]
    assert [list(stage.transforms) for stage in stages] == [
        ["dedupe"], [{"name": "take", "n": 500}], ["shuffle"]
    ]  # fmt: skip
    assert (run.model.name, run.algorithm.kind, run.arm, run.seed) == (
        model_dir, "sft", "default", 0
    )  # fmt: skip


# The single-run mode (run x n_repeats) plans as its preset, as runs / matrix / continual do
# (tests/test_page_format.py::test_page_and_preset_plan_the_same_jobs).
RUN_PAGE = """
name: same_run
success_metric: {name: val/loss, mode: min}
n_repeats: 3
base_seed: 2
run:
  model: {hidden_size: 64}
  algorithm: {kind: pretrain, lr: 1e-3, max_steps: 6}
  data: {dataset_name: sorting}
  validation: {every_n_steps: 3}  # val/loss, the success metric, is then logged
  tags: [one]
"""
RUN_PRESET = """# @package _global_
defaults:
  - override /algorithm: pretrain
experiment:
  name: same_run
  success_metric: {name: val/loss, mode: min}
  n_repeats: 3
  base_seed: 2
model: {hidden_size: 64}
algorithm: {lr: 1e-3, max_steps: 6}
data: {dataset_name: sorting}
validation: {every_n_steps: 3}
tags: [one]
"""


@pytest.mark.integration
def test_a_single_run_with_repeats_plans_as_its_preset(tmp_path):
    from evsys.identity import group_id
    from evsys.sweep.expand import plan_experiment
    from tests.test_page_format import _config, _jobs, _write

    page_plan, page_runs = plan_experiment(_write(tmp_path / "page", RUN_PAGE))
    preset_plan, preset_runs = plan_experiment(_write(tmp_path / "preset", RUN_PRESET))
    assert _jobs(page_plan) == _jobs(preset_plan)
    assert [(cfg.arm, cfg.seed) for cfg in page_runs] == [("default", s) for s in (2, 3, 4)]
    assert len({group_id(cfg) for cfg in page_runs}) == 1  # one run group over the seeds
    assert [group_id(cfg) for cfg in page_runs] == [group_id(cfg) for cfg in preset_runs]
    assert [_config(cfg) for cfg in page_runs] == [_config(cfg) for cfg in preset_runs]


@pytest.mark.integration
def test_the_readmes_page_file_plans_as_it_says(tmp_path):
    import re

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The concept page's experiment file") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    (tmp_path / "config.yaml").write_text(block)
    runs = evsys.expand_runs(tmp_path / "config.yaml")
    assert [(cfg.arm, cfg.seed) for cfg in runs] == [
        ("lr_1e-4", 0), ("lr_1e-4", 1), ("lr_3e-3", 0), ("lr_3e-3", 1)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # no header: Hydra would nest these under `experiment`, so it is no preset
        (
            "name: x\nalgorithm: {lr: 1e-3}\n",
            "'algorithm' belongs to a RunConfig: move it under run:",
        ),
        ("name: x\nrnu: {algorithm: {lr: 1e-3}}\n", "Did you mean 'run'?"),
        ("name: x\nmatirx: {axes: {algorithm.lr: [1]}}\n", "Did you mean 'matrix'?"),
    ],
)
def test_a_misplaced_or_misspelled_mode_is_named(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        evsys.Experiment.from_yaml(path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.integration
def test_what_only_the_plan_finds_is_raised_as_a_config_error(tmp_path):
    """What only the sweep's plan checks (the second run's data file is missing) comes back
    from .run() as a ConfigError naming the arm and the file, not as "did not start"."""
    path = tmp_path / "x.yaml"
    path.write_text(
        "name: plan_only\nruns:\n  - {name: a}\n"
        "  - {name: b, data: {dataset_name: ./missing.jsonl}}\n"
        f"output_dir: {tmp_path / 'sweep'}\nstores: {{outputs_root: {tmp_path / 'out'}}}\n"
    )
    with pytest.raises(ConfigError, match=r"arm 'b' .*missing\.jsonl"):
        evsys.Experiment.from_yaml(path).run()
    assert not (tmp_path / "sweep" / "a_seed0").exists()  # nothing trained


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (
            {"runs": [{"name": "a"}, {"name": "b", "algorithm": {"lr": -1}}]},
            "runs[1].algorithm.lr=-1 must be >= 0",
        ),
        (
            {"matrix": {"base": {"data": {"max_length": 0}}, "axes": {"algorithm.lr": [1e-3]}}},
            "matrix.base.data.max_length=0 must be >= 1",
        ),
        ({"run": {"algorithm": {"max_steps": 0}}}, "run.algorithm.max_steps=0 must be >= 1"),
    ],
)
def test_a_value_out_of_range_is_named_as_in_the_file(page, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        evsys.expand_runs({"name": "ranges", **page})
