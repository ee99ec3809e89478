"""Chunked log-probs from hidden states equal the full-logits computation, value and gradient.

The reference everywhere is the plain computation: the model's full logits, then
log-softmax gathered at the targets (`token_logps`, `labelled_logps`, cross entropy). Chunks
are made tiny (a few positions each) so every test crosses several chunk boundaries.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evsys.config import SFTConfig
from evsys.data.packing import collate_packed, collate_padded, pack_examples
from evsys.data.tasks import get_task
from evsys.data.tokenize import IGNORE_INDEX, tokenize_examples
from evsys.lightning.dpo import DPOModule, collate_pairs, tokenize_pairs
from evsys.lightning.dpo_config import DPOConfig
from evsys.lightning.sft import SFTModule
from evsys.ops import chunked_logps
from evsys.ops.chunked_logps import chosen_logps, shifted_logps, summed_nll
from evsys.ops.logprobs import (
    completion_logps,
    positions_from_mask,
    token_logps,
)
from tests.tiny import tiny_qwen3

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
PAIRS = [
    {"prompt": "12+5=", "completion": "17", "rejected": "18"},
    {"prompt": "reverse abc=", "completion": "cba", "rejected": "cab"},
    {"prompt": "sort dcba=", "completion": "abcd", "rejected": "abdcx"},
]


def labelled_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p of every labelled token given the tokens before it, and the mask of those tokens.

    From full logits: the reference that `chunked_logps.shifted_logps` (what training uses)
    is tested against (a test-only oracle).

    `labels` is aligned with the input ids, -100 where nothing is scored (as in SFT batches);
    both results are one shorter than the rows, since the token at t is predicted at t - 1.
    Unlabelled positions hold 0, so a row's sum is the log-prob of its labelled tokens.
    """
    targets = labels[:, 1:]
    mask = targets != -100
    logps = token_logps(logits[:, :-1], targets.masked_fill(~mask, 0))
    return logps * mask, mask


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch):
    """Five positions per chunk at the byte tokenizer's vocabulary (258)."""
    monkeypatch.setattr(chunked_logps, "LOGITS_CHUNK_BYTES", 4 * 258 * 5)


def tiny_model(tokenizer, tied: bool = True, lora: tuple[str, ...] = ()) -> torch.nn.Module:
    # narrower than the shared tiny model: chunk boundaries matter, not capacity
    model = tiny_qwen3(
        tokenizer,
        special_tokens=False,
        hidden_size=32,
        intermediate_size=64,
        head_dim=8,
        tie_word_embeddings=tied,
    )
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=list(lora)))
        with torch.no_grad():  # LoRA starts as a no-op; move it so the adapters matter
            for name, parameter in model.named_parameters():
                if "lora_" in name:
                    parameter.add_(0.1 * torch.randn_like(parameter))
    return model.train()


MODELS = {
    "tied": {"tied": True},
    "untied": {"tied": False},
    "lora": {"tied": True, "lora": ("q_proj", "v_proj")},
    "lora_head": {"tied": False, "lora": ("q_proj", "lm_head")},
}


def grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out


def assert_same_grads(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys() and got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], **TOLERANCE, msg=name)


def full_logits(model, batch) -> torch.Tensor:
    return model(
        input_ids=batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        position_ids=batch["position_ids"],
        use_cache=False,
    ).logits


# ----------------------------------------------------------------------------------- the op
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("bias", [False, True])
def test_chosen_logps_equal_full_logits_in_value_and_gradient(temperature, bias):
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 258, bias=bias)
    hidden = torch.randn(23, 16, requires_grad=True)  # 5 chunks, the last one short
    targets = torch.randint(0, 258, (23,))
    weights = torch.randn(23)  # any downstream use of the log-probs

    expected = token_logps(head(hidden) / temperature, targets)
    (expected * weights).sum().backward()
    expected_grads = [hidden.grad.clone()] + [p.grad.clone() for p in head.parameters()]
    hidden.grad = None
    head.zero_grad()

    got = chosen_logps(hidden, head, targets, temperature)
    (got * weights).sum().backward()
    got_grads = [hidden.grad] + [p.grad for p in head.parameters()]
    torch.testing.assert_close(got, expected, **TOLERANCE)
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


@pytest.mark.parametrize("bias", [False, True])
def test_summed_nll_with_gradients_made_in_forward_equals_full_logits(bias):
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 258, bias=bias)
    hidden = torch.randn(23, 16, requires_grad=True)
    targets = torch.randint(0, 258, (23,))
    expected = F.cross_entropy(head(hidden), targets, reduction="sum")
    (expected * 0.3).backward()  # any scale downstream (a mean, gradient accumulation)
    expected_grads = [hidden.grad.clone()] + [p.grad.clone() for p in head.parameters()]
    hidden.grad = None
    head.zero_grad()

    got = summed_nll(hidden, head, targets)
    (got * 0.3).backward()
    torch.testing.assert_close(got, expected, **TOLERANCE)
    got_grads = [hidden.grad] + [p.grad for p in head.parameters()]
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_summed_nll_with_a_frozen_head_makes_only_the_hidden_gradient():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 258, bias=False).requires_grad_(False)
    hidden = torch.randn(12, 16, requires_grad=True)
    targets = torch.randint(0, 258, (12,))
    F.cross_entropy(head(hidden), targets, reduction="sum").backward()
    expected = hidden.grad.clone()
    hidden.grad = None
    summed_nll(hidden, head, targets).backward()
    torch.testing.assert_close(hidden.grad, expected, **TOLERANCE)
    assert head.weight.grad is None


@pytest.mark.parametrize("dtype", ["bf16-true", "bf16-mixed"])
def test_bf16_chunks_match_full_logits(dtype):
    """The same low-precision matmuls as autograd through the full logits; float32 softmax."""
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 258, bias=False)
    hidden = torch.randn(23, 16)
    if dtype == "bf16-true":
        head, hidden = head.to(torch.bfloat16), hidden.to(torch.bfloat16)
    hidden.requires_grad_(True)
    targets = torch.randint(0, 258, (23,))
    results = []
    weights = torch.rand(23)
    for loss_fn in (
        lambda: -(token_logps(head(hidden), targets) * weights).sum(),  # full logits
        lambda: -(chosen_logps(hidden, head, targets) * weights).sum(),
        lambda: -token_logps(head(hidden), targets).sum(),  # full logits
        lambda: summed_nll(hidden, head, targets),
    ):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16-mixed"):
            loss = loss_fn()
        loss.backward()
        assert loss.dtype == torch.float32
        results.append((loss.detach(), hidden.grad.clone(), head.weight.grad.clone()))
        hidden.grad = None
        head.zero_grad()
    for got_index, expected_index in ((1, 0), (3, 2)):
        for got, expected in zip(results[got_index], results[expected_index], strict=True):
            assert got.dtype == expected.dtype
            torch.testing.assert_close(got.float(), expected.float(), atol=2e-2, rtol=2e-2)


def test_bf16_hidden_states_give_float32_logps():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 258, bias=False).to(torch.bfloat16)
    hidden = torch.randn(12, 16, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, 258, (12,))
    got = chosen_logps(hidden, head, targets)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, token_logps(head(hidden), targets), atol=1e-5, rtol=0)
    got.sum().backward()
    assert hidden.grad.dtype == torch.bfloat16 and head.weight.grad.dtype == torch.bfloat16


class WrappedHead(torch.nn.Module):
    """Not a plain Linear (as a LoRA-wrapped head is not): takes the checkpointed path."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.weight = linear.weight

    def forward(self, hidden):
        return self.linear(hidden)


def test_checkpointed_path_for_other_heads_equals_full_logits():
    torch.manual_seed(0)
    head = WrappedHead(torch.nn.Linear(16, 258))
    hidden = torch.randn(23, 16, requires_grad=True)
    targets = torch.randint(0, 258, (23,))
    weights = torch.randn(23)
    (token_logps(head(hidden) / 0.7, targets) * weights).sum().backward()
    expected = [hidden.grad.clone()] + [p.grad.clone() for p in head.parameters()]
    hidden.grad = None
    head.zero_grad()
    got = chosen_logps(hidden, head, targets, 0.7)
    (got * weights).sum().backward()
    for a, b in zip([hidden.grad] + [p.grad for p in head.parameters()], expected, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_no_positions_no_logps():
    head = torch.nn.Linear(16, 258)
    empty = chosen_logps(torch.zeros(0, 16), head, torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0,)


# ------------------------------------------------------------------------------- SFT (packed)
@pytest.fixture(scope="module")
def sft_batches(tokenizer):
    examples = [
        ex for name in ("addition", "reversal") for ex in get_task(name).examples("train", 6, 0)
    ]
    tokenized = tokenize_examples(examples, tokenizer, max_length=64)
    packed = collate_packed(pack_examples(tokenized, 48), tokenizer.pad_token_id)
    padded = collate_padded(tokenized[:5], tokenizer.pad_token_id)
    return {"packed": packed, "padded": padded}


@pytest.mark.integration
@pytest.mark.parametrize("layout", ["packed", "padded"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_sft_loss_and_gradients_equal_full_logits(tokenizer, sft_batches, kind, layout):
    batch = sft_batches[layout]
    model = tiny_model(tokenizer, **MODELS[kind])
    logits = full_logits(model, batch)[:, :-1].float()
    targets = batch["labels"][:, 1:]
    expected = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX)
    expected.backward()
    expected_grads = grads(model)

    module = SFTModule(model, tokenizer, SFTConfig())
    loss, count = module.masked_mean_loss(batch)
    loss.backward()
    torch.testing.assert_close(loss, expected, **TOLERANCE)
    assert count == int((targets != IGNORE_INDEX).sum())
    assert_same_grads(grads(model), expected_grads)


def test_token_losses_are_zero_off_target(tokenizer, sft_batches):
    batch = sft_batches["padded"]
    module = SFTModule(tiny_model(tokenizer), tokenizer, SFTConfig())
    losses, mask = module.token_losses(batch)
    assert losses.shape == mask.shape == batch["labels"][:, 1:].shape
    assert torch.all(losses[~mask] == 0) and torch.all(losses[mask] > 0)


# ---------------------------------------------------------------------------------------- DPO
@pytest.mark.parametrize("kind", list(MODELS))
def test_dpo_logps_and_gradients_equal_full_logits(tokenizer, kind):
    batch = collate_pairs(tokenize_pairs(PAIRS, tokenizer, 64), tokenizer.pad_token_id)
    model = tiny_model(tokenizer, **MODELS[kind])
    expected, expected_mask = labelled_logps(full_logits(model, batch), batch["labels"])
    weights = torch.randn(expected.shape[0])
    (expected.sum(-1) * weights).sum().backward()
    expected_grads = grads(model)

    module = DPOModule(model, tokenizer, DPOConfig(loss_type="simpo"))
    summed, lengths = module.sequence_logps(model, batch)
    (summed * weights).sum().backward()
    torch.testing.assert_close(summed, expected.sum(-1), **TOLERANCE)
    assert torch.equal(lengths, expected_mask.sum(-1))
    assert_same_grads(grads(model), expected_grads)

    got, mask = shifted_logps(
        model, batch["input_ids"], batch["attention_mask"], batch["position_ids"], batch["labels"]
    )
    torch.testing.assert_close(got, expected, **TOLERANCE)
    assert torch.equal(mask, expected_mask)


# --------------------------------------------------------------------------------------- GRPO
def grpo_rows(tokenizer, seed: int = 0):
    """Left-padded prompts, sampled-looking completions, EOS then padding in some rows."""
    generator = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, 256, (4, 7), generator=generator)
    prompt_mask = torch.ones_like(prompts)
    prompt_mask[0, :3] = 0
    prompt_mask[2, :1] = 0
    prompts[prompt_mask == 0] = tokenizer.pad_token_id
    completions = torch.randint(0, 256, (4, 6), generator=generator)
    completion_mask = torch.ones_like(completions)
    completion_mask[1, 3:] = 0  # EOS at 2, padding after
    completion_mask[3, 5:] = 0
    completions[1, 2] = completions[3, 4] = tokenizer.eos_token_id
    completions[completion_mask == 0] = tokenizer.pad_token_id
    input_ids = torch.cat([prompts, completions], dim=1)
    return input_ids, torch.cat([prompt_mask, completion_mask], dim=1), completion_mask


@pytest.mark.integration
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("kind", list(MODELS))
def test_grpo_logps_and_gradients_equal_full_logits(tokenizer, kind, temperature):
    input_ids, attention_mask, completion_mask = grpo_rows(tokenizer)
    n = completion_mask.shape[1]
    model = tiny_model(tokenizer, **MODELS[kind])
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions_from_mask(attention_mask),
        use_cache=False,
    ).logits
    expected = token_logps(logits[:, -n - 1 : -1] / temperature, input_ids[:, -n:])
    weights = torch.randn(expected.shape)
    (expected * weights * completion_mask).sum().backward()
    expected_grads = grads(model)

    got = completion_logps(model, input_ids, attention_mask, n, temperature, completion_mask)
    (got * weights * completion_mask).sum().backward()
    torch.testing.assert_close(got * completion_mask, expected * completion_mask, **TOLERANCE)
    assert torch.all(got[completion_mask == 0] == 0)  # padding never reached the head
    assert_same_grads(grads(model), expected_grads)
    # Without a mask every completion position is scored, padding included.
    with torch.no_grad():
        unmasked = completion_logps(model, input_ids, attention_mask, n, temperature)
    torch.testing.assert_close(unmasked, expected.detach(), **TOLERANCE)


def test_grpo_reference_logps_through_the_reference_model(tokenizer):
    """The KL term's reference log-probs: adapters off under LoRA, a frozen copy otherwise."""
    from evsys.lightning.reference import ReferenceModel

    input_ids, attention_mask, completion_mask = grpo_rows(tokenizer, seed=1)
    n = completion_mask.shape[1]
    for kind in ("untied", "lora"):
        model = tiny_model(tokenizer, **MODELS[kind])
        reference = ReferenceModel(model)
        with reference.active() as frozen:
            got = completion_logps(frozen, input_ids, attention_mask, n, 1.0, completion_mask)
        logits = reference(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions_from_mask(attention_mask),
            use_cache=False,
        ).logits
        expected = token_logps(logits[:, -n - 1 : -1], input_ids[:, -n:]) * completion_mask
        assert not got.requires_grad
        torch.testing.assert_close(got, expected, **TOLERANCE)
        assert model.training
