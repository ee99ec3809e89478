"""Log-probs of given tokens from a causal LM without its full-vocabulary logits.

A forward pass through `model(...)` returns logits for every position: rows x tokens x vocab
numbers, kept for the backward pass. At 150k-token vocabularies that tensor (and its float32
copy, its log-softmax and their gradients) is most of a training step's memory. Here the
model's decoder gives the final hidden states, the positions that carry a loss are picked
out, and the output projection (`get_output_embeddings()`: tied or untied, LoRA-wrapped or
not) runs on a few hundred of them at a time. Each chunk's logits are freed as soon as its
log-probs are known and recomputed, chunk by chunk, in the backward pass (`_LinearLogps` for
a plain Linear head, `torch.utils.checkpoint` per chunk for any other, e.g. LoRA-wrapped).
A plain sum of log-probs (the SFT loss, `summed_nll`) needs no recomputation: each chunk's
gradient is made in the forward pass. The log-softmax runs in float32 whatever the model's
precision, as the full-logits path did.

`model` may be a Hugging Face causal LM or a peft model wrapping one: both answer
`get_decoder()` (the stack of blocks and final norm) and `get_output_embeddings()`.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

LOGITS_CHUNK_BYTES = 128 * 2**20  # float32 logits alive at once: ~220 positions at 152k vocab


def final_hidden_states(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
) -> torch.Tensor:
    """The decoder's last hidden states [rows, tokens, hidden]: what the LM head reads.

    use_cache=False matters for packed rows: with a cache transformers does not build the
    block-diagonal mask from position_ids (see evsys/data/packing.py).
    """
    return model.get_decoder()(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    ).last_hidden_state


def chosen_logps(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_bytes: int | None = None,
) -> torch.Tensor:
    """log p(target) [positions] from hidden states [positions, hidden] through `head`.

    Same values and gradients as `token_logps(head(hidden), targets)` on the full logits;
    `temperature` divides the logits first (GRPO's sampling distribution); `chunk_bytes`
    bounds the float32 logits of one chunk (None: LOGITS_CHUNK_BYTES).
    """
    vocab = head.weight.shape[0]
    chunk = max(1, (chunk_bytes or LOGITS_CHUNK_BYTES) // (4 * vocab))
    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or any(p.requires_grad for p in head.parameters())
    )
    if needs_grad and type(head) is torch.nn.Linear:
        return _LinearLogps.apply(hidden, head.weight, head.bias, targets, temperature, chunk)
    pieces = []
    for start in range(0, hidden.shape[0], chunk):
        args = (hidden[start : start + chunk], targets[start : start + chunk], head, temperature)
        if needs_grad:
            # Non-reentrant: nothing of the chunk is saved but its inputs; backward reruns it.
            pieces.append(checkpoint(_chunk_logps, *args, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(*args))
    if not pieces:
        return hidden.new_zeros(0, dtype=torch.float32)
    return torch.cat(pieces)


def _chunk_logps(
    hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module, temperature: float
) -> torch.Tensor:
    logits = head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


class _LinearLogps(torch.autograd.Function):
    """log softmax((hidden W^T + b) / T)[target] per position, chunk by chunk.

    What checkpointing each chunk does, written out: the forward keeps only each position's
    logsumexp; the backward recomputes one chunk's logits at a time (under the forward's
    autocast, so they are the same numbers) and forms their gradient in place.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk):
        logps = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logps)
        for start in range(0, hidden.shape[0], chunk):
            end = start + chunk
            logits = _scaled_logits(hidden[start:end], weight, bias, temperature)
            lse[start:end] = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(-1, targets[start:end].unsqueeze(-1)).squeeze(-1)
            logps[start:end] = picked - lse[start:end]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        device = hidden.device.type
        ctx.autocast = (
            torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        )
        return logps

    @staticmethod
    def backward(ctx, grad_logps):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        wants_hidden, wants_weight, wants_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None
        grad_weight = torch.zeros(weight.shape, device=weight.device) if wants_weight else None
        grad_bias = torch.zeros(bias.shape, device=bias.device) if wants_bias else None
        device = hidden.device.type
        with torch.autocast(device, dtype=ctx.autocast, enabled=ctx.autocast is not None):
            for start in range(0, hidden.shape[0], ctx.chunk):
                end = start + ctx.chunk
                h, t, g = hidden[start:end], targets[start:end], grad_logps[start:end].float()
                logits = _scaled_logits(h, weight, bias, ctx.temperature)
                # d log p_t / d logits = onehot(t) - softmax, times the incoming gradient.
                grad = logits.sub_(lse[start:end].unsqueeze(-1)).exp_().mul_(-g.unsqueeze(-1))
                grad[torch.arange(len(t), device=t.device), t] += g
                if ctx.temperature != 1.0:
                    grad.div_(ctx.temperature)
                grad = grad.to(weight.dtype)
                if grad_hidden is not None:
                    grad_hidden[start:end] = grad @ weight
                if grad_weight is not None and _plain_float32(grad, h):
                    grad_weight.addmm_(grad.T, h)
                elif grad_weight is not None:
                    grad_weight += (grad.T @ h.to(weight.dtype)).float()
                if grad_bias is not None:
                    grad_bias += grad.float().sum(0)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def _scaled_logits(hidden, weight, bias, temperature: float) -> torch.Tensor:
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    return logits.div_(temperature) if temperature != 1.0 else logits


def labelled_positions(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
    labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden states [scored, hidden], their targets [scored], mask [rows, tokens - 1]).

    `labels` is aligned with input_ids, -100 where nothing is scored; the token at t is
    predicted at t - 1, so the mask is one shorter than the rows.
    """
    hidden = final_hidden_states(model, input_ids, attention_mask, position_ids)
    targets = labels[:, 1:]
    mask = targets != -100
    return hidden[:, :-1][mask], targets[mask], mask


def shifted_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p of every labelled token given the tokens before it, and the mask of those tokens.

    Both results are [rows, tokens - 1], 0 where unlabelled, so a row's sum is the log-prob of
    its labelled tokens. Only labelled positions reach the LM head.
    """
    hidden, targets, mask = labelled_positions(
        model, input_ids, attention_mask, position_ids, labels
    )
    logps = chosen_logps(hidden, model.get_output_embeddings(), targets, temperature)
    full = torch.zeros(mask.shape, dtype=logps.dtype, device=logps.device)
    return full.masked_scatter(mask, logps), mask


def summed_nll(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    chunk_bytes: int | None = None,
) -> torch.Tensor:
    """-sum of log p(target): the SFT loss before its mean, equal to -chosen_logps(...).sum().

    Where the head is a plain Linear and a gradient is wanted, each chunk's gradient is
    computed in the forward pass (the loss is a plain sum, so it is known there) and only
    scaled in the backward: three matmuls per chunk instead of four, nothing recomputed.
    Otherwise (a LoRA head, no grad) it is `chosen_logps`.
    """
    plain = type(head) is torch.nn.Linear
    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or any(p.requires_grad for p in head.parameters())
    )
    if not (plain and needs_grad):
        return -chosen_logps(hidden, head, targets, chunk_bytes=chunk_bytes).sum()
    chunk = max(1, (chunk_bytes or LOGITS_CHUNK_BYTES) // (4 * head.weight.shape[0]))
    return _LinearNLL.apply(hidden, head.weight, head.bias, targets, chunk)


class _LinearNLL(torch.autograd.Function):
    """sum_i -log softmax(hidden_i W^T + b)[target_i], its gradients made during forward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk):
        # Only the gradients some input needs: a frozen head (LoRA elsewhere) skips a matmul.
        wants_hidden, wants_weight, wants_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None
        grad_weight = None
        if wants_weight:
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_bias = torch.zeros(bias.shape, device=bias.device) if wants_bias else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            logits = torch.nn.functional.linear(h, weight, bias).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(-1, t.unsqueeze(-1)).squeeze(-1)).sum()
            # d(-log p_t)/d logits = softmax - onehot(t), built in place of the logits.
            grad = logits.sub_(lse.unsqueeze(-1)).exp_()
            grad[torch.arange(len(t), device=t.device), t] -= 1
            grad = grad.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = grad @ weight
            if grad_weight is not None and _plain_float32(grad, h):
                grad_weight.addmm_(grad.T, h)  # no [vocab, hidden] temporary per chunk
            elif grad_weight is not None:  # bf16 or autocast: low-precision matmul, fp32 sum
                grad_weight += (grad.T @ h.to(weight.dtype)).float()
            if grad_bias is not None:
                grad_bias += grad.float().sum(0)
        ctx.grads = (grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.grads is None:
            raise RuntimeError("summed_nll: a second backward through the same loss")
        grad_hidden, grad_weight, grad_bias = ctx.grads
        weight_dtype, bias_dtype = ctx.dtypes
        ctx.grads = None
        scale = grad_output.float()
        # In place: autograd takes these buffers as the .grad when there is none yet.
        if grad_hidden is not None:
            grad_hidden = grad_hidden.mul_(scale.to(grad_hidden.dtype))
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(scale).to(weight_dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.mul_(scale).to(bias_dtype)
        return grad_hidden, grad_weight, grad_bias, None, None


def _plain_float32(*tensors: torch.Tensor) -> bool:
    device = tensors[0].device.type
    return all(t.dtype == torch.float32 for t in tensors) and not torch.is_autocast_enabled(device)
