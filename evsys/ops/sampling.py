"""Sampling completions with temperature from a seeded generator, with the KV cache.

A hand-written loop rather than `model.generate`: it draws from an explicit
`torch.Generator` (so a training step's samples depend only on its seed, not on global RNG
state), and it samples from exactly softmax(logits / temperature), without generate's
default top-k or other processors.
"""

from __future__ import annotations

import torch

from evsys.ops.logprobs import positions_from_mask


@torch.no_grad()
def sample_completions(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator,
    synced: bool = False,
) -> torch.Tensor:
    """[rows, <= max_new_tokens] sampled token ids; a row ends with EOS, then padding.

    Prompts are left-padded (`prompt_mask` 0 on padding), so every row continues from the
    last column. The loop stops early once every row has produced EOS; `synced` (a sharded
    model, whose every forward is a collective): once every row of every process has.
    """
    attention_mask = prompt_mask
    positions = positions_from_mask(attention_mask)
    # logits_to_keep=1: only the last position's logits, not [rows, prompt, vocab].
    output = model(
        input_ids=prompt_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    next_position = positions[:, -1:] + 1
    finished = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    tokens = []
    for _ in range(max_new_tokens):
        probs = torch.softmax(output.logits[:, -1].float() / temperature, dim=-1)
        token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        token = token.masked_fill(finished, pad_token_id)
        tokens.append(token)
        finished |= token == eos_token_id
        if _all_finished(finished, synced):
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(token), 1)], 1)
        output = model(
            input_ids=token.unsqueeze(-1),
            attention_mask=attention_mask,
            position_ids=next_position,
            cache=output.cache,
            use_cache=True,
        )
        next_position = next_position + 1
    return torch.stack(tokens, dim=1)


def _all_finished(finished: torch.Tensor, synced: bool) -> bool:
    done = finished.all()
    if synced:
        done = done.to(torch.int32)
        torch.distributed.all_reduce(done, op=torch.distributed.ReduceOp.MIN)
    return bool(done)


def completion_mask(completion_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 on every token up to and including the first EOS, 0 after it (the padding)."""
    is_eos = (completion_ids == eos_token_id).long()
    # Tokens after the first EOS have at least one EOS strictly before them.
    eos_before = is_eos.cumsum(-1) - is_eos
    return (eos_before == 0).long()
