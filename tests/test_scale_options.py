"""model.gradient_checkpointing and model.attn_implementation: same losses, examples kept apart.

Gradient checkpointing only changes when activations are computed, so the loss and the
gradients equal those without it. Every attention kernel must keep packed examples apart:
an example's loss in a packed row equals its loss alone in a padded row.
"""

from __future__ import annotations

import pytest
import torch

from evsys import compose_run_config
from evsys.config import SFTConfig
from evsys.data.packing import collate_packed, collate_padded, flatten_packed, pack_examples
from evsys.data.tasks import get_task
from evsys.data.tokenize import tokenize_examples
from evsys.errors import ConfigError
from evsys.lightning.sft import SFTModule
from evsys.models import load_model
from tests.test_packing import example_spans, packed_order

SMALL = ["model.hidden_size=32", "model.num_layers=2", "model.intermediate_size=64"]
ROW_LENGTH = 48


@pytest.fixture(scope="module")
def tokenized(tokenizer):
    examples = [
        ex for name in ("addition", "reversal") for ex in get_task(name).examples("train", 8, 0)
    ]
    return tokenize_examples(examples, tokenizer, max_length=64)


def sft_module(tokenizer, *overrides: str) -> SFTModule:
    torch.manual_seed(0)
    model = load_model(compose_run_config([*SMALL, *overrides]).model, tokenizer)
    return SFTModule(model, tokenizer, SFTConfig())


def loss_and_grads(module: SFTModule, batch: dict) -> tuple[torch.Tensor, dict]:
    loss, _ = module.masked_mean_loss(batch)
    loss.backward()
    named = module.model.named_parameters()
    grads = {name: p.grad.clone() for name, p in named if p.grad is not None}
    module.model.zero_grad()
    return loss.detach(), grads


# --------------------------------------------------------------------- gradient checkpointing
@pytest.mark.integration
@pytest.mark.parametrize("lora", [False, True])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tokenizer, tokenized, lora):
    extra = ["model.lora.r=4"] if lora else []
    batch = collate_packed(pack_examples(tokenized, ROW_LENGTH), tokenizer.pad_token_id)
    plain = sft_module(tokenizer, *extra)
    checkpointed = sft_module(tokenizer, *extra, "model.gradient_checkpointing=true")
    base = checkpointed.model.get_base_model() if lora else checkpointed.model
    assert base.is_gradient_checkpointing and checkpointed.model.training
    expected_loss, expected = loss_and_grads(plain, batch)
    loss, got = loss_and_grads(checkpointed, batch)
    torch.testing.assert_close(loss, expected_loss, atol=1e-6, rtol=0)
    assert got.keys() == expected.keys() and got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_checkpointing_trains(tokenizer, tokenized):
    batch = collate_packed(pack_examples(tokenized, ROW_LENGTH), tokenizer.pad_token_id)
    losses = {}
    for flag in ("false", "true"):
        module = sft_module(tokenizer, f"model.gradient_checkpointing={flag}")
        optimizer = torch.optim.AdamW(module.model.parameters(), lr=3e-3)
        losses[flag] = []
        for _ in range(5):
            loss, _ = module.masked_mean_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses[flag].append(float(loss))
    assert losses["true"][-1] < losses["true"][0]
    assert losses["true"] == pytest.approx(losses["false"], abs=1e-4)


# ------------------------------------------------------------------------- attention kernels
def per_example_losses(module: SFTModule, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        losses, mask = module.token_losses(batch)
    return losses, mask


@pytest.mark.integration
@pytest.mark.parametrize("implementation", ["sdpa", "eager", "flex_attention"])
def test_packed_loss_equals_unpacked_loss_per_example(tokenizer, tokenized, implementation):
    """flex_attention runs forward only here: torch has no flex backward on CPU."""
    module = sft_module(tokenizer, f"model.attn_implementation={implementation}")
    assert module.model.config._attn_implementation == implementation
    rows = pack_examples(tokenized, ROW_LENGTH)
    packed_losses, packed_mask = per_example_losses(
        module, collate_packed(rows, tokenizer.pad_token_id)
    )
    padded_losses, padded_mask = per_example_losses(
        module, collate_padded(tokenized, tokenizer.pad_token_id)
    )
    spans = example_spans(rows)
    for index, (r, start, end) in zip(packed_order(tokenized), spans, strict=True):
        # Shifted by one: the loss at t is that of token t + 1; an example's first is never one.
        from_packed = packed_losses[r, start : end - 1][packed_mask[r, start : end - 1]]
        from_padded = padded_losses[index][padded_mask[index]]
        torch.testing.assert_close(from_packed, from_padded, atol=1e-5, rtol=0)


def test_flattened_packed_batch_has_the_same_loss(tokenizer, tokenized):
    """What flash attention trains on: all packed rows as one row, the same loss."""
    module = sft_module(tokenizer)
    batch = collate_packed(pack_examples(tokenized, ROW_LENGTH)[:4], tokenizer.pad_token_id)
    with torch.no_grad():
        expected, count = module.masked_mean_loss(batch)
        flat, flat_count = module.masked_mean_loss(flatten_packed(batch))
    assert flat_count == count
    torch.testing.assert_close(flat, expected, atol=1e-6, rtol=0)


def test_flash_attention_without_flash_attn_is_a_config_error(tokenizer):
    from transformers.utils import is_flash_attn_2_available

    if is_flash_attn_2_available():
        pytest.skip("flash-attn is installed here")
    with pytest.raises(ConfigError, match="model.attn_implementation=flash_attention_2"):
        sft_module(tokenizer, "model.attn_implementation=flash_attention_2")


def test_unknown_attn_implementation_is_a_config_error(tokenizer):
    with pytest.raises(ConfigError, match="model.attn_implementation='fast'"):
        sft_module(tokenizer, "model.attn_implementation=fast")


# ---------------------------------------------------------------------------------- precision
@pytest.mark.integration
@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_bf16_runs_end_to_end_on_the_cli(tmp_path, precision):
    """The chunked loss takes bf16 hidden states and computes its log-softmax in float32."""
    import json

    from tests.conftest import FAST, run_cli

    job_dir = tmp_path / "arm"
    args = [*FAST, *SMALL, f"backend.precision={precision}", "model.gradient_checkpointing=true"]
    done = run_cli([*args, f"hydra.run.dir={job_dir}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((job_dir / "result.json").read_text())
    assert record["status"] == "completed", record.get("error")
    assert 0 < record["metrics"]["train/loss"] < 10
    # The packed rows' fill is logged once, at the start.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(job_dir / "tensorboard"))
    events.Reload()
    [fill] = [event.value for event in events.Scalars("train/packing_fill")]
    assert 0.9 < fill <= 1.0


# ------------------------------------------------------------------------------------ compile
@pytest.mark.slow  # compiling on a 2-core CPU takes about a minute
def test_compiled_model_trains_like_eager(tmp_path):
    import json

    from tests.conftest import FAST, run_cli

    losses = {}
    for flag in ("false", "true"):
        job_dir = tmp_path / flag
        args = [*FAST, *SMALL, f"backend.compile={flag}", f"hydra.run.dir={job_dir}"]
        done = run_cli(args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        record = json.loads((job_dir / "result.json").read_text())
        assert record["status"] == "completed", record.get("error")
        losses[flag] = record["metrics"]["train/loss"]
    assert losses["true"] == pytest.approx(losses["false"], abs=1e-3)
