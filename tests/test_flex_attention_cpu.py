"""flex_attention on CPU equals sdpa at every width, whatever memory follows the keys.

torch's CPU flex kernel read keys past the end for head dims under 24 and key counts of
8 mod 16 (evsys/flex_attention.py); these tests put NaN there and sweep the widths.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from evsys.data.packing import collate_padded
from evsys.data.tasks import get_task
from evsys.data.tokenize import tokenize_examples
from evsys.data.tokenizer import byte_tokenizer
from tests.test_scale_options import sft_module

# compiles flex attention kernels: tens of seconds
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def tokenized(tokenizer):
    examples = [
        ex for name in ("addition", "reversal") for ex in get_task(name).examples("train", 8, 0)
    ]
    return tokenize_examples(examples, tokenizer, max_length=64)


@pytest.fixture(autouse=True)
def fresh_compile():
    """Many widths make torch recompile flex with dynamic shapes, whose CPU kernel then fails
    to build for packed batches (a separate torch bug): later tests start from static ones."""
    yield
    torch._dynamo.reset()


def nan_after(values: torch.Tensor) -> torch.Tensor:
    """`values` as the front of a buffer whose rest is NaN."""
    buffer = torch.full((values.shape[0] + 1, *values.shape[1:]), float("nan"))
    buffer[: values.shape[0]] = values
    return buffer[: values.shape[0]]


@pytest.mark.parametrize("width", [24, 40])
def test_flex_attention_never_reads_past_the_last_key(tokenizer, width):
    module = sft_module(tokenizer, "model.attn_implementation=flex_attention")
    attention = module.model.model.layers[0].self_attn.eval()
    head_dim, heads = attention.head_dim, module.model.config.num_attention_heads
    kv_heads = module.model.config.num_key_value_heads
    torch.manual_seed(0)
    query = torch.randn(3, heads, width, head_dim)
    key, value = (nan_after(torch.randn(3, kv_heads, width, head_dim)) for _ in range(2))
    causal = create_block_mask(lambda b, h, q, kv: kv <= q, 3, None, width, width, device="cpu")
    flex = ALL_ATTENTION_FUNCTIONS["flex_attention"]
    with torch.no_grad():
        out, _ = flex(attention, query, key, value, causal, scaling=attention.scaling)
        expected = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=attention.scaling, enable_gqa=True
        )
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-5, rtol=0)


def losses_of(module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        losses, mask = module.token_losses(batch)
    return losses[mask]


def test_flex_equals_sdpa_on_padded_batches_of_every_width(tokenizer, tokenized):
    flex = sft_module(tokenizer, "model.attn_implementation=flex_attention")
    sdpa = sft_module(tokenizer)
    pad = tokenizer.pad_token_id
    for width in (8, 16, 24, 40):  # 8, 24 and 40 were widths that read past the keys
        cut = [{k: v[:width] for k, v in example.items()} for example in tokenized]
        batch = collate_padded(cut, pad)
        got = losses_of(flex, batch)
        assert torch.isfinite(got).all(), width
        torch.testing.assert_close(got, losses_of(sdpa, batch), atol=1e-5, rtol=0)
