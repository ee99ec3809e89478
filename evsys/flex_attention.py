"""model.attn_implementation=flex_attention on CPU: small head dims padded past a torch bug.

torch's CPU flex attention kernel (inductor's C++ template) computes q @ k^T with a micro-GEMM
that takes 16 keys at a time. For the last, shorter group its transposed-B path checks only
that the count left is a multiple of the SIMD width, then reads and writes a full 16: with
AVX2 (8 floats) and a key count of 8 mod 16 (e.g. a padded batch 24 wide), it reads 8 keys
past the end and writes their scores over the running row maximum. For every row but the
last in memory those keys are the next row's, finite, and the result stays right; past the
last row's keys is whatever memory follows, so that row's attention is wrong or NaN,
depending on the run. The path is taken only for a query/key head dim below 24 that is a
multiple of the SIMD width (8 or 16: evsys's small test models), so padding q and k with
zeros to 24 avoids it: q.k sums the same products, and the scale stays that of the real head
dim. Values, and so the output, keep their size. Packed rows, padded rows and cached
decoding all go through this one function; on GPU (Triton) nothing changes.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.flex_attention import flex_attention_forward

SAFE_CPU_HEAD_DIM = 24  # the kernel's faulty path needs head_dim < 24 (its "24 * BLOCK_M > K")


def padded_flex_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: object,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """transformers' flex_attention_forward, with q and k zero-padded on CPU (see above)."""
    head_dim = query.shape[-1]
    if query.device.type == "cpu" and head_dim < SAFE_CPU_HEAD_DIM:
        scaling = head_dim**-0.5 if scaling is None else scaling  # not that of the padded dim
        pad = (0, SAFE_CPU_HEAD_DIM - head_dim)
        query = torch.nn.functional.pad(query, pad)
        key = torch.nn.functional.pad(key, pad)
    return flex_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, **kwargs
    )


def use_padded_flex_attention() -> None:
    """Make every model's flex_attention the padded one (idempotent; transformers looks the
    function up by name at each forward, so models already built use it too)."""
    AttentionInterface.register("flex_attention", padded_flex_attention_forward)
