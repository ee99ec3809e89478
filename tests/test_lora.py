"""LoRA through peft: only adapters train, resume works, merged and adapter exports load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM

from evsys import compose_run_config, run_experiment
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError
from tests.conftest import FAST, arm_log_dir
from tests.tiny import tiny_qwen3_config

TARGETS = ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
LORA = ["model.lora.r=8", "model.lora.alpha=16", f"model.lora.target_modules=[{','.join(TARGETS)}]"]
SMALL = ["model.hidden_size=64", "model.num_layers=2", "model.intermediate_size=128"]
PROMPT = torch.tensor([list(b"reverse abcde=")])


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A small random "pretrained" base saved with save_pretrained.

    Its init is wider than the usual 0.02: LoRA leaves the (tied) embeddings frozen, and with
    tiny embeddings no adapter can make the logits confident, so the loss would barely move.
    """
    tokenizer = byte_tokenizer()
    config = tiny_qwen3_config(tokenizer, tie_word_embeddings=True, initializer_range=0.1)
    path = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def merged_arm(base_dir, tmp_path_factory) -> Path:
    """20 LoRA steps at lr 1e-2 on the saved base, exported merged."""
    job_dir = tmp_path_factory.mktemp("merged")
    steps = ["algorithm.max_steps=20", "algorithm.lr=1e-2", "checkpoint_every_n_steps=20"]
    cfg = compose_run_config([*FAST, *steps, *LORA, f"model.name={base_dir}"])
    record = run_experiment(cfg, job_dir=job_dir)
    assert record.status == "completed", record.error
    return job_dir


@pytest.fixture(scope="module")
def adapter_arm(tmp_path_factory) -> Path:
    """A few LoRA steps on a fresh random-init base, exported as an adapter."""
    job_dir = tmp_path_factory.mktemp("adapter")
    cfg = compose_run_config([*FAST, *SMALL, *LORA, "model.lora.export=adapter"])
    record = run_experiment(cfg, job_dir=job_dir)
    assert record.status == "completed", record.error
    return job_dir


def _checkpoint_state(job_dir: Path) -> dict[str, torch.Tensor]:
    """The LightningModule's weights in last.ckpt, without the module's `model.` prefix."""
    checkpoint = torch.load(job_dir / "checkpoints" / "last.ckpt", weights_only=False)
    return {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}


def _peft_from_checkpoint(job_dir: Path, base_dir: Path) -> PeftModel:
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), lora)
    model.load_state_dict(_checkpoint_state(job_dir))
    return model.eval()


@pytest.mark.integration
def test_lora_loss_falls(merged_arm):
    events = EventAccumulator(str(arm_log_dir(merged_arm)))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")]
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:3]) / 3 - 0.5, losses


@pytest.mark.integration
def test_only_adapters_change(merged_arm, base_dir):
    start = load_file(base_dir / "model.safetensors")
    trained = _checkpoint_state(merged_arm)
    adapters = {key: value for key, value in trained.items() if "lora_" in key}
    assert adapters and any(
        value.abs().sum() > 0 for key, value in adapters.items() if "lora_B" in key
    )
    # peft keeps each wrapped layer's original weight as `<layer>.base_layer.weight`
    base = {
        key.removeprefix("base_model.model.").replace(".base_layer.", "."): value
        for key, value in trained.items()
        if "lora_" not in key
    }
    for key, value in start.items():
        assert torch.equal(base[key], value), key


@pytest.mark.integration
def test_merged_export_is_plain_and_matches_the_peft_model(merged_arm, base_dir):
    export = merged_arm / "model"
    assert not (export / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(export).eval()
    assert not any("lora" in key for key in merged.state_dict())
    peft_model = _peft_from_checkpoint(merged_arm, base_dir)
    with torch.no_grad():
        expected, got = peft_model(PROMPT).logits, merged(PROMPT).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.integration
def test_lora_arm_resumes_from_its_checkpoint(merged_arm, base_dir):
    first = json.loads((merged_arm / "result.json").read_text())
    steps = ["algorithm.max_steps=20", "algorithm.lr=1e-2", "checkpoint_every_n_steps=20"]
    cfg = compose_run_config([*FAST, *steps, *LORA, f"model.name={base_dir}"])
    again = run_experiment(cfg, job_dir=merged_arm)  # last.ckpt is at max_steps: nothing to train
    assert again.status == "completed", again.error
    assert again.metrics["eval/reversal/loss"] == first["metrics"]["eval/reversal/loss"]


@pytest.mark.integration
def test_adapter_export_of_a_fresh_base_saves_the_base(adapter_arm):
    export = adapter_arm / "model"
    assert (export / "adapter_config.json").is_file()
    assert not (export / "model.safetensors").exists()
    assert (export / "base" / "model.safetensors").is_file()
    auto = AutoPeftModelForCausalLM.from_pretrained(export).eval()
    base = AutoModelForCausalLM.from_pretrained(export / "base").eval()
    with torch.no_grad():
        base_logits = base(PROMPT).logits
        on_base = PeftModel.from_pretrained(base, export).eval()
        torch.testing.assert_close(auto(PROMPT).logits, on_base(PROMPT).logits)
        assert not torch.allclose(on_base(PROMPT).logits, base_logits)  # the adapter matters


@pytest.mark.integration
def test_adapter_export_can_be_started_from(adapter_arm, tmp_path):
    export = adapter_arm / "model"
    cfg = compose_run_config([*FAST, "algorithm.lr=0", f"model.init_from={export}"])
    record = run_experiment(cfg, job_dir=tmp_path)
    assert record.status == "completed", record.error
    base = AutoModelForCausalLM.from_pretrained(export / "base")
    expected = PeftModel.from_pretrained(base, export).merge_and_unload().state_dict()
    started = load_file(tmp_path / "model" / "model.safetensors")  # lr=0: still the start
    for key, value in started.items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "key"),
    [("model.lora.target_modules=[no_such_proj]", "model.lora.target_modules")],
)  # fmt: skip
def test_bad_lora_settings_fail_naming_the_key(tmp_path, override, key):
    cfg = compose_run_config([*FAST, *SMALL, "model.lora.r=4", override])
    record = run_experiment(cfg, job_dir=tmp_path)
    assert record.status == "failed" and key in record.error
    assert not (tmp_path / "checkpoints").exists()


def test_a_bad_lora_export_fails_at_composition():
    """model.lora.export's choices are on its schema field: refused before any run starts."""
    with pytest.raises(ConfigError, match="model.lora.export='zip' is not one of merged, adapter"):
        compose_run_config([*FAST, *SMALL, "model.lora.r=4", "model.lora.export=zip"])
