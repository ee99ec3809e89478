"""algorithm=pretrain: causal LM loss on every token of plain text, documents cut and packed."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from evsys import compose_run_config
from evsys.data.prepare import check_source
from evsys.data.tokenize import IGNORE_INDEX
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError
from evsys.lightning.pretrain import PretrainModule
from tests.conftest import FAST, run_cli
from tests.test_data_sources import data_config, write_jsonl

DOCUMENTS = [
    f"document {i}: " + "all work and no play makes jack a dull boy. " * (i % 4) for i in range(40)
]


def test_rows_hold_every_token_of_every_document():
    cfg = compose_run_config(["algorithm=pretrain", "data.max_length=32"])
    examples = [{"prompt": "", "completion": doc} for doc in DOCUMENTS]
    tokenizer = byte_tokenizer()
    rows = PretrainModule.build_rows(examples, tokenizer, cfg, "train")
    assert all(len(row["input_ids"]) <= 32 for row in rows)
    # Nothing is truncated: every 32-token piece of every document (with its EOS) is in some
    # row, once; packing chooses which row (best fit), a piece restarts position_ids at 0.
    pieces = []
    for row in rows:
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0] + [len(row["input_ids"])]
        pieces += [tuple(row["input_ids"][a:b]) for a, b in zip(starts, starts[1:], strict=False)]
    documents = [[*doc.encode(), tokenizer.eos_token_id] for doc in DOCUMENTS]
    expected = [tuple(d[i : i + 32]) for d in documents for i in range(0, len(d), 32)]
    assert sorted(pieces) == sorted(expected)
    # Every token is a target except the first of each piece, which nothing precedes.
    for row in rows:
        columns = zip(row["input_ids"], row["labels"], row["position_ids"], strict=True)
        for token, label, position in columns:
            assert label == (IGNORE_INDEX if position == 0 else token)


def test_pretrain_arm_from_the_cli_on_a_text_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(DOCUMENTS) + "\n", encoding="utf-8")
    job_dir = tmp_path / "arm"
    args = [*FAST, "algorithm=pretrain", f"data.dataset_name={corpus}", "data.max_length=48"]
    # A text file is not scored as a benchmark: its prompts are empty, nothing to generate from.
    args += ["eval.benchmarks=[addition]", f"hydra.run.dir={job_dir}"]
    done = run_cli(args, cwd=tmp_path, env={"EVSYS_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((job_dir / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert record["metrics"]["train/loss"] > 0 and record["metrics"]["val/loss"] > 0
    assert OmegaConf.load(job_dir / ".hydra" / "config.yaml").algorithm.kind == "pretrain"


def test_pretrain_on_data_without_text_fails_before_training(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": "1+1=", "completion": "2"}] * 10)
    job_dir = tmp_path / "arm"
    args = [*FAST, "algorithm=pretrain", f"data.dataset_name={path}", f"hydra.run.dir={job_dir}"]
    done = run_cli(args, cwd=tmp_path, env={"EVSYS_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode != 0
    record = json.loads((job_dir / "result.json").read_text())
    assert record["status"] == "failed"
    assert "column 'text' needed by format 'text' is missing" in record["error"]
    assert "columns present: ['completion', 'prompt']" in record["error"]
    assert not list(job_dir.rglob("*.ckpt"))
    with pytest.raises(ConfigError, match=r"this algorithm trains on 'text' data"):
        check_source(data_config(path, format="prompt_completion"), PretrainModule.example_format)
