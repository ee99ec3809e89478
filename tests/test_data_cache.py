"""The data cache: a second run reads neither the source nor the tokenizer's output again, and
any change that alters the data (file bytes, transforms, max_length, tokenizer, code) misses."""

from __future__ import annotations

import sys

import pytest

from evsys import compose_run_config, run_experiment
from evsys.data import prepare, sources
from evsys.data.cache import data_key
from evsys.data.tokenizer import byte_tokenizer
from evsys.lightning.datamodule import PostTrainingDataModule
from evsys.lightning.sft import SFTModule
from tests.conftest import FAST
from tests.test_data_sources import data_config, write_jsonl

ROWS = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(40)]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVSYS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def prepared(cfg, tokenizer=None) -> PostTrainingDataModule:
    data = PostTrainingDataModule(cfg, tokenizer or byte_tokenizer(), SFTModule)
    data.prepare()
    return data


def test_a_cache_hit_reads_no_source_and_gives_the_same_rows(tmp_path, cache, monkeypatch):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    cfg = compose_run_config([f"data.dataset_name={path}", "data.transforms=[shuffle]"])
    prepare.check_source(cfg.data)
    cold = prepared(cfg)
    assert len(list(cache.iterdir())) == 2  # the check's marker and the prepared data

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read on a cache hit")

    monkeypatch.setattr(sources, "read_source", no_reading)
    monkeypatch.setattr(prepare, "load_split", no_reading)
    prepare.check_source(cfg.data)
    warm = prepared(cfg)
    assert list(warm.train_rows) == list(cold.train_rows)
    assert list(warm.eval_examples) == list(cold.eval_examples)
    assert list(warm.eval_raw) == list(cold.eval_raw)


def test_changes_to_the_data_miss(tmp_path, cache):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    base = data_config(path)
    tokenizer = byte_tokenizer()
    key = data_key(base, tokenizer)
    assert data_key(data_config(path), byte_tokenizer()) == key  # equal configs, equal keys
    assert data_key(data_config(path, num_workers=3), tokenizer) == key  # no effect on data
    assert data_key(data_config(path, transforms=["dedupe"]), tokenizer) != key
    assert data_key(data_config(path, max_length=64), tokenizer) != key
    assert data_key(base, None) != key
    templated = byte_tokenizer()
    templated.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert data_key(base, templated) != key
    assert data_key(base, tokenizer, required_format="preference") != key
    write_jsonl(path, [{**row, "completion": row["completion"] + "!"} for row in ROWS])
    assert data_key(base, tokenizer) != key


def test_changed_file_content_gives_fresh_rows(tmp_path, cache):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    cfg = compose_run_config([f"data.dataset_name={path}"])
    before = prepared(cfg)
    write_jsonl(path, [{**row, "completion": "changed"} for row in ROWS])
    after = prepared(cfg)
    assert all(ex["completion"] == "changed" for ex in after.eval_raw)
    assert list(after.train_rows) != list(before.train_rows)


def test_a_user_transform_edit_misses(tmp_path, cache, monkeypatch):
    module = tmp_path / "my_steps.py"
    module.write_text("def keep(examples):\n    return examples\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    data = data_config(path, transforms=[{"name": "my_steps:keep"}])
    prepare.check_source(data)  # imports the module
    key = data_key(data)
    module.write_text("def keep(examples):\n    return examples[:5]\n", encoding="utf-8")
    assert data_key(data) != key
    sys.modules.pop("my_steps", None)


def test_cache_off_writes_nothing(tmp_path, cache):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    cfg = compose_run_config([f"data.dataset_name={path}", "data.cache=false"])
    prepare.check_source(cfg.data)
    assert len(prepared(cfg).train_rows) > 0
    assert not cache.exists()


@pytest.mark.integration
def test_a_warm_arm_trains_exactly_like_the_cold_one(tmp_path, cache):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS * 3)
    overrides = [*FAST, f"data.dataset_name={path}", f"eval.benchmarks=[{path}]"]
    cold = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "cold")
    warm = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "warm")
    assert cold.status == warm.status == "completed", (cold.error, warm.error)
    assert warm.metrics == cold.metrics
