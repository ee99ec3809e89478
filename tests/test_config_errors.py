"""Bad config input fails fast, before any model is built, naming the full key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from evsys import ConfigError, compose_run_config
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("algorithm.lerning_rate=1", "algorithm.lerning_rate"),
        ("+algorithm.lerning_rate=1", "algorithm.lerning_rate"),
        ("algorithm.lr=fast", "algorithm.lr"),
        ("model=nonexistent", "model"),
        ("+data.colums=x", "data.colums"),
    ],
)
@pytest.mark.integration
def test_cli_rejects_bad_config_before_training(tmp_path, override, named):
    result = run_cli([override], cwd=tmp_path, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in output
    assert "parameters" not in output  # no model was built
    assert not list(tmp_path.rglob("*.ckpt"))


def test_plus_typo_is_caught_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"algorithm\.lerning_rate.*Did you mean 'algorithm\.lr'"):
        compose_run_config(["+algorithm.lerning_rate=1"])


def test_wrong_type_names_key():
    with pytest.raises(Exception, match=r"algorithm\.max_steps"):
        compose_run_config(["algorithm.max_steps=many"])


def test_default_config_composes_with_seed_vocabulary():
    cfg = compose_run_config([])
    for key in (
        "model.name",
        "algorithm.kind",
        "algorithm.lr",
        "algorithm.max_steps",
        "data.dataset_name",
        "data.transforms",
        "seed",
        "tags",
        "backend.accelerator",
        "backend.devices",
        "backend.num_nodes",
        "backend.strategy",
        "backend.precision",
        "validation.every_n_steps",
        "validation.num_batches",
    ):
        assert OmegaConf.select(cfg, key, default="absent") != "absent", key
    assert cfg.algorithm.kind == "sft"
    assert cfg.model.name is None


@pytest.mark.integration
def test_schemas_are_not_user_facing_options(tmp_path):
    result = run_cli(["--info", "defaults"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0
    options = run_cli(["model=base"], cwd=tmp_path, timeout=120)
    assert options.returncode != 0  # the schema is not an option of the model group
