"""Batches for training: several examples packed per row, or one example per padded row.

Packed batches carry no attention mask. Transformers then reads the example boundaries from
`position_ids` (every restart at 0 begins a new example) and builds a block-diagonal causal
mask, so no token attends across examples. Two conditions, both on the caller's side:
the model must run with `use_cache=False` (with a cache, even a fresh one that a forward pass
creates because `config.use_cache` is True, transformers skips the packed-mask detection), and
the attention implementation must be one transformers builds masks for (sdpa, eager, flex).
Flash attention reads packed boundaries from position_ids only for a batch of one row.
"""

from __future__ import annotations

import torch

from evsys.data.tokenize import IGNORE_INDEX


def pack_examples(tokenized: list[dict], row_length: int) -> list[dict]:
    """Rows of whole examples back to back, in the given order, each at most row_length long.

    A row is closed as soon as the next example does not fit (keeps the data order); an
    example longer than row_length gets a row of its own, truncated. Rows are not padded.
    """
    rows: list[dict] = []
    row = _empty_row()
    for example in tokenized:
        length = min(len(example["input_ids"]), row_length)
        if row["input_ids"] and len(row["input_ids"]) + length > row_length:
            rows.append(row)
            row = _empty_row()
        _append(row, example, length)
    if row["input_ids"]:
        rows.append(row)
    return rows


def _empty_row() -> dict:
    return {"input_ids": [], "labels": [], "position_ids": []}


def _append(row: dict, example: dict, length: int) -> None:
    row["input_ids"] += example["input_ids"][:length]
    # Nothing in the row precedes an example's first token, so it can never be a target;
    # unpacked, the label shift drops it the same way.
    row["labels"] += [IGNORE_INDEX, *example["labels"][1:length]]
    row["position_ids"] += range(length)


def collate_packed(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Packed rows padded to the longest; padding is one more block of its own, never a target.

    Returns input_ids, labels and position_ids, and deliberately no attention_mask (see the
    module docstring).
    """
    width = max(len(row["input_ids"]) for row in rows)
    input_ids, labels, position_ids = [], [], []
    for row in rows:
        pad = width - len(row["input_ids"])
        input_ids.append(row["input_ids"] + [pad_id] * pad)
        labels.append(row["labels"] + [IGNORE_INDEX] * pad)
        # Restarting at 0 makes the padding a separate "example" that nothing attends to.
        position_ids.append(row["position_ids"] + list(range(pad)))
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": torch.tensor(position_ids, dtype=torch.long),
    }


def collate_padded(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """One example per row, right-padded to the longest, with an attention mask."""
    width = max(len(example["input_ids"]) for example in examples)
    input_ids, labels, attention_mask = [], [], []
    for example in examples:
        length = len(example["input_ids"])
        pad = width - length
        input_ids.append(example["input_ids"] + [pad_id] * pad)
        labels.append(example["labels"] + [IGNORE_INDEX] * pad)
        attention_mask.append([1] * length + [0] * pad)
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
        "position_ids": torch.arange(width).expand(len(examples), width).clone(),
    }


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
