"""Batches for training: several examples packed per row, or one example per padded row.

Packed batches carry no attention mask. Transformers then reads the example boundaries from
`position_ids` (every restart at 0 begins a new example) and builds a block-diagonal causal
mask, so no token attends across examples. Two conditions, both on the caller's side:
the model must run with `use_cache=False` (with a cache, even a fresh one that a forward pass
creates because `config.use_cache` is True, transformers skips the packed-mask detection), and
the attention implementation must be one transformers builds masks for (sdpa, eager, flex).
Flash attention reads packed boundaries from position_ids only for a batch of one row, so
for model.attn_implementation=flash_attention_2 packed batches are flattened into one row
(`flatten_packed`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np
import torch

from evsys.data.tokenize import IGNORE_INDEX, TokenRows

PACKING_WINDOW = 4096  # examples packed together (data.packing_window): fill vs. data order


def pack_examples(
    tokenized: Sequence[dict],
    row_length: int,
    window: int = PACKING_WINDOW,
    strategy: str = "best_fit",
) -> list[dict] | TokenRows:
    """Rows of whole examples back to back, each at most row_length long (see `pack_token_rows`).

    A list in gives a list out; `TokenRows` in (the cached path) gives `TokenRows` out.
    """
    rows = tokenized if isinstance(tokenized, TokenRows) else TokenRows.from_list(list(tokenized))
    packed = pack_token_rows(rows, row_length, window, strategy)
    return packed if isinstance(tokenized, TokenRows) else list(packed)


def packing_order(
    lengths: np.ndarray, row_length: int, window: int = PACKING_WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit decreasing bin packing of each `window` consecutive examples into rows.

    Returns (order, row_starts): the example indices in output order, and where in `order`
    each row starts (one more entry, len(order), at the end). Within a window the examples go
    longest first, each into the open row it fills most tightly (a new row if none has room),
    so short examples fill the gaps long ones leave; an example longer than row_length is
    counted as row_length (it is truncated) and fills a row of its own. Windows keep the data
    order coarsely and bound the work; the same lengths always give the same rows.
    """
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), row_length)
    order, row_starts = [], [0]
    for first in range(0, len(lengths), max(window, 1)):
        chunk = lengths[first : first + max(window, 1)]
        # Stable sort: equal lengths keep their data order, so the result is deterministic.
        longest_first = first + np.argsort(-chunk, kind="stable")
        rows: list[list[int]] = []
        open_rows: list[tuple[int, int]] = []  # (room left, row index), sorted
        for index in longest_first.tolist():
            length = int(lengths[index])
            slot = bisect.bisect_left(open_rows, (length, -1))
            if slot < len(open_rows):
                room, row = open_rows.pop(slot)
            else:
                room, row = row_length, len(rows)
                rows.append([])
            rows[row].append(index)
            if room - length > 0:
                bisect.insort(open_rows, (room - length, row))
        for row in rows:
            order += row
            row_starts.append(len(order))
    return np.asarray(order, dtype=np.int64), np.asarray(row_starts, dtype=np.int64)


def next_fit_order(lengths: np.ndarray, row_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-fit packing in data order: a row is closed as soon as the next example does not
    fit. Returns (order, row_starts) like `packing_order`."""
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), row_length)
    row_starts, used = [0], 0
    for index, length in enumerate(lengths.tolist()):
        if used and used + length > row_length:
            row_starts.append(index)
            used = 0
        used += length
    row_starts.append(len(lengths))
    return np.arange(len(lengths), dtype=np.int64), np.asarray(row_starts, dtype=np.int64)


def pack_token_rows(
    examples: TokenRows, row_length: int, window: int = PACKING_WINDOW, strategy: str = "best_fit"
) -> TokenRows:
    """Rows of whole examples in `packing_order`, on flat arrays: the tokens moved by numpy.

    Rows are not padded; each example restarts position_ids at 0, which is how the model
    tells the examples of a row apart.
    """
    if strategy == "next_fit":
        order, row_starts = next_fit_order(examples.lengths(), row_length)
    else:
        order, row_starts = packing_order(examples.lengths(), row_length, window)
    lengths = np.minimum(examples.lengths()[order], row_length)
    # Token positions: the k-th example of the output contributes its first lengths[k] tokens.
    starts_in_out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts_in_out[1:])
    position_ids = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts_in_out, lengths)
    take = np.repeat(examples.offsets[:-1][order], lengths) + position_ids
    labels = examples.columns["labels"][take]
    # Nothing in the row precedes an example's first token, so it can never be a target;
    # unpacked, the label shift drops it the same way.
    labels[starts_in_out[lengths > 0]] = IGNORE_INDEX
    columns = {
        "input_ids": examples.columns["input_ids"][take],
        "labels": labels,
        "position_ids": position_ids,
    }
    token_offsets = np.append(starts_in_out, int(lengths.sum()))[row_starts]
    return TokenRows(columns, token_offsets)


def packing_fill(rows: TokenRows | Sequence[dict], row_length: int) -> float:
    """Share of the row slots (rows x row_length) that hold real tokens."""
    lengths = rows.lengths() if isinstance(rows, TokenRows) else [len(r["input_ids"]) for r in rows]
    return float(np.sum(lengths)) / max(len(lengths) * row_length, 1)


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


def flatten_packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A packed batch as one long row, for flash attention (which reads example boundaries
    from position_ids only in a batch of one row). Loss-exact: every row starts with an
    example's first token, which is never a target, so no label crosses a row boundary."""
    return {name: values.reshape(1, -1) for name, values in batch.items()}


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
