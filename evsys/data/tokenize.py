"""Examples to token ids with labels only on the target text.

An example is {"prompt", "completion"}: prompt, completion, EOS, with the loss on the last two.
A multi-turn chat example also carries `segments`, a list of {"text", "train"}: the whole
conversation in order, with the loss on every segment marked `train` (each assistant reply,
see formats.py); the layout already ends each reply, so no EOS is added.

`tokenize_table` runs the same per-batch function through `datasets.map` (batched, several
processes for large sets) and returns `TokenRows`: flat token arrays plus offsets, which load
from the data cache in milliseconds and are read row by row as plain lists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from evsys.errors import DataError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value that cross entropy skips
PARALLEL_MIN_EXAMPLES = 20_000  # below this, starting worker processes costs more than it saves


class TokenRows(Sequence):
    """Rows of token columns stored flat: row i is `values[offsets[i]:offsets[i + 1]]` of each.

    Indexing gives a dict of Python lists, exactly what the list-of-dicts form held, so the
    training stream, the collate functions and DataLoaders use it like a list.
    """

    def __init__(self, columns: dict[str, np.ndarray], offsets: np.ndarray) -> None:
        self.columns = columns
        self.offsets = offsets

    @classmethod
    def from_list(cls, rows: list[dict]) -> TokenRows:
        names = list(rows[0]) if rows else ["input_ids", "labels"]
        lengths = [len(row[names[0]]) for row in rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        columns = {
            name: np.fromiter((t for row in rows for t in row[name]), np.int64, int(offsets[-1]))
            for name in names
        }
        return cls(columns, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return {name: values[start:end].tolist() for name, values in self.columns.items()}

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    """Prompt ids exactly as the model sees them in training and in generation.

    Special tokens are added by hand rather than by the tokenizer, because some tokenizers
    would also append EOS; only a BOS (for tokenizers that have one) goes in front.
    """
    ids = _encode(tokenizer, prompts)
    if tokenizer.bos_token_id is None:
        return ids
    return [[tokenizer.bos_token_id, *prompt] for prompt in ids]


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    # One batched call; no attention mask, which nobody reads here and which costs time.
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
    return encoded["input_ids"]


def tokenize_batch(
    batch: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, list]:
    """Columns prompt/completion (and segments, may be None) to input_ids/labels/truncated.

    Examples cut to max_length that keep no target token are left out: they would cost
    compute and add no loss.
    """
    segments = batch.get("segments") or [None] * len(batch["prompt"])
    plain = [i for i, seg in enumerate(segments) if not seg]
    encoded: dict[int, tuple[list[int], list[int]]] = {}
    prompts = encode_prompts(tokenizer, [batch["prompt"][i] for i in plain])
    completions = _encode(tokenizer, [batch["completion"][i] for i in plain])
    eos = tokenizer.eos_token_id  # a property lookup that is slow enough to matter in the loop
    for i, prompt, completion in zip(plain, prompts, completions, strict=True):
        encoded[i] = (
            prompt + completion + [eos],
            [IGNORE_INDEX] * len(prompt) + completion + [eos],
        )
    for i, seg in enumerate(segments):
        if seg:
            encoded[i] = _encode_segments(tokenizer, seg)
    out: dict[str, list] = {"input_ids": [], "labels": [], "truncated": []}
    for i in range(len(segments)):
        input_ids, labels = encoded[i]
        truncated = len(input_ids) > max_length
        if truncated:
            input_ids, labels = input_ids[:max_length], labels[:max_length]
            if all(label == IGNORE_INDEX for label in labels):
                continue
        out["input_ids"].append(input_ids)
        out["labels"].append(labels)
        out["truncated"].append(truncated)
    return out


def _encode_segments(tokenizer, segments: list[dict]) -> tuple[list[int], list[int]]:
    """Each segment tokenized on its own, so the loss mask falls on segment boundaries."""
    ids = _encode(tokenizer, [segment["text"] for segment in segments])
    input_ids = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    labels = [IGNORE_INDEX] * len(input_ids)
    for segment, segment_ids in zip(segments, ids, strict=True):
        input_ids += segment_ids
        labels += segment_ids if segment["train"] else [IGNORE_INDEX] * len(segment_ids)
    return input_ids, labels


def tokenize_examples(
    examples: list[dict], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[dict]:
    """Each example as {"input_ids", "labels"}, in memory (for small sets and scoring)."""
    columns = {
        "prompt": [ex["prompt"] for ex in examples],
        "completion": [ex["completion"] for ex in examples],
        "segments": [ex.get("segments") for ex in examples],
    }
    out = tokenize_batch(columns, tokenizer, max_length)
    refuse_if_none_kept(len(examples), len(out["labels"]), max_length)
    _report_truncation(len(examples), len(out["labels"]), sum(out["truncated"]), max_length)
    return [
        {"input_ids": ids, "labels": labels}
        for ids, labels in zip(out["input_ids"], out["labels"], strict=True)
    ]


def tokenize_table(
    examples: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    num_proc: int | None = None,
) -> TokenRows:
    """`tokenize_examples` through `datasets.map`, batched and multi-process for large sets."""
    import datasets

    if len(examples) == 0:
        return TokenRows.from_list([])
    columns = {
        "prompt": [ex["prompt"] for ex in examples],
        "completion": [ex["completion"] for ex in examples],
    }
    if any(ex.get("segments") for ex in examples):
        columns["segments"] = [ex.get("segments") or [] for ex in examples]
    table = datasets.Dataset.from_dict(columns)
    if num_proc is None:
        num_proc = min(os.cpu_count() or 1, 8) if len(table) >= PARALLEL_MIN_EXAMPLES else 1
    datasets.disable_progress_bars()
    tokenized = table.map(
        tokenize_batch,
        batched=True,
        batch_size=1000,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=table.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length},
        keep_in_memory=True,  # our own cache keeps the result; no second copy on disk
        new_fingerprint="evsys-tokenize",  # not hashed: evsys/data/cache.py keys the result
    )
    refuse_if_none_kept(len(examples), len(tokenized), max_length)
    arrow = tokenized.data.table
    truncated = int(np.sum(arrow.column("truncated").to_numpy()))
    _report_truncation(len(examples), len(tokenized), truncated, max_length)
    return _token_rows(arrow, ["input_ids", "labels"])


def tokenize_rows(
    examples: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    num_proc: int | None = None,
) -> TokenRows:
    """`tokenize_table`, from the data cache when the examples came through it
    (`evsys.data.cache.CachedExamples`)."""
    cached = getattr(examples, "tokenized", None)
    if cached is not None:
        return cached(tokenizer, max_length, num_proc)
    return tokenize_table(examples, tokenizer, max_length, num_proc)


def _token_rows(arrow, names: list[str]) -> TokenRows:
    """Arrow list columns as flat numpy arrays, without building Python lists."""
    columns, offsets = {}, None
    for name in names:
        column = arrow.column(name).combine_chunks()
        if offsets is None:
            lengths = column.value_lengths().to_numpy(zero_copy_only=False)
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
        columns[name] = column.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return TokenRows(columns, offsets)


def refuse_if_none_kept(total: int, kept: int, max_length: int) -> None:
    """A DataError when examples there were but none kept a target token."""
    if total and not kept:
        raise DataError(
            f"all {total} examples exceed data.max_length={max_length}: cut to that length, "
            "each lost its whole completion (nothing left to train on or score); raise "
            "data.max_length or shorten the prompts"
        )


def _report_truncation(total: int, kept: int, truncated: int, max_length: int) -> None:
    dropped = total - kept
    if truncated or dropped:
        log.warning(
            "%d of %d examples were longer than max_length=%d and were truncated; "
            "%d of those lost their whole completion and were dropped",
            truncated + dropped,
            total,
            max_length,
            dropped,
        )
