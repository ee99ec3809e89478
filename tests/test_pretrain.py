"""algorithm=pretrain: causal LM loss on every token of plain text, documents cut and packed."""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from evsys import compose_run_config
from evsys.data.prepare import check_source
from evsys.data.sources import load_split
from evsys.data.tokenize import IGNORE_INDEX
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError, DataError
from evsys.lightning.pretrain import PretrainModule
from evsys.validate import check_success_metric, success_metric
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


@pytest.mark.integration
def test_pretrain_arm_from_the_cli_on_a_text_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(DOCUMENTS) + "\n", encoding="utf-8")
    job_dir = tmp_path / "arm"
    args = [*FAST, "algorithm=pretrain", f"data.dataset_name={corpus}", "data.max_length=48"]
    # The text file is also the benchmark (the default): scored by loss and perplexity, as
    # its prompts are empty and there is nothing to generate from.
    args += [f"hydra.run.dir={job_dir}"]
    done = run_cli(args, cwd=tmp_path, env={"EVSYS_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((job_dir / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert record["metrics"]["train/loss"] > 0 and record["metrics"]["val/loss"] > 0
    metrics = record["metrics"]
    assert metrics["eval/corpus/perplexity"] == pytest.approx(math.exp(metrics["eval/corpus/loss"]))
    assert "eval/corpus/exact_match" not in metrics
    assert OmegaConf.load(job_dir / ".hydra" / "config.yaml").algorithm.kind == "pretrain"


def test_pretrain_on_prompt_completion_or_chat_trains_on_the_rendered_text(tmp_path):
    rows = [{"prompt": "1+1=", "completion": "2"}] * 10
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    for fmt in ("auto", "prompt_completion"):
        check_source(data_config(path, format=fmt), PretrainModule.example_format)
        examples = load_split(data_config(path, format=fmt), "train", None, "text")
        assert examples[0] == {"prompt": "", "completion": "1+1=2"}
    chat = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ]
    examples = load_split(
        data_config(write_jsonl(tmp_path / "chat.jsonl", chat * 10)), "train", None, "text"
    )
    assert examples[0]["prompt"] == "" and "hi" in examples[0]["completion"]
    assert examples[0]["completion"].index("hi") < examples[0]["completion"].index("yo")


def test_pretrain_on_preference_pairs_says_what_to_do(tmp_path):
    rows = [{"prompt": "1+1=", "chosen": "2", "rejected": "3"}] * 10
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(DataError, match=r"not one text to pretrain on; use algorithm=dpo"):
        load_split(data_config(path), "train", None, "text")


@pytest.mark.integration
@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["algorithm=pretrain", "data.dataset_name=corpus.jsonl"], ("eval/corpus/loss", "min")),
        (["algorithm=pretrain"], ("eval/reversal/loss", "min")),  # rendered as text
        (["data.dataset_name=notes.txt"], ("eval/notes/loss", "min")),  # SFT on a text file
        (["data.dataset_name=qa.jsonl", "data.format=text"], ("eval/qa/loss", "min")),
        ([], ("eval/reversal/exact_match", "max")),
        (
            ["algorithm=pretrain", "eval.benchmarks=[addition]"],
            ("eval/addition/exact_match", "max"),
        ),
    ],
)
def test_the_default_success_metric_of_text_is_its_loss(overrides, expected):
    metric = success_metric(compose_run_config(overrides))
    assert (metric["name"], metric["mode"]) == expected


def test_exact_match_of_text_is_refused_before_training():
    cfg = compose_run_config(["algorithm=pretrain", "data.dataset_name=corpus.jsonl"])
    check_success_metric(cfg, "eval/corpus/perplexity")
    with pytest.raises(ConfigError, match="produces eval/corpus/loss, eval/corpus/perplexity"):
        check_success_metric(cfg, "eval/corpus/exact_match")


@pytest.mark.integration
def test_a_pretrain_sweep_on_a_corpus_concludes_on_the_loss(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(DOCUMENTS) + "\n", encoding="utf-8")
    sweep = tmp_path / "sweep"
    args = [*FAST, "algorithm=pretrain", f"data.dataset_name={corpus}", "data.max_length=48"]
    args += ["algorithm.lr=1e-3,1e-4", f"hydra.sweep.dir={sweep}"]
    args += [f"experiment.stores.outputs_root={tmp_path / 'outputs'}", "-m"]
    done = run_cli(args, cwd=tmp_path, env={"EVSYS_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    conclusion = json.loads((sweep / "conclusion.json").read_text())
    assert conclusion["success_metric"]["name"] == "eval/corpus/loss"
    assert not conclusion["failed"] and conclusion["best_arm"]
