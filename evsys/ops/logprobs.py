"""Per-token log-probabilities of given tokens under a causal LM: what policy losses are made of."""

from __future__ import annotations

import torch

from evsys.ops.chunked_logps import shifted_logps


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position, from logits [..., vocab] and targets [...].

    logit[target] - logsumexp(logits) never materialises the full log-softmax, which matters
    for large vocabularies. Computed in float32 whatever the model's precision.
    """
    logits = logits.float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding: a left-padded row still starts its text at position 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def completion_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    num_completion_tokens: int,
    temperature: float = 1.0,
    completion_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p of each of the last `num_completion_tokens` tokens of every row, given the rest.

    Rows are [left-padded prompt | completion]; the result is [rows, num_completion_tokens].
    `temperature` divides the logits first, so the log-probs are those of the distribution the
    completions were sampled from. With `completion_mask` ([rows, num_completion_tokens]),
    only its tokens are scored (the LM head never sees the padding after EOS); the rest are 0.
    Computed from the hidden states in chunks, never the full logits (chunked_logps.py).
    """
    scored = torch.zeros_like(input_ids, dtype=torch.bool)
    scored[:, -num_completion_tokens:] = True if completion_mask is None else completion_mask.bool()
    labels = input_ids.masked_fill(~scored, -100)
    logps, _ = shifted_logps(
        model, input_ids, attention_mask, positions_from_mask(attention_mask), labels, temperature
    )
    return logps[:, -num_completion_tokens:]
