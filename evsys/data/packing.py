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

from collections.abc import Sequence

import numpy as np
import torch

from evsys.data.tokenize import IGNORE_INDEX, TokenRows


def pack_examples(tokenized: Sequence[dict], row_length: int) -> list[dict] | TokenRows:
    """Rows of whole examples back to back, in the given order, each at most row_length long.

    A row is closed as soon as the next example does not fit (keeps the data order); an
    example longer than row_length gets a row of its own, truncated. Rows are not padded.
    A list in gives a list out; `TokenRows` in (the cached path) gives `TokenRows` out.
    """
    rows = tokenized if isinstance(tokenized, TokenRows) else TokenRows.from_list(list(tokenized))
    packed = pack_token_rows(rows, row_length)
    return packed if isinstance(tokenized, TokenRows) else list(packed)


def pack_token_rows(examples: TokenRows, row_length: int) -> TokenRows:
    """`pack_examples` on flat arrays: one Python pass over lengths, the tokens moved by numpy."""
    lengths = np.minimum(examples.lengths(), row_length)
    row_offsets = [0]  # example index where each row starts
    used = 0
    for index, length in enumerate(lengths.tolist()):
        if used and used + length > row_length:
            row_offsets.append(index)
            used = 0
        used += length
    row_offsets.append(len(lengths))
    # Token positions: example i contributes its first lengths[i] tokens.
    starts_in_out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts_in_out[1:])
    position_ids = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts_in_out, lengths)
    take = np.repeat(examples.offsets[:-1], lengths) + position_ids
    labels = examples.columns["labels"][take]
    # Nothing in the row precedes an example's first token, so it can never be a target;
    # unpacked, the label shift drops it the same way.
    labels[starts_in_out[lengths > 0]] = IGNORE_INDEX
    columns = {
        "input_ids": examples.columns["input_ids"][take],
        "labels": labels,
        "position_ids": position_ids,
    }
    token_offsets = np.append(starts_in_out, int(lengths.sum()))[row_offsets]
    return TokenRows(columns, token_offsets)


def chunk_token_rows(examples: TokenRows, row_length: int) -> TokenRows:
    """Examples longer than row_length cut into row_length pieces (nothing is thrown away).

    Each piece then starts at position 0, so its first token is context for the rest.
    """
    lengths = examples.lengths()
    pieces = np.maximum(1, -(-lengths // row_length))  # ceil, and empty examples stay one
    piece_starts = [
        start + np.arange(count, dtype=np.int64) * row_length
        for start, count in zip(examples.offsets[:-1].tolist(), pieces.tolist(), strict=True)
    ]
    starts = np.concatenate(piece_starts) if piece_starts else np.zeros(0, dtype=np.int64)
    ends = np.minimum(starts + row_length, np.repeat(examples.offsets[1:], pieces))
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    take = np.repeat(starts, ends - starts) + (
        np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], ends - starts)
    )
    columns = {name: values[take] for name, values in examples.columns.items()}
    return TokenRows(columns, offsets)


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
