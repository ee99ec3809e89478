"""Issue #7's acceptance list, end to end: SFT arms from every local format with a transform
chain, a hub id from the local cache with the network off, and each kind of bad data failing
the arm with its message before any training step."""

from __future__ import annotations

import json
import re

import pytest

from evsys import compose_run_config, run_experiment
from tests.conftest import FAST, run_cli
from tests.test_data_sources import WRITERS, _cache_hub_dataset, write_jsonl

QA = [{"question": f"{a}+{b}", "answer": str(a + b)} for a in range(10) for b in range(6)]
QA_CHAIN = (
    "data.transforms=[{name: template, prompt: '{question}='}, {name: rename, answer: completion},"
    " dedupe, shuffle, {name: take, n: 40}]"
)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVSYS_CACHE_DIR", str(tmp_path / "cache"))


def train(tmp_path, *overrides: str):
    cfg = compose_run_config([*FAST, "eval.benchmarks=[addition]", *overrides])
    return run_experiment(cfg, job_dir=tmp_path / "arm")


@pytest.mark.integration
@pytest.mark.parametrize("filename", sorted(WRITERS))  # jsonl, json, csv, parquet, saved
def test_sft_arm_from_a_local_format_with_a_transform_chain(tmp_path, filename):
    path = tmp_path / filename
    WRITERS[filename](path, QA)
    result = train(tmp_path, f"data.dataset_name={path}", QA_CHAIN)
    assert result.status == "completed", result.error
    assert result.metrics["val/loss"] > 0


@pytest.mark.integration
def test_sft_arm_from_a_txt_file_with_a_transform_chain(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line {i % 30}: the quick brown fox\n" for i in range(60)))
    chain = "data.transforms=[dedupe, {name: filter_length, max: 40}, shuffle, {name: take, n: 25}]"
    result = train(tmp_path, f"data.dataset_name={path}", chain)
    assert result.status == "completed", result.error


@pytest.mark.integration
def test_hub_id_from_the_local_cache_with_the_network_off(tmp_path):
    """A dataset in the `datasets` cache as an online load_dataset leaves it, read by id by an
    arm in a fresh process with only a private HF_HOME and both offline switches on."""
    hf_home = tmp_path / "hf_home"
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(40)]
    (hf_home / "datasets").mkdir(parents=True)
    _cache_hub_dataset(hf_home / "datasets", "evsys-test/sums", {"train": rows})
    job_dir = tmp_path / "arm"
    args = [*FAST, "data.dataset_name=evsys-test/sums", "eval.benchmarks=[evsys-test/sums]"]
    env = {"HF_HOME": str(hf_home), "EVSYS_CACHE_DIR": str(tmp_path / "cache")}
    done = run_cli([*args, f"hydra.run.dir={job_dir}"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((job_dir / "result.json").read_text())
    assert record["status"] == "completed" and "eval/sums/loss" in record["metrics"]


BAD_DATA = {
    "malformed_json": (
        lambda path: path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": \n'),
        [],
        r"DataError: .*data.jsonl, line 2: malformed JSON",
    ),
    "missing_column": (
        lambda path: write_jsonl(path, [{"prompt": "a", "solution": "b"}] * 10),
        ["data.columns={completion: answer}"],
        r"column 'answer' \(data.columns.completion\) .*columns present: \['prompt', 'solution'\]",
    ),
    "empty_after_transforms": (  # in tokens: only the data module's prepare() can tell
        lambda path: write_jsonl(
            path, [{"prompt": f"long prompt {i}", "completion": "b"} for i in range(9)]
        ),
        ["data.transforms=[dedupe, {name: filter_length, max: 3, unit: tokens}]"],
        r"data.transforms\[1\] \(filter_length\) left no examples",
    ),
    "non_string_value": (
        lambda path: write_jsonl(
            path, [{"prompt": "a", "completion": "b"}] * 5 + [{"prompt": 7, "completion": "b"}]
        ),
        [],
        r"row 5, column 'prompt': expected text, got int",
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_fails_the_arm_before_any_training_step(tmp_path, case):
    write, overrides, message = BAD_DATA[case]
    path = tmp_path / "data.jsonl"
    write(path)
    result = train(tmp_path, f"data.dataset_name={path}", *overrides)
    assert result.status == "failed"
    assert result.error.startswith("DataError: ")
    assert re.search(message, result.error), result.error
    assert not list((tmp_path / "arm").rglob("*.ckpt")) and "train" not in result.timings
