"""The examples/ experiment files (the concept page's format) run offline on the tiny model with
`Experiment.from_yaml(path).run()`, and train exactly what their Hydra preset twin trains."""

from __future__ import annotations

import json

import pytest

from evsys import Experiment, ExperimentConfig
from evsys.conclusion.model import Conclusion
from evsys.records import BOOKKEEPING_OVERRIDES
from tests.conftest import FAST, REPO

EXAMPLES = REPO / "examples"
RUNS_AS_PRESET = """# @package _global_
# examples/runs.yaml written as a preset by hand
experiment:
  name: example_runs
  hypothesis: >-
    With 100 SFT steps the tiny model reaches a lower held-out loss on string reversal at a peak
    learning rate of 3e-3 than at 1e-4.
  success_metric: {name: val/loss, mode: min}
  baseline: lr_1e-4
  prediction: {better: lr_3e-3, than: lr_1e-4}
  n_repeats: 2
  arms:
    lr_1e-4: {algorithm.lr: 1e-4}
    lr_3e-3: {algorithm.lr: 3e-3}
algorithm:
  max_steps: 100
data:
  dataset_name: reversal
  num_train: 4000
"""


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as cli_env: 2 shared cores, identical sums


def run_example(name: str, tmp_path, extra: list[str] | None = None):
    overrides = [*FAST, f"experiment.stores.outputs_root={tmp_path / 'outputs'}", *(extra or [])]
    return Experiment.from_yaml(EXAMPLES / name, overrides).run(tmp_path / name)


@pytest.fixture(scope="module")
def runs_example(tmp_path_factory):
    return run_example("runs.yaml", tmp_path_factory.mktemp("runs"))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "jobs"), [("run_repeats.yaml", 3), ("matrix.yaml", 4), ("continual.yaml", 1)]
)
def test_example_runs_to_a_conclusion(tmp_path, name, jobs):
    result = run_example(name, tmp_path)
    assert len(result.arms) == jobs and all(arm.completed for arm in result.arms)
    assert result.verdict in ("supported", "refuted", "inconclusive")
    assert (result.sweep_dir / "conclusion.md").is_file()
    if name == "run_repeats.yaml":
        assert len({arm.group_id for arm in result.arms}) == 1  # one run group, three seeds
        assert sorted(arm.seed for arm in result.arms) == [0, 1, 2]
    if name == "matrix.yaml":
        assert len({arm.arm for arm in result.arms}) == 4
    if name == "continual.yaml":
        continual = result.arms[0].continual
        assert continual["rows"] == ["start", "reversal", "sorting"]  # start + each stage
        assert continual["benchmarks"] == ["reversal", "sorting"]
        assert [stage["max_steps"] for stage in continual["stages"]] == [4, 60]  # FAST, own
        matrix = continual["matrix"]
        assert set(matrix) == {"exact_match", "loss"}
        # (start + each stage) x each benchmark, for each metric
        assert all(
            len(rows) == 3 and all(len(row) == 2 for row in rows) for rows in matrix.values()
        )


@pytest.mark.integration
def test_runs_example_writes_records_and_a_conclusion(runs_example):
    result = runs_example
    assert sorted((arm.arm, arm.seed) for arm in result.arms) == [
        ("lr_1e-4", 0), ("lr_1e-4", 1), ("lr_3e-3", 0), ("lr_3e-3", 1)
    ]  # fmt: skip
    assert result.best_arm in ("lr_1e-4", "lr_3e-3")
    plan = json.loads((result.sweep_dir / "experiment.json").read_text())
    assert plan["prediction"] == {"better": "lr_3e-3", "than": "lr_1e-4"}


@pytest.mark.integration
def test_page_file_and_preset_train_the_same(runs_example, tmp_path):
    preset = tmp_path / "runs.yaml"
    preset.write_text(RUNS_AS_PRESET)
    overrides = [*FAST, f"experiment.stores.outputs_root={tmp_path / 'outputs'}"]
    twin = Experiment.from_yaml(preset, overrides).run(tmp_path / "preset")
    page_plan = json.loads((runs_example.sweep_dir / "experiment.json").read_text())
    preset_plan = json.loads((twin.sweep_dir / "experiment.json").read_text())
    assert _jobs(page_plan) == _jobs(preset_plan)
    by_job = {(arm.arm, arm.seed): arm for arm in twin.arms}
    for arm in runs_example.arms:
        assert arm.group_id == by_job[(arm.arm, arm.seed)].group_id
        assert arm.metrics == by_job[(arm.arm, arm.seed)].metrics
    for key in ("best_arm", "verdict", "reason"):
        assert getattr(runs_example.conclusion, key) == getattr(twin.conclusion, key), key
    assert _groups(runs_example.conclusion) == _groups(twin.conclusion)


def _jobs(plan: dict) -> list:
    return [
        (job["arm"], job["seed"], [o for o in job["overrides"] if not o.startswith(HIDDEN)])
        for job in plan["planned"]
    ]


def _groups(conclusion: Conclusion) -> list[dict]:
    """The ranked groups (means, CIs, seeds, group_id), overrides without where they ran, and
    without their cost (each run's own wall time and memory)."""
    groups = [group.to_dict() for group in conclusion.groups]
    for group in groups:
        group["overrides"] = [o for o in group["overrides"] if not o.startswith(HIDDEN)]
        group.pop("cost", None)
    return groups


HIDDEN = (*BOOKKEEPING_OVERRIDES, "experiment.stores.outputs_root=")  # not what is trained


@pytest.mark.integration
def test_a_config_built_in_python_runs(tmp_path):
    config = ExperimentConfig(
        name="built_in_python",
        hypothesis="four steps run end to end",
        success_metric="val/loss",
        stores={"outputs_root": str(tmp_path / "outputs")},
        run={"algorithm": {"kind": "sft", "lr": 3e-3}, "data": {"dataset_name": "addition"}},
    )
    result = Experiment(config, FAST).run(tmp_path / "sweep")
    (arm,) = result.arms
    assert arm.completed and arm.arm == "default" and "val/loss" in arm.metrics
    assert result.conclusion.success_metric.name == "val/loss"


@pytest.mark.integration
def test_run_experiment_trains_one_expanded_run_without_bookkeeping(tmp_path):
    from evsys import expand_runs, run_experiment

    cfg = expand_runs(EXAMPLES / "runs.yaml", FAST)[2]
    record = run_experiment(cfg, tmp_path / "one_arm")
    assert (record.arm, record.seed, record.status) == ("lr_3e-3", 0, "completed")
    assert (tmp_path / "one_arm" / "result.json").is_file()
    assert not list(tmp_path.rglob("experiment.json"))  # no plan, no registry: one arm only


WHERE = """
name: where
success_metric: {name: eval/addition/loss, mode: min}
n_repeats: 2
base_seed: 5
parent_experiment_id: parent-20261201-000000-abcd
metadata: {owner: me, issue: 17}
output_dir: ROOT/sweep
stores: {outputs_root: ROOT/stores/outputs, cache_dir: ROOT/stores/cache}
run: {data: {dataset_name: addition}, tags: [where]}
"""


@pytest.mark.integration
def test_output_dir_stores_metadata_and_base_seed_are_honoured(tmp_path, monkeypatch):
    from evsys import registry

    monkeypatch.chdir(tmp_path)  # nothing may land in ./outputs
    path = tmp_path / "where.yaml"
    path.write_text(WHERE.replace("ROOT", str(tmp_path)))
    result = Experiment.from_yaml(path, FAST).run()
    assert result.sweep_dir == tmp_path / "sweep"  # output_dir is the sweep dir
    assert sorted(arm.seed for arm in result.arms) == [5, 6]  # base_seed, base_seed + 1
    assert all(arm.completed for arm in result.arms)
    plan = json.loads((result.sweep_dir / "experiment.json").read_text())
    assert plan["metadata"] == {"owner": "me", "issue": 17}
    (row,) = registry.list_experiments(tmp_path / "stores" / "outputs")
    assert row["parent_experiment_id"] == "parent-20261201-000000-abcd"
    assert row["sweep_dir"] == str(tmp_path / "sweep")
    assert any((tmp_path / "stores" / "cache").iterdir())  # the data cache moved with stores
    assert not (tmp_path / "outputs").exists()


# The other examples by hand as presets: the same planned jobs and the same composed configs
# (so the same training, as test_page_file_and_preset_train_the_same shows for runs.yaml).
TWINS = {
    "run_repeats.yaml": """# @package _global_
experiment:
  name: example_run_repeats
  hypothesis: >-
    100 SFT steps at a peak learning rate of 3e-3 teach the tiny model a little string reversal:
    mean held-out exact match over three seeds above zero (measured: 0.04 +- 0.04).
  success_metric: {name: eval/reversal/exact_match, mode: max}
  n_repeats: 3
  base_seed: 0
  metadata: {example: run with n_repeats}
model: {hidden_size: 128, num_layers: 4}
algorithm: {lr: 3e-3, max_steps: 100, warmup_steps: 10}
data: {dataset_name: reversal, num_train: 4000}
eval: {benchmarks: [reversal], max_examples: 64}
validation: {every_n_steps: 50}
tags: [example]
""",
    "matrix.yaml": """# @package _global_
experiment:
  name: example_matrix
  hypothesis: >-
    After 100 SFT steps on 2-digit addition the tiny model's held-out loss is lower at a peak
    learning rate of 3e-3 than at 1e-3, at either model width (hidden size 64 or 128).
  success_metric: {name: val/loss, mode: min}
algorithm: {max_steps: 100}
data: {dataset_name: addition, num_train: 4000}
eval: {max_examples: 64}
hydra:
  sweeper:
    params:
      algorithm.lr: 1e-3,3e-3
      model.hidden_size: 64,128
""",
    "continual.yaml": """# @package _global_
experiment:
  name: example_continual
  hypothesis: >-
    Training sorting after reversal costs part of the reversal skill: reversal's held-out loss
    rises again after the sorting stage (continual/loss/forgetting/reversal > 0; measured on 2 CPU
    cores: 2.46 after reversal, 3.89 after sorting).
  success_metric: {name: continual/loss/avg_final, mode: min}
  continual:
    datasets: [{dataset_name: reversal}, {dataset_name: sorting, max_steps: 60}]
    replay: 0.0
algorithm: {lr: 3e-3, max_steps: 80}
data: {num_train: 4000}
eval: {max_examples: 64, max_new_tokens: 10}
""",
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(TWINS))
def test_each_example_plans_as_its_preset_twin(tmp_path, name):
    from evsys.identity import group_id
    from evsys.sweep.expand import plan_experiment

    twin = tmp_path / name
    twin.write_text(TWINS[name])
    page_plan, page_runs = plan_experiment(EXAMPLES / name)
    preset_plan, preset_runs = plan_experiment(twin)
    assert _jobs(page_plan.to_dict()) == _jobs(preset_plan.to_dict())
    assert [group_id(cfg) for cfg in page_runs] == [group_id(cfg) for cfg in preset_runs]
    assert [_resolved(cfg) for cfg in page_runs] == [_resolved(cfg) for cfg in preset_runs]
    for key in ("hypothesis", "success_metric", "n_repeats", "base_seed", "metadata"):
        assert getattr(page_plan, key) == getattr(preset_plan, key), key


def _resolved(cfg) -> dict:
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True)
    container["experiment"].pop("id", None)
    return container
