"""data.order_seed: the seed of the training order apart from `seed` (init, dropout). Unset,
the order follows the seed, so a config written before the key existed trains, scores and is
identified exactly as before."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from evsys import compose_run_config, run_experiment
from evsys.identity import config_identity, group_id, identity_config
from evsys.lightning.datamodule import StepStream, order_seed
from evsys.run.lifecycle import ArmRun, Scoring
from tests.conftest import FAST, REPO


def test_unset_order_seed_follows_the_seed_and_leaves_the_identity_as_before():
    cfg = compose_run_config([*FAST, "seed=3"])
    assert cfg.data.order_seed is None and order_seed(cfg) == 3
    # a record written before data.order_seed existed: its config has no such key
    old = OmegaConf.to_container(cfg)
    del old["data"]["order_seed"]
    assert identity_config(cfg) == identity_config(OmegaConf.create(old))
    assert config_identity(identity_config(cfg)) == config_identity(
        identity_config(OmegaConf.create(old))
    )
    assert group_id(cfg) == group_id(OmegaConf.create(old))


def test_a_set_order_seed_is_a_replicate_key_its_own_identity_the_same_group():
    unset = compose_run_config([*FAST, "seed=3"])
    other = compose_run_config([*FAST, "seed=3", "data.order_seed=1"])
    assert order_seed(other) == 1
    assert identity_config(other)["data.order_seed"] == 1
    assert config_identity(identity_config(other)) != config_identity(identity_config(unset))
    assert group_id(other) == group_id(unset)  # replicates of one arm, like seeds


def _setup(tmp_path, name: str, overrides: list[str]) -> tuple[dict, list]:
    """The model's initial weights and the first training rows' token ids after the real
    setup of a run (data, then the model)."""
    cfg = compose_run_config([*FAST, *overrides])
    run = ArmRun(cfg, tmp_path / name, identity={}, log_dir=tmp_path / name, scoring=Scoring(()))
    run.setup()
    weights = {k: v.clone() for k, v in run.module.model.state_dict().items()}
    stream = StepStream(run.data.train_rows, 4, order_seed(cfg), lambda rows: {"rows": rows})
    first = next(iter(stream))["rows"]
    return weights, [row["input_ids"] for row in first]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.integration
def test_order_seed_changes_the_data_order_and_not_the_init(tmp_path):
    base_weights, base_rows = _setup(tmp_path, "base", ["seed=0"])
    weights, rows = _setup(tmp_path, "order1", ["seed=0", "data.order_seed=1"])
    assert _same(weights, base_weights) and rows != base_rows
    weights, rows = _setup(tmp_path, "init1", ["seed=1", "data.order_seed=0"])
    assert not _same(weights, base_weights) and rows == base_rows


@pytest.mark.integration
def test_unset_order_seed_trains_as_the_seed_order_and_another_order_differs(tmp_path):
    default = run_experiment(compose_run_config([*FAST, "seed=2"]), tmp_path / "default")
    same = run_experiment(
        compose_run_config([*FAST, "seed=2", "data.order_seed=2"]), tmp_path / "same"
    )
    other = run_experiment(
        compose_run_config([*FAST, "seed=2", "data.order_seed=5"]), tmp_path / "other"
    )
    assert default.completed and same.completed and other.completed
    assert same.metrics == default.metrics
    assert other.metrics["train/loss"] != default.metrics["train/loss"]


@pytest.mark.integration  # composes 8 jobs: 7 s on the loaded 2-core machine
def test_variance_study_preset_crosses_arms_init_seeds_and_data_orders(tmp_path):
    """The preset plans 2 arms x 2 init seeds x 2 data orders, one job each."""
    import evsys

    preset = REPO / "conf" / "experiment" / "variance_study.yaml"
    plan = evsys.plan(preset, [f"experiment.stores.outputs_root={tmp_path}"])
    cells = {(job.arm, job.seed, job.identity_config["data.order_seed"]) for job in plan.planned}
    assert len(plan.planned) == len(cells) == 8
    assert {arm for arm, _, _ in cells} == {
        f"lr_{lr},order_seed={d}" for lr in ("1e-3", "3e-3") for d in (0, 1)
    }
    assert {(seed, order) for _, seed, order in cells} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # the data orders are noise: the conclusion compares the two learning rates
    assert {job.arm for job in plan.compared().planned} == {"lr_1e-3", "lr_3e-3"}
