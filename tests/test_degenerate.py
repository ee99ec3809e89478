"""Degenerate data is refused, not scored as perfect (issue #22.2, docs/reliability.md): empty
texts, whitespace-only completions, identical preference pairs, a model dir without tokenizer
files, a tokenizer that cannot round-trip text, and a GRPO reward that is not a finite number.
Each is refused before training with the file (or key), the count and the reason."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import evsys
from evsys import ConfigError, compose_run_config, run_experiment
from evsys.data.degenerate import IDENTICAL_PAIRS_MAX_SHARE, check_rows
from evsys.data.sources import load_split
from evsys.data.tokenize import tokenize_examples
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import DataError
from evsys.lightning.dpo import tokenize_pairs
from evsys.models import load_tokenizer
from evsys.rewards import checked_rewards
from tests.conftest import FAST
from tests.test_experiment import write_preset
from tests.test_grpo import GRPO
from tests.tiny import tiny_qwen3

ROWS = 200


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def empty_texts(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "empty.jsonl", [{"text": ""} for _ in range(ROWS)])


def blank_completions(tmp_path: Path) -> Path:
    rows = [{"prompt": f"q{i}", "completion": [" ", "\n", "\t ", ""][i % 4]} for i in range(ROWS)]
    return write_jsonl(tmp_path / "blank.jsonl", rows)


def preference_pairs(tmp_path: Path, identical: int, total: int = ROWS) -> Path:
    rows = [
        {"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i + 1 if i < identical else i)}
        for i in range(total)
    ]
    return write_jsonl(tmp_path / f"pairs{identical}.jsonl", rows)


def nothing_trained(job_dir: Path) -> bool:
    return not (job_dir / "checkpoints").exists() and not (job_dir / "model").exists()


# ---------------------------------------------------------------------- refused at planning
@pytest.mark.integration
@pytest.mark.parametrize(
    ("algorithm", "make_data", "reason"),
    [
        ("pretrain", empty_texts, f"all {ROWS} examples have an empty or whitespace-only"),
        ("sft", blank_completions, f"all {ROWS} examples have an empty or whitespace-only"),
        ("dpo", lambda tmp: preference_pairs(tmp, ROWS), "preference pairs have chosen == reject"),
    ],
)
def test_degenerate_data_is_refused_at_planning(tmp_path, algorithm, make_data, reason):
    """The plan reads the data before any arm trains: no held-out share of a degenerate file
    (200 rows, read before 20 are held out), and the error names the arm, the file and the count."""
    data = make_data(tmp_path)
    preset = write_preset(tmp_path, "degenerate", {"bad": {"data.dataset_name": str(data)}})
    overrides = [f"algorithm={algorithm}", *FAST, "experiment.success_metric.name=val/loss"]
    overrides += ["experiment.success_metric.mode=min", "eval.benchmarks=[]"]
    with pytest.raises(ConfigError) as refused:
        evsys.plan(preset, overrides)
    message = str(refused.value)
    assert "arm 'bad'" in message and f"{data} [train]" in message and reason in message
    assert "no trainable tokens" in message or "nothing to prefer" in message


@pytest.mark.integration
def test_empty_text_pretraining_is_refused_before_training(tmp_path):
    """A single run (no plan): the arm refuses before any model is built or step taken."""
    data = empty_texts(tmp_path)
    cfg = compose_run_config(["algorithm=pretrain", f"data.dataset_name={data}", *FAST])
    record = run_experiment(cfg, job_dir=tmp_path / "run")
    assert record.status == "failed"
    assert f"{data} [train]: all {ROWS} examples have an empty" in record.error
    assert "no trainable tokens" in record.error and "train/loss" not in record.metrics
    assert nothing_trained(tmp_path / "run")


@pytest.mark.integration
def test_whitespace_only_completions_are_refused_before_training(tmp_path):
    data = blank_completions(tmp_path)
    cfg = compose_run_config([f"data.dataset_name={data}", *FAST])
    record = run_experiment(cfg, job_dir=tmp_path / "run")
    assert record.status == "failed"
    assert f"{data} [train]: all {ROWS} examples have an empty or whitespace-only" in (record.error)
    assert nothing_trained(tmp_path / "run")


@pytest.mark.integration
def test_identical_dpo_pairs_are_refused_before_training(tmp_path):
    data = preference_pairs(tmp_path, ROWS)
    cfg = compose_run_config(["algorithm=dpo", f"data.dataset_name={data}", *FAST])
    record = run_experiment(cfg, job_dir=tmp_path / "run")
    assert record.status == "failed"
    assert f"{ROWS} of {ROWS} preference pairs have chosen == rejected" in record.error
    assert nothing_trained(tmp_path / "run")


def test_identical_pairs_are_refused_above_the_documented_share(tmp_path, caplog):
    """Up to IDENTICAL_PAIRS_MAX_SHARE of the pairs may be identical (warned about); one more
    and the split is refused."""
    total = 100
    allowed = int(IDENTICAL_PAIRS_MAX_SHARE * total)
    cfg = compose_run_config(["algorithm=dpo", "data.eval_split=train"])

    def load(identical: int) -> list[dict]:
        cfg.data.dataset_name = str(preference_pairs(tmp_path, identical, total))
        return load_split(cfg.data, "train", required_format="preference")

    with caplog.at_level(logging.WARNING, logger="evsys.data.degenerate"):
        assert len(load(allowed)) == total
    assert f"{allowed} of {total} preference pairs have chosen == rejected" in caplog.text
    with pytest.raises(DataError, match=f"{allowed + 1} of {total} preference pairs"):
        load(allowed + 1)


# ------------------------------------------------------------- where only tokens can tell
def test_rows_without_a_target_token_are_refused():
    """After tokenization: rows whose only target is EOS (SFT rows, DPO pairs of empty answers)
    hold nothing to learn; one row with a token is enough."""
    tokenizer = byte_tokenizer()
    eos = tokenizer.eos_token_id
    empty = [{"prompt": "1+1=", "completion": ""}] * 3
    with pytest.raises(DataError, match="no trainable tokens: .* all 3 training rows"):
        check_rows(tokenize_examples(empty, tokenizer, 64), eos, "f.jsonl [train]")
    pairs = [{"prompt": "1+1=", "completion": "", "rejected": ""}] * 2
    with pytest.raises(DataError, match="all 2 training rows"):
        check_rows(tokenize_pairs(pairs, tokenizer, 64), eos, "f.jsonl [train]")
    one = [*empty, {"prompt": "1+1=", "completion": "2"}]
    check_rows(tokenize_examples(one, tokenizer, 64), eos, "f.jsonl [train]")


@pytest.mark.integration
def test_completions_the_tokenizer_erases_are_refused_before_training(tmp_path):
    """The text is there ("###"), so the plan passes it; the model's tokenizer drops "#", so
    only tokenization shows that nothing but EOS is left: refused before the Trainer starts."""
    directory = model_dir_without_tokenizer(tmp_path)
    tokenizer = byte_tokenizer()
    tokenizer.backend_tokenizer.normalizer = normalizers.Replace("#", "")
    tokenizer.save_pretrained(directory)
    rows = [{"prompt": f"{i}+1=", "completion": "###"} for i in range(ROWS)]
    data = write_jsonl(tmp_path / "erased.jsonl", rows)
    overrides = [f"model.name={directory}", f"data.dataset_name={data}", *FAST]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "run")
    assert record.status == "failed"
    assert f"data.dataset_name='{data}' [train]: no trainable tokens" in record.error
    # (180 examples packed into rows of data.max_length: the count is of rows)
    assert re.search(r"every label of all \d+ training rows is masked or the end-of", record.error)
    assert nothing_trained(tmp_path / "run")


# ---------------------------------------------------------------------------- the tokenizer
def model_dir_without_tokenizer(tmp_path: Path) -> Path:
    directory = tmp_path / "no_tokenizer"
    tiny_qwen3(byte_tokenizer()).save_pretrained(directory)
    return directory


@pytest.mark.integration
def test_a_model_dir_without_tokenizer_files_is_refused_naming_the_dir(tmp_path):
    """transformers would build a one-entry tokenizer that maps every text to no tokens; the
    run (and the plan) refuse, naming the dir and the files it lacks."""
    directory = model_dir_without_tokenizer(tmp_path)
    overrides = [f"model.name={directory}", *FAST]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "run")
    assert record.status == "failed"
    assert f"the directory {directory} has no tokenizer files" in record.error
    assert "tokenizer.json" in record.error and nothing_trained(tmp_path / "run")

    preset = write_preset(tmp_path, "no_tokenizer", {"a": {"algorithm.lr": 3e-3}})
    with pytest.raises(ConfigError, match=f"arm 'a'.*{directory} has no tokenizer files"):
        evsys.plan(preset, overrides)


def test_a_tokenizer_that_cannot_round_trip_text_is_refused(tmp_path):
    """A vocabulary of two words: every other word becomes [UNK], so text does not come back."""
    directory = model_dir_without_tokenizer(tmp_path)
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "</s>": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", eos_token="</s>"
    )
    tokenizer.save_pretrained(directory)
    cfg = compose_run_config([f"model.name={directory}"])
    with pytest.raises(ConfigError, match="cannot round-trip a sample text"):
        load_tokenizer(cfg.model)


# ------------------------------------------------------------------------------- GRPO rewards
def nan_on_third(completions: list[str], examples: list[dict]) -> list[float]:
    """A user reward (by dotted path below) that breaks on the third completion."""
    return [math.nan if index == 2 else 1.0 for index in range(len(completions))]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1.0", None, [1.0]])
def test_a_reward_that_is_not_a_finite_number_names_function_and_index(bad):
    with pytest.raises(ValueError, match=r"reward 'mine' returned .* for completion 1: a reward"):
        checked_rewards([0.5, bad, 0.0], "mine", 3)
    assert checked_rewards([0, True, 0.5], "mine", 3) == [0.0, 1.0, 0.5]


@pytest.mark.integration
def test_a_nan_reward_fails_the_grpo_run_naming_function_and_index(tmp_path):
    rewards = "algorithm.rewards=[tests.test_degenerate.nan_on_third]"
    cfg = compose_run_config([*GRPO, *FAST, rewards, "eval.benchmarks=[]"])
    record = run_experiment(cfg, job_dir=tmp_path)
    assert record.status == "failed"
    assert "reward 'nan_on_third' returned nan (float) for completion 2" in record.error
