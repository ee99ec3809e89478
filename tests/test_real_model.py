"""A real model from a local directory: a tiny Llama with a trained BPE tokenizer, via the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from evsys.config import ModelConfig
from evsys.data.tokenize import encode_prompts
from evsys.models import load_tokenizer
from tests.conftest import FAST, run_cli

BOS, EOS = "<s>", "</s>"


def _synthetic_lines(n: int = 400) -> list[str]:
    """Text in the style of the built-in tasks, so the BPE merges cover their characters."""
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    lines = []
    for _ in range(n):
        word = "".join(rng.choices(letters, k=rng.randint(3, 7)))
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        lines.append(f"reverse {word}={word[::-1]} sort {word}={''.join(sorted(word))} {a}+{b}=")
    return lines


def trained_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE that prepends BOS (like Llama's) and has no pad token."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_synthetic_lines(), trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS)


def save_tiny_llama(model_dir: Path) -> Path:
    """A ~100K-parameter LlamaForCausalLM and its tokenizer, saved with save_pretrained."""
    tokenizer = trained_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.mark.integration
def test_tokenizer_without_pad_and_with_bos_fits_the_data_path(llama_dir):
    tokenizer = load_tokenizer(ModelConfig(name=str(llama_dir)))
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # no pad of its own: eos stands in
    assert tokenizer("abc").input_ids[0] == tokenizer.bos_token_id  # it does add BOS itself
    (prompt,) = encode_prompts(tokenizer, ["reverse abc="])
    assert prompt[0] == tokenizer.bos_token_id and prompt.count(tokenizer.bos_token_id) == 1


@pytest.mark.integration
def test_trains_through_the_cli_and_exports_a_plain_llama(llama_dir, tmp_path):
    outputs = tmp_path / "outputs"
    args = [f"model.name={llama_dir}", *FAST, f"experiment.stores.outputs_root={outputs}"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (record_path,) = outputs.glob("runs/*/result.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "completed", record["error"]
    model_dir = record_path.parent / record["artifacts"]["model"]
    assert not (model_dir / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert isinstance(model, LlamaForCausalLM)
    assert len(tokenizer) == model.config.vocab_size
    assert tokenizer.pad_token == EOS and tokenizer.bos_token == BOS


@pytest.mark.integration
def test_missing_model_dir_fails_before_training(tmp_path):
    outputs = tmp_path / "outputs"
    args = ["model.name=/no/such/dir", *FAST, f"experiment.stores.outputs_root={outputs}"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode != 0
    assert "model.name='/no/such/dir': no such directory" in done.stdout + done.stderr
    (record_path,) = outputs.glob("runs/*/result.json")
    assert json.loads(record_path.read_text())["status"] == "failed"
    assert not (record_path.parent / "checkpoints").exists()  # nothing was trained
