"""Another Hydra sweeper's trials in the dashboard (issue #24 item 5): under basic and Optuna
every trial logs into <sweep>/tensorboard/<trial name>/, named by its searched values, with
an HParams row of its own that leads with the success metric; the hypothesis reaches the
registry; the progress lines name the trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from evsys import registry
from evsys.run.trial import trial_name
from tests.conftest import FAST, OPTUNA_SEARCH, run_cli

HYPOTHESIS = "a higher lr learns faster"


def sweep(tmp_path: Path, *extra: str):
    args = [*FAST, "hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out"]
    done = run_cli([*args, f"experiment.hypothesis={HYPOTHESIS}", *extra, "-m"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def trial_runs(sweep_dir: Path) -> dict[str, dict[str, HParamsPluginData]]:
    """Each TensorBoard run of the trials (the conclusion's and its curves' aside): its HParams
    plugin data."""
    tree = sweep_dir / "tensorboard"
    runs = {p.parent for p in tree.rglob("events.out.tfevents.*")}
    runs = {run for run in runs if run.name.startswith("trial")}
    data = {}
    for run in runs:
        events = EventAccumulator(str(run))
        events.Reload()
        tags = events.PluginTagToContent("hparams")
        data[str(run.relative_to(tree))] = {
            tag: HParamsPluginData.FromString(content) for tag, content in tags.items()
        }
    return data


@pytest.mark.integration
def test_basic_sweeper_trials_log_into_the_sweep_tree(tmp_path):
    done = sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=1e-3,3e-3")
    assert set(trial_runs(tmp_path / "sweep")) == {"lr=0.001/trial0", "lr=0.003/trial1"}
    assert not (tmp_path / "sweep" / "0" / "tensorboard").exists()
    assert "[lr=0.001 seed 0]" in done.stdout + done.stderr  # not "default seed 0"
    record = json.loads((tmp_path / "sweep" / "1" / "result.json").read_text())
    assert record["arm"] == "lr=0.003"
    assert record["artifacts"]["tensorboard"] == "../tensorboard/lr=0.003/trial1"


optuna = pytest.importorskip  # hydra-optuna-sweeper is the `optuna` extra


@pytest.mark.integration
def test_optuna_trials_are_one_hparams_row_each_with_their_values(tmp_path):
    optuna("hydra_plugins.hydra_optuna_sweeper")
    sweep(tmp_path, *OPTUNA_SEARCH)
    runs = trial_runs(tmp_path / "sweep")
    assert len(runs) == 3
    rows = set()
    for run, data in runs.items():
        experiment = data["_hparams_/experiment"].experiment
        assert experiment.metric_infos[0].name.tag == "val/loss"  # the success metric first
        assert [info.name for info in experiment.hparam_infos][:2] == ["algorithm.lr", "arm"]
        start = data["_hparams_/session_start_info"].session_start_info
        lr = start.hparams["algorithm.lr"].number_value
        assert run.startswith(f"lr={lr}/") and start.group_name == run
        rows.add((start.group_name, lr))
    assert len(rows) == 3 and len({lr for _, lr in rows}) == 3  # three rows, distinct values
    (entry,) = registry.list_experiments(tmp_path / "out")
    assert registry.get(tmp_path / "out", entry["id"])["hypothesis"] == HYPOTHESIS


def test_a_trial_is_named_by_its_searched_values_only():
    overrides = ["+experiment=demo", "algorithm.max_steps=40", "algorithm.lr=0.0012", "seed=1"]
    assert trial_name(overrides, ["algorithm.lr"], "job3") == "lr=0.0012"
    assert trial_name(overrides, ["model"], "job3") == "job3"  # nothing searched is set
    assert trial_name(["model=tiny", "+data.x=a b"], ["model", "data.x"], "j") == "model=tiny,x=a_b"
