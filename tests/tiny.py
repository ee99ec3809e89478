"""The one tiny test model: a 2-layer Qwen3 decoder over evsys's byte tokenizer.

Every test that needs a model object builds it here; a test changes only the settings its
point depends on (a narrower width, untied embeddings, a wider init) and says why.
"""

from __future__ import annotations

import torch
import transformers

TINY_QWEN3 = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    head_dim=16,
)


def tiny_qwen3_config(
    tokenizer, special_tokens: bool = True, **settings
) -> transformers.Qwen3Config:
    """TINY_QWEN3 sized for `tokenizer`, with `settings` on top. `special_tokens`: the
    tokenizer's pad and eos ids in the config (the pad row of the embedding starts at zero)."""
    ids = (
        {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if special_tokens
        else {}
    )
    return transformers.Qwen3Config(vocab_size=len(tokenizer), **{**TINY_QWEN3, **ids, **settings})


def tiny_qwen3(
    tokenizer, seed: int = 0, special_tokens: bool = True, **settings
) -> transformers.Qwen3ForCausalLM:
    """A freshly initialised tiny model, the same weights for the same seed and settings."""
    torch.manual_seed(seed)
    config = tiny_qwen3_config(tokenizer, special_tokens=special_tokens, **settings)
    return transformers.Qwen3ForCausalLM(config)
