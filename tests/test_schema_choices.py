"""Allowed values and ranges live once, on the schema fields (evsys/rules.py): composing a
config with a value outside them fails, naming the full key and what is allowed."""

from __future__ import annotations

import copy
import functools
import re

import pytest
from omegaconf import OmegaConf

from evsys import compose_run_config
from evsys.algorithms import algorithms
from evsys.compose import compose_train
from evsys.config import (
    ContinualStage,
    DataConfig,
    EvalConfig,
    MixtureComponent,
    RunConfig,
)
from evsys.errors import ConfigError
from evsys.evaluation.base import BenchmarkSettings
from evsys.rules import CHOICES, RANGE, fields_with_rules
from evsys.validate import validate_run_config


def _ruled_fields() -> list[tuple[list[str], str, dict]]:
    """(overrides that select the field's schema, its full key, its rules) for every field
    with choices or a range: every group schema, every algorithm's, and the schemas of list
    entries (data.mixture[i], experiment.continual.datasets[i])."""
    cases = [([], key, rules) for key, rules in fields_with_rules(RunConfig)]
    for kind, algorithm in sorted(algorithms().items()):
        ruled = fields_with_rules(algorithm.config, "algorithm.")
        cases += [([f"algorithm={kind}"], key, rules) for key, rules in ruled]
    cases += [
        (["data.mixture"], f"data.mixture[0].{key}", r) for key, r in _entry(MixtureComponent)
    ]
    stages = "experiment.continual.datasets"
    cases += [([stages], f"{stages}[0].{key}", r) for key, r in _entry(ContinualStage)]
    return cases


def _entry(schema: type) -> list[tuple[str, dict]]:
    return fields_with_rules(schema)


LISTS = ("data.mixture", "experiment.continual.datasets")  # fields of their entries' schemas


def _override(selectors: list[str], key: str, value) -> list[str]:
    """The overrides that set `key` to `value` (a list entry's field: within its entry)."""
    if selectors and selectors[0] in LISTS:
        field = key.rsplit(".", 1)[-1]
        return [f"{selectors[0]}=[{{dataset_name:addition,{field}:{value}}}]"]
    return [*selectors, f"{key}={value}"]


CASES = _ruled_fields()


def _params(rule: str) -> list:
    return [
        pytest.param(selectors, key, rules, id=":".join([*selectors[:1], key]))
        for selectors, key, rules in CASES
        if rule in rules
    ]


def test_every_enumerated_and_ranged_field_is_walked():
    keys = {key for _, key, _ in CASES}
    for key in (
        "algorithm.schedule", "model.arch", "model.attn_implementation", "model.lora.export",
        "backend.precision", "backend.strategy", "data.packing_strategy", "data.format",
        "algorithm.loss_type", "algorithm.importance_sampling_level", "experiment.on_mismatch",
        "experiment.success_metric.mode", "algorithm.lr", "validation.every_n_steps",
        "algorithm.num_generations", "data.mixture[0].weight", "experiment.continual.replay",
        "experiment.continual.datasets[0].max_steps", "log_every_n_steps",
    ):  # fmt: skip
        assert key in keys, key


@pytest.mark.parametrize(("selectors", "key", "rules"), _params(CHOICES))
def test_an_enumerated_field_rejects_a_typo_naming_key_and_choices(selectors, key, rules):
    choices = rules[CHOICES]
    typo = f"{choices[0]}x"
    with pytest.raises(ConfigError) as error:
        compose_run_config(_override(selectors, key, typo))
    message = str(error.value)
    assert f"{key}='{typo}' is not one of {', '.join(choices)}" in message
    assert f"did you mean '{choices[0]}'?" in message


@functools.cache
def _composed(selectors: tuple[str, ...]):
    return compose_train(list(selectors))


@pytest.mark.parametrize(("selectors", "key", "rules"), _params(RANGE))
def test_a_ranged_field_rejects_a_value_outside_its_range(selectors, key, rules):
    """The value set on the composed config, then validated: what compose_run_config does
    after Hydra composes (one Hydra composition per schema keeps the walk fast)."""
    bounds = rules[RANGE]
    outside = [bounds.low if bounds.low_open else bounds.low - 1]
    outside += [bounds.high] if bounds.high is not None else []
    for value in outside:
        schema = tuple(s for s in selectors[:1] if s not in LISTS)
        cfg = copy.deepcopy(_composed(schema))
        if selectors and selectors[0] in LISTS:
            OmegaConf.update(cfg, selectors[0], [{"dataset_name": "addition"}])
        OmegaConf.update(cfg, key.replace("[0]", ".0"), value)
        with pytest.raises(ConfigError) as error:
            validate_run_config(cfg)
        named = rf"{re.escape(key)}={value:g}(\.0)? {re.escape(bounds.text())}"
        assert re.search(named, str(error.value)), str(error.value)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("algorithm.schedule=cosin", "algorithm.schedule='cosin' is not one of cosine, linear"),
        ("model.arch=qwen", "model.arch='qwen' is not one of qwen3, llama; did you mean 'qwen3'"),
        ("model.attn_implementation=sdpaa", "model.attn_implementation='sdpaa' is not one of"),
        ("model.lora.export=merge", "model.lora.export='merge' is not one of merged, adapter"),
        ("backend.precision=bf17", "backend.precision='bf17' is not one of 32-true, bf16-mixed"),
    ],
)
def test_the_reported_typos_fail_at_composition(override, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        compose_run_config([override])


def test_a_subclass_default_keeps_the_range_of_its_base_field():
    """GRPOConfig redeclares lr with a plain default: AlgorithmConfig's range still holds."""
    with pytest.raises(ConfigError, match=r"algorithm.lr=-1.0 must be >= 0"):
        compose_run_config(["algorithm=grpo", "algorithm.lr=-1"])


def test_code_that_dispatches_on_a_value_knows_every_allowed_one():
    from evsys.choices import ARCHITECTURES, SCHEDULES
    from evsys.lightning.schedule import lr_multiplier
    from evsys.models import ARCH_CONFIGS

    assert set(ARCH_CONFIGS) == set(ARCHITECTURES)
    for schedule in SCHEDULES:
        lr_multiplier(5, warmup_steps=1, max_steps=10, schedule=schedule, min_lr_ratio=0.1)
    with pytest.raises(ValueError, match="is not one of cosine, linear, constant"):
        lr_multiplier(5, warmup_steps=1, max_steps=10, schedule="cosin", min_lr_ratio=0.1)


def test_benchmark_settings_default_to_the_configs_defaults():
    settings = BenchmarkSettings()
    assert settings.max_new_tokens == EvalConfig.max_new_tokens == 32
    assert (settings.max_examples, settings.batch_size) == (
        EvalConfig.max_examples,
        EvalConfig.batch_size,
    )
    assert (settings.num_eval, settings.max_length, settings.data_seed) == (
        DataConfig.num_eval,
        DataConfig.max_length,
        DataConfig.seed,
    )
