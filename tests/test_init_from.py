"""model.init_from: start an arm from a previous export, or from the parent experiment's best arm.

With algorithm.lr=0 training leaves the weights as they started, so the child's export must
equal the export it started from, bit for bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from evsys import compose_run_config, run_experiment
from evsys.conclusion.build import build_conclusion
from evsys.errors import ConfigError
from evsys.init_from import resolve_init_from
from evsys.registry import register
from tests.conftest import FAST, run_cli

SMALL = ["model.hidden_size=64", "model.num_layers=2", "model.intermediate_size=128"]
METRIC = "eval/addition/loss"


@pytest.fixture(scope="module")
def parent_arm(tmp_path_factory) -> Path:
    job_dir = tmp_path_factory.mktemp("parent")
    record = run_experiment(compose_run_config([*FAST, *SMALL, "data=addition"]), job_dir=job_dir)
    assert record.status == "completed", record.error
    return job_dir


def _frozen_child(tmp_path: Path, *overrides: str):
    """An arm that cannot move its weights (lr=0), so its export shows where it started."""
    cfg = compose_run_config([*FAST, "data=addition", "algorithm.lr=0", *overrides])
    return run_experiment(cfg, job_dir=tmp_path / "child")


def _same_weights(first: Path, second: Path) -> bool:
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    return a.keys() == b.keys() and all((a[key] == b[key]).all() for key in a)


@pytest.mark.integration
def test_starts_from_an_export_dir(parent_arm, tmp_path):
    child = _frozen_child(tmp_path, f"model.init_from={parent_arm / 'model'}")
    assert child.status == "completed", child.error
    parent = json.loads((parent_arm / "result.json").read_text())
    assert child.metrics[METRIC] == parent["metrics"][METRIC]
    assert _same_weights(tmp_path / "child" / "model", parent_arm / "model")


def _parent_experiment(root: Path, parent_arm: Path) -> Path:
    """A registered, concluded sweep: arm `good` is the real export, `bad` has a worse metric."""
    sweep = root / "parent" / "2030-01-01_00-00-00"
    record = json.loads((parent_arm / "result.json").read_text())
    for arm, shift in (("good", 0.0), ("bad", 1.0)):
        job_dir = sweep / f"{arm}_seed0"
        shutil.copytree(parent_arm / "model", job_dir / "model")
        metrics = {**record["metrics"], METRIC: record["metrics"][METRIC] + shift}
        (job_dir / "result.json").write_text(json.dumps({**record, "arm": arm, "metrics": metrics}))
    (sweep / "bad_seed0" / "model" / "model.safetensors").unlink()  # unusable if ever picked
    planned = [{"arm": arm, "seed": 0, "dir": f"{arm}_seed0"} for arm in ("good", "bad")]
    plan = {"id": "parent-1", "name": "parent", "planned": planned}
    plan["success_metric"] = {"name": METRIC, "mode": "min"}
    (sweep / "experiment.json").write_text(json.dumps(plan))
    (sweep / "conclusion.json").write_text(build_conclusion(sweep).to_json())
    register(root, {"id": "parent-1", "name": "parent", "sweep_dir": sweep, "status": "completed"})
    return sweep


@pytest.mark.integration
def test_starts_from_the_parent_experiments_best_arm(parent_arm, tmp_path):
    root = tmp_path / "outputs"
    sweep = _parent_experiment(root, parent_arm)
    child = _frozen_child(
        tmp_path,
        "model.init_from=parent",
        "experiment.parent_experiment_id=parent-1",
        f"experiment.stores.outputs_root={root}",
    )
    assert child.status == "completed", child.error
    assert _same_weights(tmp_path / "child" / "model", sweep / "good_seed0" / "model")
    assert child.hparams["model.init_from"] == "parent"  # the record keeps what was asked


def _resolve(root: Path, *overrides: str) -> str | None:
    cfg = compose_run_config([f"experiment.stores.outputs_root={root}", *overrides])
    return resolve_init_from(cfg)


@pytest.mark.integration
def test_parent_errors_name_the_problem(tmp_path):
    assert _resolve(tmp_path) is None
    assert _resolve(tmp_path, "model.init_from=some/dir") == "some/dir"  # checked when loading
    with pytest.raises(ConfigError, match="needs experiment.parent_experiment_id"):
        _resolve(tmp_path, "model.init_from=parent")
    parent = ["model.init_from=parent", "experiment.parent_experiment_id=p"]
    with pytest.raises(ConfigError, match="model.init_from=parent: no registry"):
        _resolve(tmp_path, *parent)
    register(tmp_path, {"id": "other", "name": "other"})
    with pytest.raises(ConfigError, match="unknown experiment id 'p'"):
        _resolve(tmp_path, *parent)
    register(tmp_path, {"id": "p", "name": "p", "sweep_dir": tmp_path / "sweep"})
    with pytest.raises(ConfigError, match="experiment p has no conclusion"):
        _resolve(tmp_path, *parent)


@pytest.mark.integration
def test_parent_without_export_fails_the_arm_before_training(parent_arm, tmp_path):
    root = tmp_path / "outputs"
    sweep = _parent_experiment(root, parent_arm)
    shutil.rmtree(sweep / "good_seed0" / "model")
    child = _frozen_child(
        tmp_path,
        "model.init_from=parent",
        "experiment.parent_experiment_id=parent-1",
        f"experiment.stores.outputs_root={root}",
    )
    assert child.status == "failed"
    assert (
        "model.init_from=parent: best arm good of experiment parent-1 has no model" in child.error
    )
    assert not (tmp_path / "child" / "checkpoints").exists()


@pytest.mark.integration
def test_missing_init_from_dir_names_the_key(tmp_path):
    child = _frozen_child(tmp_path, "model.init_from=/no/such/export")
    assert child.status == "failed"
    assert "model.init_from='/no/such/export': no such directory" in child.error


@pytest.mark.integration
def test_a_follow_up_sweep_without_its_parent_stops_before_any_job(tmp_path):
    args = ["-m", "+experiment=sft_then_dpo", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    args.append(f"experiment.stores.outputs_root={tmp_path / 'outputs'}")
    missing = run_cli(args, cwd=tmp_path)
    assert missing.returncode != 0
    assert "needs experiment.parent_experiment_id" in missing.stderr + missing.stdout
    unknown = run_cli([*args, "experiment.parent_experiment_id=nope"], cwd=tmp_path)
    assert unknown.returncode != 0
    said = unknown.stderr + unknown.stdout  # the sweep's check made an empty registry first
    assert "model.init_from=parent: " in said and "the registry is empty" in said
    assert not list(tmp_path.rglob("result.json"))  # no job ran
