"""Plans scale and stay bounded (issue #22.7): a plan's size is counted from the matrix before
any job is made and refused above experiment.max_jobs; jobs that differ only in their seed are
composed once; a huge data line is refused before it is read whole. Speed itself is measured
in benchmarks/plan_scale.py, not here."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest
from rich.console import Console

import evsys
from evsys import compose_run_config
from evsys.data import sources
from evsys.data.sources import read_file
from evsys.errors import ConfigError, DataError
from evsys.identity import identity_config
from evsys.sweep import plan as plan_module
from evsys.sweep.plan import expand_jobs
from evsys.sweep.plan_table import print_plan
from evsys.validate import validate_run_config
from tests.conftest import REPO
from tests.test_plan import experiment

RUN = {"algorithm": {"kind": "sft", "max_steps": 5}}
KEYS = ("algorithm.lr", "algorithm.weight_decay", "algorithm.warmup_steps", "data.num_train")
MILLION = {key: [i + 1 for i in range(10)] for key in (*KEYS, "data.seed", "data.num_eval")}


def test_a_million_cell_matrix_is_refused_naming_its_size_before_expanding():
    axes = [f"{key}={','.join(map(str, values))}" for key, values in MILLION.items()]
    tracemalloc.start()
    with pytest.raises(ConfigError) as refused:
        expand_jobs(experiment(arms={"a": {}, "b": {}}), axes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(refused.value)
    assert "2,000,000 jobs" in message and "experiment.max_jobs=1,000" in message
    assert "2 arm(s) x 1,000,000 matrix cell(s) x 1 seed(s)" in message
    assert peak < 20 * 2**20  # no job was made: a million of them take gigabytes


def test_the_page_format_matrix_is_refused_the_same_way():
    page = {"name": "huge", "matrix": {"base": RUN, "axes": MILLION}}
    with pytest.raises(ConfigError, match=r"1,000,000 jobs .*experiment\.max_jobs"):
        evsys.plan(page)


def test_repeats_count_towards_the_size():
    with pytest.raises(
        ConfigError, match=r"10,000 jobs \(1 arm\(s\) x 1 matrix cell\(s\) x 10,000"
    ):
        evsys.plan({"name": "many", "run": RUN, "n_repeats": 10_000})


def test_raising_max_jobs_lets_a_larger_plan_through():
    page = {"name": "six", "runs": {"a": RUN, "b": RUN}, "n_repeats": 3, "max_jobs": 5}
    with pytest.raises(ConfigError, match="would be 6 jobs"):
        evsys.plan(page)
    plan = evsys.plan({**page, "max_jobs": 6})
    assert len(plan.planned) == 6


def test_two_hundred_jobs_plan_each_with_its_own_seed_and_identity():
    """2 arms x 100 seeds: composed once per arm; every job's identity is the one composing
    it alone gives."""
    page = {"name": "wide", "runs": {"a": RUN, "b": {**RUN, "algorithm": {"lr": 1e-3}}}}
    plan = evsys.plan({**page, "n_repeats": 100})
    assert len(plan.planned) == 200
    assert len({job.identity for job in plan.planned}) == 200
    for job in plan.planned[99], plan.planned[150]:
        (alone,) = [
            other
            for other in evsys.plan({**page, "base_seed": job.seed}).planned
            if other.arm == job.arm
        ]
        assert (alone.seed, alone.identity_config) == (job.seed, job.identity_config)
        assert alone.identity == job.identity
    printed = io.StringIO()
    print_plan(plan, plan.planned[:150], Console(file=printed, width=200))
    lines = printed.getvalue().splitlines()
    assert any(
        "│ a " in line and "100: 0 .. 99" in line and "100 to run, 0 completed" in line
        for line in lines
    )
    assert any("│ b " in line and "50 to run, 50 completed (skipped)" in line for line in lines)
    assert len(lines) < 20  # one row per arm, not one per job


def test_expand_runs_gives_each_repeat_its_own_config():
    runs = evsys.expand_runs({"name": "r", "run": RUN, "n_repeats": 3, "base_seed": 4})
    assert [cfg.seed for cfg in runs] == [4, 5, 6]
    runs[0].algorithm.lr = 1.0  # each job owns its config
    assert runs[1].algorithm.lr != 1.0


def test_a_config_that_reads_the_seed_composes_each_repeat(tmp_path):
    """data.seed: ${seed} in a preset: the repeats' data differ, so each is composed."""
    preset = tmp_path / "experiment" / "seeded.yaml"
    preset.parent.mkdir()
    preset.write_text(
        "# @package _global_\n"
        "experiment: {name: seeded, n_repeats: 3, base_seed: 7}\n"
        "data: {seed: '${seed}'}\n"
    )
    plan = evsys.plan(preset)
    assert [job.identity_config["data.seed"] for job in plan.planned] == [7, 8, 9]


def test_a_jsonl_line_over_the_limit_is_refused_naming_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_CHARS", 1000)
    path = tmp_path / "data.jsonl"
    rows = [{"prompt": "q", "completion": "a"}, {"prompt": "x" * 5000, "completion": "a"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=rf"{path}, line 2: longer than 1,000 characters"):
        read_file(path)
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "y" * 900}))
    assert len(read_file(Path(path))) == 2  # up to the limit, a last line without newline too


def test_each_job_has_the_identity_hydra_gives_it_composed_alone():
    """Group choices composed once, value overrides applied on a copy, and a cell that differs
    from a checked one only in values checked on that one's config with its values set: the
    same config as Hydra composing the job from scratch (a single run of its overrides). The
    matrix crosses a group, a float given as an int, a bool, a choice, and a key an
    interpolation reads (eval.benchmarks lists ${data.dataset_name})."""
    preset = REPO / "evsys" / "conf" / "experiment" / "demo.yaml"
    axes = [
        "eval=default,standard",
        "algorithm.weight_decay=0,0.1",
        "model.tie_word_embeddings=true,false",
        "data.packing_strategy=best_fit,next_fit",
        "data.dataset_name=reversal,addition",
        "experiment.n_repeats=2",
        "experiment.success_metric.name=val/loss",  # produced whatever the dataset
        "experiment.success_metric.mode=min",
    ]
    plan = evsys.plan(preset, axes)
    assert len(plan.planned) == 2 * 2 * 2 * 2 * 2 * 2 * 2
    assert len({job.identity for job in plan.planned}) == len(plan.planned)
    for job in plan.planned[::9]:
        overrides = [o for o in job.overrides if not o.startswith(("hydra.", "experiment.id="))]
        alone = compose_run_config(overrides)
        assert identity_config(alone) == job.identity_config, job.overrides


def test_cells_that_differ_only_in_values_are_validated_on_a_checked_cells_config(monkeypatch):
    """2 learning rates x 10 weight decays: one job merged into its schemas, the others
    checked on its config with their values set; each keeps its own config and identity."""
    merges = []
    monkeypatch.setattr(plan_module, "validate_run_config", _counted(validate_run_config, merges))
    decays = [i / 100 for i in range(10)]
    axes = {"algorithm.lr": [1e-4, 1e-3], "algorithm.weight_decay": decays}
    runs = evsys.expand_runs({"name": "cells", "matrix": {"base": RUN, "axes": axes}})
    assert len(merges) == 1
    cells = [(cfg.algorithm.lr, cfg.algorithm.weight_decay) for cfg in runs]
    assert cells == [(lr, decay) for lr in axes["algorithm.lr"] for decay in decays]
    assert len({cfg.arm for cfg in runs}) == 20
    runs[0].algorithm.lr = 1.0  # each job owns its config
    assert runs[1].algorithm.lr == 1e-4


def test_a_refused_value_in_a_checked_cells_sibling_names_its_arm_and_key():
    """The check that refuses it on the checked cell's config hands it to the full composition,
    whose error names the key as composing the job alone does."""
    axes = {"algorithm.warmup_steps": [0, 1, -5]}
    page = {"name": "bad", "matrix": {"base": RUN, "axes": axes}}
    with pytest.raises(ConfigError, match=r"warmup_steps=-5.*algorithm\.warmup_steps"):
        evsys.plan(page)


def _counted(function, calls: list):
    def counted(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return counted
