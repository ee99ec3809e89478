"""The concept page's experiment file (run / runs / matrix / continual): refusals naming the key
in the file, expand_runs, and the same plan as the equivalent Hydra preset — no training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import evsys
from evsys.cli.run_file import main as run_file_main
from evsys.errors import ConfigError
from evsys.identity import group_id
from evsys.records import BOOKKEEPING_OVERRIDES
from evsys.sweep.expand import plan_experiment
from evsys.sweep.page_format import check_page, is_page_file
from tests.conftest import REPO, cli_env

EXAMPLES = REPO / "examples"
RUN = {"algorithm": {"kind": "sft", "max_steps": 5}}


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"name": "x"}, "exactly one of run, runs or matrix; this one sets none"),
        (
            {"run": RUN, "runs": {"a": RUN}},
            "one of run, runs or matrix; this one sets run and runs",
        ),
        (
            {"runs": {"a": RUN}, "continual": {"datasets": [{"dataset_name": "reversal"}]}},
            "continual requires a single run base, as the concept page says",
        ),
        (
            {"matrix": {"axes": {"algorithm.lr": [1]}}, "continual": {"datasets": []}},
            "continual requires a single run base",
        ),
        (
            {"runs": [{"name": "a"}, {"name": "b", "algorithm": {"lerning_rate": 1e-3}}]},
            (
                "'runs[1].algorithm.lerning_rate' is not a valid key",
                "Did you mean 'runs[1].algorithm.lr'?",
            ),
        ),
        (
            {"matrix": {"base": RUN, "axes": {"algorithm.lerning_rate": [1e-3]}}},
            "'matrix.axes.algorithm.lerning_rate' is not a config key. Did you mean "
            "'matrix.axes.algorithm.lr'?",
        ),
        (
            {"matrix": {"base": RUN, "axes": {"algorithm.lr": []}}},
            "matrix.axes.algorithm.lr is empty",
        ),
        ({"matrix": {"base": RUN, "axes": {}}}, "matrix.axes is empty"),
        ({"matrix": {"axes": {"experiment.n_repeats": [2]}}}, "not a config key"),
        ({"matrix": {"axes": {"algorithm.lr": ["fast"]}}}, "'matrix.axes.algorithm.lr[0]'"),
        ({"matrix": {"axes": {"algorithm.lr": 0.1}}}, "must be a list of values"),
        ({"hypotesis": "h", "run": RUN}, "Did you mean 'hypothesis'?"),
        ({"algorithm": {"lr": 1}, "run": RUN}, "'algorithm' belongs to a RunConfig"),
        ({"run": {"data": {"dataset": "addition"}}}, "Did you mean 'run.data.dataset_name'?"),
        ({"run": {"algorithm": {"kind": "ppo"}}}, "run.algorithm.kind='ppo' is not a known"),
        ({"run": {"algorithm": {"kind": "dpo", "beta": -1}}}, "run.algorithm.beta=-1 must be"),
        ({"run": RUN, "success_metric": {"mod": "max"}}, "Did you mean 'success_metric.mode'?"),
        (
            {"run": RUN, "continual": {"datasets": [{"dataset_name": "a"}, {"dataset": "b"}]}},
            "'continual.datasets[1].dataset' is not a valid key",
        ),
        ({"run": RUN, "continual": {"datasets": []}}, "continual.datasets must list the stages"),
        ({"runs": [RUN]}, "runs[0] has no name"),
        ({"runs": {"a": RUN, "b": RUN}, "baseline": "c"}, "baseline='c' is not an arm"),
        ({"runs": {"a": RUN}, "prediction": {"better": "a"}}, "prediction must be"),
        ({"run": RUN, "n_repeats": 0}, "n_repeats=0 must be at least 1"),
        ({"run": {**RUN, "experiment": {}}}, "experiment settings are top-level keys"),
        ({"runs": {"a": RUN}, "arms": {"a": {}}}, "'arms' is the preset form's key"),
    ],
)
def test_refusals_name_the_key_in_the_file(page, message):
    with pytest.raises(ConfigError) as refused:
        check_page(page)
    for part in (message,) if isinstance(message, str) else message:
        assert part in str(refused.value)


@pytest.mark.integration
def test_a_refused_file_is_refused_by_from_yaml_and_the_cli(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nrun: {}\nmatrix: {axes: {algorithm.lr: [1]}}\n")
    with pytest.raises(ConfigError, match="one of run, runs or matrix"):
        evsys.Experiment.from_yaml(path)
    done = subprocess.run(
        [sys.executable, "-m", "evsys.run_file", str(path)],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "one of run, runs or matrix" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("experiment.json"))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('name: x\nhypothesis: "open\nrun: {algorithm: {kind: sft}}\n', ":4:1: found unexpected"),
        ("name: x\nruns:\n  - {name: a}\n\t- {name: b}\n", ":4:1: found character '\\t'"),
    ],
    ids=["unclosed_quote", "tab"],
)
def test_a_yaml_syntax_error_is_one_line_with_file_line_column(tmp_path, capsys, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        evsys.Experiment.from_yaml(path)
    assert str(error.value).startswith(f"{path}{where}") and "\n" not in str(error.value)
    assert run_file_main([str(path)]) == 2  # `evsys run FILE`, in-process
    assert capsys.readouterr().err == f"python -m evsys.run_file: {error.value}\n"


# ---------------------------------------------------------------------------------- detection
def test_presets_are_not_taken_for_the_page_format():
    presets = sorted((REPO / "evsys" / "conf" / "experiment").glob("*.yaml"))
    assert presets and not any(is_page_file(path) for path in presets)
    assert all(is_page_file(path) for path in EXAMPLES.glob("*.yaml"))


# -------------------------------------------------------------------------------- expand_runs
@pytest.mark.integration
def test_expand_runs_counts_run_times_repeats_runs_and_matrix():
    run = evsys.expand_runs({"run": RUN, "n_repeats": 3, "base_seed": 7})
    assert [(cfg.arm, cfg.seed) for cfg in run] == [("default", 7), ("default", 8), ("default", 9)]
    runs = {"runs": {"a": RUN, "b": RUN, "c": {"algorithm": {"kind": "pretrain"}}}, "n_repeats": 2}
    # pretrain scores reversal as text (loss, perplexity): every arm produces the loss only
    runs["success_metric"] = "eval/reversal/loss"
    assert len(evsys.expand_runs(runs)) == 3 * 2
    matrix = evsys.MatrixSpec(base=RUN, axes={"algorithm.lr": [1e-3, 3e-3], "seed": [0, 1, 2]})
    cells = evsys.expand_runs(evsys.ExperimentConfig(name="m", matrix=matrix))
    assert len(cells) == 2 * 3
    assert {(cfg.algorithm.lr, cfg.seed) for cfg in cells} == {
        (lr, seed) for lr in (1e-3, 3e-3) for seed in (0, 1, 2)
    }
    assert all(isinstance(cfg.algorithm.max_steps, int) for cfg in cells)  # validated configs


@pytest.mark.integration
def test_expand_runs_takes_an_experiment_a_config_or_a_path():
    path = EXAMPLES / "runs.yaml"
    by_path = evsys.expand_runs(path)
    by_experiment = evsys.expand_runs(evsys.Experiment.from_yaml(path))
    by_config = evsys.expand_runs(evsys.ExperimentConfig.from_yaml(path))
    containers = [
        [OmegaConf.to_container(cfg) for cfg in runs]
        for runs in (by_path, by_experiment, by_config)
    ]
    assert containers[0] == containers[1] == containers[2]
    assert [(cfg.arm, cfg.seed) for cfg in by_path] == [
        ("lr_1e-4", 0), ("lr_1e-4", 1), ("lr_3e-3", 0), ("lr_3e-3", 1)
    ]  # fmt: skip
    assert evsys.run_experiment.__module__ == "evsys.run.arm"  # one arm, no bookkeeping


def test_continual_run_expands_to_one_chain_per_seed():
    runs = evsys.expand_runs(EXAMPLES / "continual.yaml", ["experiment.n_repeats=2"])
    assert [cfg.seed for cfg in runs] == [0, 1]
    stages = [stage.dataset_name for stage in runs[0].experiment.continual.datasets]
    assert stages == ["reversal", "sorting"]


# -------------------------------------------------------------------- the same plan as a preset
RUNS_PAGE = """
name: same_plan
hypothesis: a higher learning rate learns reversal faster
success_metric: {name: eval/addition/exact_match, mode: max}
baseline: slow
n_repeats: 2
base_seed: 3
metadata: {owner: me}
parent_experiment_id: sft_addition-20261201-000000-abcd
runs:
  slow: {algorithm: {kind: sft, lr: 1e-4, max_steps: 6}, data: {dataset_name: addition}}
  fast: {algorithm: {kind: sft, lr: 3e-3, max_steps: 6}, data: {dataset_name: addition}}
"""
RUNS_PRESET = """# @package _global_
experiment:
  name: same_plan
  hypothesis: a higher learning rate learns reversal faster
  success_metric: {name: eval/addition/exact_match, mode: max}
  baseline: slow
  n_repeats: 2
  base_seed: 3
  metadata: {owner: me}
  parent_experiment_id: sft_addition-20261201-000000-abcd
  arms:
    slow: {algorithm.lr: 1e-4}
    fast: {algorithm.lr: 3e-3}
algorithm:
  max_steps: 6
data:
  dataset_name: addition
"""
MATRIX_PAGE = """
name: same_matrix
matrix:
  base: {algorithm: {kind: dpo, max_steps: 6}, data: {dataset_name: addition}}
  axes: {algorithm.beta: [0.1, 0.5], model.hidden_size: [64, 128]}
"""
MATRIX_PRESET = """# @package _global_
defaults:
  - override /algorithm: dpo
experiment:
  name: same_matrix
algorithm:
  max_steps: 6
data:
  dataset_name: addition
hydra:
  sweeper:
    params:
      algorithm.beta: 0.1,0.5
      model.hidden_size: 64,128
"""
CONTINUAL_PAGE = """
name: same_chain
n_repeats: 2
run: {algorithm: {kind: sft, max_steps: 6}}
continual:
  datasets: [{dataset_name: reversal}, {dataset_name: sorting, max_steps: 3}]
  replay: 0.2
"""
CONTINUAL_PRESET = """# @package _global_
experiment:
  name: same_chain
  n_repeats: 2
  continual:
    datasets: [{dataset_name: reversal}, {dataset_name: sorting, max_steps: 3}]
    replay: 0.2
algorithm:
  max_steps: 6
"""


@pytest.mark.integration
@pytest.mark.parametrize(
    ("page", "preset"),
    [(RUNS_PAGE, RUNS_PRESET), (MATRIX_PAGE, MATRIX_PRESET), (CONTINUAL_PAGE, CONTINUAL_PRESET)],
    ids=["runs", "matrix", "continual"],
)
def test_page_and_preset_plan_the_same_jobs(tmp_path, page, preset):
    page_plan, page_runs = plan_experiment(_write(tmp_path / "page", page))
    preset_plan, preset_runs = plan_experiment(_write(tmp_path / "preset", preset))
    assert _jobs(page_plan) == _jobs(preset_plan)
    assert [group_id(cfg) for cfg in page_runs] == [group_id(cfg) for cfg in preset_runs]
    assert [_config(cfg) for cfg in page_runs] == [_config(cfg) for cfg in preset_runs]
    keys = ("name", "hypothesis", "success_metric", "baseline", "n_repeats", "base_seed")
    for key in (*keys, "parent_experiment_id"):
        assert getattr(page_plan, key) == getattr(preset_plan, key), key
    assert page_plan.metadata == preset_plan.metadata


@pytest.mark.integration
def test_prediction_is_kept_in_the_plan(tmp_path):
    text = RUNS_PAGE + "prediction: {better: fast, than: slow}\n"
    plan, _ = plan_experiment(_write(tmp_path, text))
    assert plan.prediction == {"better": "fast", "than": "slow"}
    assert plan.metadata == {"owner": "me"}
    check_page({"runs": {"a": RUN, "b": RUN}, "prediction": {"better": "a", "than": "all"}})


ADDITION = {"data": {"dataset_name": "addition"}}


@pytest.mark.integration
def test_python_config_equals_the_file(tmp_path):
    path = _write(tmp_path, RUNS_PAGE)
    config = evsys.ExperimentConfig(
        name="same_plan",
        hypothesis="a higher learning rate learns reversal faster",
        success_metric={"name": "eval/addition/exact_match", "mode": "max"},
        baseline="slow",
        n_repeats=2,
        base_seed=3,
        metadata={"owner": "me"},
        parent_experiment_id="sft_addition-20261201-000000-abcd",
        runs=[
            {"name": arm, "algorithm": {"kind": "sft", "lr": lr, "max_steps": 6}, **ADDITION}
            for arm, lr in (("slow", 1e-4), ("fast", 3e-3))
        ],
    )  # fmt: skip
    assert _jobs(plan_experiment(config)[0]) == _jobs(plan_experiment(path)[0])
    assert isinstance(config, evsys.config.ExperimentConfig)  # the experiment node's fields


@pytest.mark.integration
def test_different_algorithms_per_run_pick_the_group_option(tmp_path):
    text = "runs:\n  s: {algorithm: {kind: sft}}\n  d: {algorithm: {kind: dpo, beta: 0.5}}\n"
    plan, runs = plan_experiment(_write(tmp_path, text))
    assert [job.overrides[:2] for job in plan.planned] == [
        ["+experiment=experiment", "algorithm=sft"], ["+experiment=experiment", "algorithm=dpo"],
    ]  # fmt: skip
    assert [(cfg.algorithm.kind, cfg.algorithm.get("beta")) for cfg in runs] == [
        ("sft", None), ("dpo", 0.5)
    ]  # fmt: skip


def test_output_dir_and_stores(tmp_path):
    text = (
        f"name: where\noutput_dir: {tmp_path}/sweep\n"
        f"stores: {{outputs_root: {tmp_path}/out, cache_dir: {tmp_path}/cache}}\nrun: {{}}\n"
    )
    experiment = evsys.Experiment.from_yaml(_write(tmp_path, text))
    assert experiment.default_sweep_dir() == tmp_path / "sweep"
    plan, (cfg,) = plan_experiment(experiment)
    assert plan.outputs_root == str(tmp_path / "out")
    assert cfg.data.cache_dir == str(tmp_path / "cache")


@pytest.mark.integration
def test_cli_shows_the_equivalent_preset():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evsys.run_file",
            "--show-preset",
            str(EXAMPLES / "matrix.yaml"),
            "seed=1",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    preset = OmegaConf.create(done.stdout)
    assert done.stdout.startswith("# @package _global_")
    assert preset.hydra.sweeper.params["algorithm.lr"] == "0.001,0.003"


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "experiment.yaml"  # one stem: +experiment=experiment in both plans
    path.write_text(text)
    return path


HIDDEN = BOOKKEEPING_OVERRIDES  # arm=, +experiment=, experiment.id=: not what an arm trains


def _jobs(plan) -> list[tuple]:
    return [
        (job.arm, job.seed, job.dir, [o for o in job.overrides if not o.startswith(HIDDEN)])
        for job in plan.planned
    ]


def _config(cfg) -> dict:
    container = OmegaConf.to_container(cfg, resolve=True)
    container["experiment"].pop("id", None)
    return container


def test_a_named_run_and_a_metric_given_by_name(tmp_path):
    text = "name: one\nsuccess_metric: val/loss\nrun: {name: only, algorithm: {max_steps: 50}}\n"
    plan, (cfg,) = plan_experiment(_write(tmp_path, text))
    assert (cfg.arm, plan.success_metric["name"], plan.success_metric["mode"]) == (
        "only",
        "val/loss",
        "min",
    )  # fmt: skip  (a loss named without a mode is ranked lowest first)


@pytest.mark.integration
def test_expand_runs_of_a_preset_with_a_swept_override():
    runs = evsys.expand_runs(REPO / "evsys/conf/experiment/demo.yaml", ["algorithm.max_steps=3,4"])
    assert len(runs) == 2 * 2 * 3  # arms x cells x n_repeats
    assert {cfg.algorithm.max_steps for cfg in runs} == {3, 4}


def test_a_preset_with_comments_above_its_header_stays_a_preset(tmp_path):
    path = _write(tmp_path, "# my preset\n#\n# @package _global_\nrun: 1\n")
    assert not is_page_file(path)


def test_overrides_extend_an_experiment_and_other_objects_are_refused():
    experiment = evsys.Experiment.from_yaml(EXAMPLES / "run_repeats.yaml")
    assert len(evsys.expand_runs(experiment, ["experiment.n_repeats=2"])) == 2
    assert experiment.overrides == []  # the experiment itself is unchanged
    with pytest.raises(TypeError, match="evsys.ExperimentConfig"):
        evsys.Experiment(evsys.config.ExperimentConfig(name="node only"))


def test_runs_may_be_run_config_dataclasses():
    from evsys.config import DataConfig, RunConfig
    from evsys.lightning.dpo_config import DPOConfig

    runs = {
        "sft": RunConfig(data=DataConfig(dataset_name="addition")),
        "dpo": RunConfig(algorithm=DPOConfig(beta=0.5), data=DataConfig(dataset_name="addition")),
    }
    cfgs = evsys.expand_runs(evsys.ExperimentConfig(name="dataclasses", runs=runs))
    assert [(cfg.arm, cfg.algorithm.kind) for cfg in cfgs] == [("sft", "sft"), ("dpo", "dpo")]
    assert cfgs[1].algorithm.beta == 0.5
    assert list(cfgs[0].eval.benchmarks) == ["addition"]  # the group options fill in the rest


def test_continual_dataclasses_and_a_preset_given_to_the_page_loader():
    from evsys.config import ContinualConfig, ContinualStage

    stages = [ContinualStage(dataset_name="reversal"), ContinualStage(dataset_name="sorting")]
    config = evsys.ExperimentConfig(run=RUN, continual=ContinualConfig(datasets=stages))
    (cfg,) = evsys.expand_runs(config)
    assert [stage.dataset_name for stage in cfg.experiment.continual.datasets] == [
        "reversal", "sorting"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="Hydra preset's key"):
        evsys.ExperimentConfig.from_yaml(REPO / "evsys/conf/experiment/demo.yaml")


# ---------------------------------------------------------------- success_metric's shorthand
def test_a_bare_success_metric_is_the_page_files_shorthand_and_refused_in_a_preset(
    tmp_path, capsys, monkeypatch
):
    """A page file's `success_metric: <name>` means {name: <name>} (mode from the name); a
    preset merges into the schema's mapping, so the same line there is refused in one line
    naming the file, the key and the forms it takes: from Python and from the CLI alike."""
    metric = "eval/reversal/exact_match"
    page = tmp_path / "page.yaml"
    page.write_text(f"name: p\nsuccess_metric: {metric}\nrun: {{algorithm: {{kind: sft}}}}\n")
    planned = evsys.plan(page).success_metric
    assert (planned["name"], planned["mode"]) == (metric, "max")
    preset = tmp_path / "experiment" / "p.yaml"
    preset.parent.mkdir()
    preset.write_text(f"# @package _global_\nexperiment:\n  success_metric: {metric}\n")
    expected = (
        f"{preset}: experiment.success_metric: '{metric}' is a bare metric name, the concept "
        f"page file's shorthand; a preset writes the mapping `success_metric: {{name: {metric}}}`"
    )
    with pytest.raises(ConfigError) as error:
        evsys.Experiment.from_yaml(preset)
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)
    from evsys.cli.train import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli(["--config-dir", str(tmp_path), "+experiment=p", "-m"])
    assert exited.value.code == 1
    assert capsys.readouterr().err.splitlines()[0] == str(error.value)
