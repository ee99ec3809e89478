import itertools
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evsys.data.packing import (
    collate_packed,
    collate_padded,
    next_fit_order,
    pack_examples,
    packing_fill,
    packing_order,
)
from evsys.data.tasks import get_task
from evsys.data.tokenize import IGNORE_INDEX, TokenRows, tokenize_examples
from tests.tiny import tiny_qwen3

ROW_LENGTH = 48


def count_target_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that carry a loss."""
    return int((batch["labels"] != IGNORE_INDEX).sum())


def count_real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that are not padding.

    Packed batches have no mask, but every example ends with a target token (its EOS, or a
    completion token where it was truncated), so a row's real tokens end at its last target.
    """
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    is_target = batch["labels"] != IGNORE_INDEX
    width = is_target.shape[1]
    positions = torch.arange(1, width + 1, device=is_target.device)
    return int((is_target * positions).amax(dim=1).sum())


@pytest.fixture(scope="module")
def tokenized(tokenizer):
    # Mixed tasks give examples of different lengths (about 6 to 19 tokens).
    examples = [
        ex for name in ("addition", "reversal") for ex in get_task(name).examples("train", 12, 0)
    ]
    return tokenize_examples(examples, tokenizer, max_length=64)


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_qwen3(tokenizer, special_tokens=False).eval()


def token_losses(model, batch):
    """Cross entropy of every target token, at the target's position (0 where none)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    # use_cache=False: with a cache, transformers does not build the packed mask.
    logits = model(**inputs, use_cache=False).logits
    losses = F.cross_entropy(
        logits[:, :-1].transpose(1, 2),
        batch["labels"][:, 1:],
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return F.pad(losses, (1, 0))


def example_spans(rows):
    """(row, start, end) of every example, in packing order, from the unpadded rows."""
    spans = []
    for r, row in enumerate(rows):
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        ends = starts[1:] + [len(row["position_ids"])]
        spans += [(r, s, e) for s, e in zip(starts, ends, strict=True)]
    return spans


def mean_loss(losses, labels):
    targets = labels != IGNORE_INDEX
    return (losses * targets).sum() / targets.sum()


def test_labels_mask_the_prompt(tokenizer):
    example = {"prompt": "reverse abc=", "completion": "cba"}
    [tokenized] = tokenize_examples([example], tokenizer, max_length=64)
    prompt = list(b"reverse abc=")
    assert tokenized["input_ids"] == prompt + list(b"cba") + [tokenizer.eos_token_id]
    assert tokenized["labels"] == [IGNORE_INDEX] * len(prompt) + list(b"cba") + [256]


def test_truncation_is_counted_and_empty_targets_dropped(tokenizer, caplog):
    examples = [
        {"prompt": "reverse abc=", "completion": "cba"},  # 16 tokens: fits
        {"prompt": "reverse abcdefg=", "completion": "gfedcba"},  # 24: truncated to 18
        {"prompt": "reverse abcdefghijklmnopqrstu=", "completion": "x"},  # prompt only: dropped
    ]
    with caplog.at_level(logging.WARNING):
        tokenized = tokenize_examples(examples, tokenizer, max_length=18)
    assert [len(t["input_ids"]) for t in tokenized] == [16, 18]
    assert tokenized[1]["labels"][-2:] == list(b"gf")
    assert "2 of 3 examples" in caplog.text and "1 of those" in caplog.text


def packed_order(tokenized, row_length=ROW_LENGTH):
    """The index of the example behind each packed span, in packing order."""
    lengths = np.array([len(example["input_ids"]) for example in tokenized])
    return packing_order(lengths, row_length)[0].tolist()


def test_rows_hold_every_example_once(tokenized):
    rows = pack_examples(tokenized, ROW_LENGTH)
    assert len(rows) < len(tokenized)
    assert all(len(row["input_ids"]) <= ROW_LENGTH for row in rows)
    spans = example_spans(rows)
    order = packed_order(tokenized)
    assert sorted(order) == list(range(len(tokenized)))  # none lost, none twice
    for (r, start, end), index in zip(spans, order, strict=True):
        example = tokenized[index]
        assert rows[r]["input_ids"][start:end] == example["input_ids"]
        assert rows[r]["position_ids"][start:end] == list(range(end - start))
        # The first label of an example is never a target (nothing precedes it in its block).
        assert rows[r]["labels"][start:end] == [IGNORE_INDEX, *example["labels"][1:]]


def test_overlong_example_gets_its_own_truncated_row():
    short = {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}
    long = {"input_ids": list(range(10)), "labels": list(range(10))}
    rows = pack_examples([short, long, short, short], row_length=8)
    # Longest first: the truncated long example fills a row, then best fit for the rest.
    assert [row["input_ids"] for row in rows] == [list(range(8)), [1, 2, 3, 1, 2, 3], [1, 2, 3]]
    assert rows[1]["position_ids"] == [0, 1, 2, 0, 1, 2]


def long_tailed_lengths(count, row_length, seed=0):
    """Lengths like real prompt/completion data: most short, a few near or over the row."""
    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(np.log(row_length / 10), 1.0, size=count).astype(np.int64)
    return np.clip(lengths, 8, 2 * row_length)


@pytest.mark.parametrize("row_length", [128, 1024])
def test_best_fit_fills_rows_of_a_long_tailed_mix(row_length):
    lengths = long_tailed_lengths(20_000, row_length)
    order, row_starts = packing_order(lengths, row_length)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    clipped = np.minimum(lengths, row_length)
    assert all(clipped[order[a:b]].sum() <= row_length for a, b in itertools.pairwise(row_starts))
    fill = clipped.sum() / ((len(row_starts) - 1) * row_length)
    assert fill >= 0.95


def test_packing_is_deterministic_and_windowed():
    lengths = long_tailed_lengths(5_000, 256, seed=1)
    first, starts = packing_order(lengths, 256, window=1000)
    again, starts_again = packing_order(lengths, 256, window=1000)
    assert first.tolist() == again.tolist() and starts.tolist() == starts_again.tolist()
    # No row mixes examples of two windows: a window's examples are all packed before the next.
    assert [int(i) // 1000 for i in first] == sorted(int(i) // 1000 for i in first)


def test_packing_fill_of_token_rows(tokenized):
    rows = pack_examples(TokenRows.from_list(tokenized), ROW_LENGTH)
    real = sum(len(example["input_ids"]) for example in tokenized)
    assert packing_fill(rows, ROW_LENGTH) == pytest.approx(real / (len(rows) * ROW_LENGTH))
    assert packing_fill(rows, ROW_LENGTH) > 0.9


def test_collate_packed_pads_as_a_block_of_its_own(tokenized):
    rows = pack_examples(tokenized, ROW_LENGTH)[:3]
    batch = collate_packed(rows, pad_id=257)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention_mask
    width = max(len(row["input_ids"]) for row in rows)
    for r, row in enumerate(rows):
        n, pad = len(row["input_ids"]), width - len(row["input_ids"])
        assert batch["input_ids"][r, n:].tolist() == [257] * pad
        assert batch["labels"][r, n:].tolist() == [IGNORE_INDEX] * pad
        assert batch["position_ids"][r, n:].tolist() == list(range(pad))
    assert count_real_tokens(batch) == sum(len(row["input_ids"]) for row in rows)
    assert count_target_tokens(batch) == sum(
        sum(label != IGNORE_INDEX for label in row["labels"]) for row in rows
    )


def test_collate_padded(tokenized):
    examples = tokenized[:5]
    batch = collate_padded(examples, pad_id=257)
    lengths = [len(ex["input_ids"]) for ex in examples]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["position_ids"][0].tolist() == list(range(max(lengths)))
    assert count_real_tokens(batch) == sum(lengths)
    assert count_target_tokens(batch) == sum(
        sum(label != IGNORE_INDEX for label in ex["labels"]) for ex in examples
    )


@pytest.mark.integration
def test_packed_loss_equals_padded_loss(model, tokenized):
    rows = pack_examples(tokenized, ROW_LENGTH)
    packed = collate_packed(rows, pad_id=257)
    padded = collate_padded(tokenized, pad_id=257)
    with torch.no_grad():
        packed_losses = token_losses(model, packed)
        padded_losses = token_losses(model, padded)
    order = packed_order(tokenized)
    for i, (r, start, end) in zip(order, example_spans(rows), strict=True):
        from_packed = mean_loss(packed_losses[r, start:end], packed["labels"][r, start:end])
        from_padded = mean_loss(padded_losses[i], padded["labels"][i])
        torch.testing.assert_close(from_packed, from_padded, atol=1e-5, rtol=0)
    # The whole-batch loss the model computes itself agrees as well.
    with torch.no_grad():
        packed_total = model(**packed, use_cache=False).loss
        padded_total = model(**padded, use_cache=False).loss
    torch.testing.assert_close(packed_total, padded_total, atol=1e-5, rtol=0)


def test_examples_in_a_row_do_not_see_each_other(model, tokenized):
    rows = pack_examples(tokenized, ROW_LENGTH)
    row = next(row for row in rows if row["position_ids"].count(0) >= 3)
    starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
    middle = slice(starts[1], starts[2])
    changed = {**row, "input_ids": list(row["input_ids"])}
    changed["input_ids"][middle] = [7] * (starts[2] - starts[1])
    with torch.no_grad():
        before = model(**collate_packed([row], 257), use_cache=False).logits[0]
        after = model(**collate_packed([changed], 257), use_cache=False).logits[0]
    assert not torch.allclose(before[middle], after[middle])
    # Neither the example before nor the one after the changed one moves.
    torch.testing.assert_close(before[: starts[1]], after[: starts[1]], atol=1e-6, rtol=0)
    torch.testing.assert_close(before[starts[2] :], after[starts[2] :], atol=1e-6, rtol=0)


def test_next_fit_keeps_the_data_order():
    short = {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}
    long = {"input_ids": list(range(10)), "labels": list(range(10))}
    rows = pack_examples([short, long, short, short], row_length=8, strategy="next_fit")
    # A row closes as soon as the next example does not fit; nothing is reordered.
    assert [row["input_ids"] for row in rows] == [[1, 2, 3], list(range(8)), [1, 2, 3, 1, 2, 3]]
    lengths = long_tailed_lengths(2_000, 128)
    order, row_starts = next_fit_order(lengths, 128)
    assert order.tolist() == list(range(len(lengths)))
    clipped = np.minimum(lengths, 128)
    assert all(clipped[order[a:b]].sum() <= 128 for a, b in itertools.pairwise(row_starts))


def test_a_packing_strategy_typo_is_refused():
    from evsys import compose_run_config
    from evsys.errors import ConfigError

    assert (
        compose_run_config(["data.packing_strategy=next_fit"]).data.packing_strategy == "next_fit"
    )
    with pytest.raises(
        ConfigError, match="data.packing_strategy='nextfit' is not one of best_fit, next_fit"
    ):
        compose_run_config(["data.packing_strategy=nextfit"])
