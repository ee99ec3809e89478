"""Data with nothing to learn, refused before training: every such check lives here.

Degenerate data does not fail on its own, it trains to numbers that look like results: 200
empty texts pretrain to loss 0 and perplexity 1, preference pairs whose two answers are the
same hold DPO at loss log 2, a tokenizer without a vocabulary maps every text to no tokens.
So each kind is refused with the file (or config key), the count and the reason:

    blank completions    every example's completion (a text row's text, a chat's last reply)
                         is empty or whitespace: nothing but the end-of-text token to learn
    identical pairs      more than IDENTICAL_PAIRS_MAX_SHARE of the preference pairs have
                         chosen == rejected: no preference to learn
    no trainable tokens  after tokenization, every label of every training row is masked or
                         the end-of-text token (`check_rows`, where only tokens can tell)
    no tokenizer         a model directory without tokenizer files, or a tokenizer that
                         cannot round-trip a sample text

The example checks read the examples once, one at a time, holding only counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from evsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Up to this share of preference pairs may have chosen == rejected (they are warned about);
# above it the data set is refused. Half: such a set is more noise than preference.
IDENTICAL_PAIRS_MAX_SHARE = 0.5

# Files that hold a tokenizer's vocabulary (one is enough); tokenizer_config.json alone is not.
VOCABULARY_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
ROUND_TRIP_SAMPLE = "the 3 quick foxes jump over 12 lazy dogs"  # plain words any vocabulary has


def check_examples(examples: Iterable[dict], where: str, preference: bool) -> None:
    """A DataError naming `where` (file and split) when no example has text to learn, or when
    too many preference pairs (`preference`) have two identical answers."""
    total = blank = identical = 0
    for example in examples:
        total += 1
        blank += not example["completion"].strip()
        identical += preference and example["rejected"] == example["completion"]
    if total and blank == total:
        raise DataError(
            f"{where}: all {total} examples have an empty or whitespace-only completion/text: "
            "no trainable tokens; check the file and data.columns"
        )
    if blank:
        log.warning(
            "%s: %d of %d examples have an empty or whitespace-only completion; they train "
            "only the end-of-text token",
            where, blank, total,
        )  # fmt: skip
    _check_identical_pairs(identical, total, where)


def _check_identical_pairs(identical: int, total: int, where: str) -> None:
    if identical > IDENTICAL_PAIRS_MAX_SHARE * total:
        raise DataError(
            f"{where}: {identical} of {total} preference pairs have chosen == rejected (more "
            f"than the {IDENTICAL_PAIRS_MAX_SHARE:.0%} allowed): identical answers give "
            "nothing to prefer; check the chosen and rejected columns (data.columns)"
        )
    if identical:
        log.warning(
            "%s: %d of %d preference pairs have chosen == rejected and teach nothing",
            where, identical, total,
        )  # fmt: skip


def check_rows(rows, eos_token_id: int | None, where: str) -> None:
    """A DataError when tokenized training rows hold no target token but the end-of-text one:
    every label masked (`labels`, or DPO's `chosen_labels`/`rejected_labels`). Rows without
    labels (GRPO's prompts) are not checked. Stops at the first row with something to learn."""
    from evsys.data.tokenize import IGNORE_INDEX  # imports transformers: rows are tokenized

    total = 0
    for row in rows:
        total += 1
        columns = [values for name, values in row.items() if name.endswith("labels")]
        if not columns:
            return
        if any(t != IGNORE_INDEX and t != eos_token_id for values in columns for t in values):
            return
    if total:
        raise DataError(
            f"{where}: no trainable tokens: after tokenization every label of all {total} "
            "training rows is masked or the end-of-text token"
        )


# ------------------------------------------------------------------------------------ tokenizer
def check_tokenizer_dir(directory: Path, key: str) -> None:
    """A ConfigError naming `key`, the directory and the files it lacks when a local model
    directory holds no tokenizer vocabulary (transformers would build an empty tokenizer)."""
    if not directory.is_dir() or any((directory / name).is_file() for name in VOCABULARY_FILES):
        return
    raise ConfigError(
        f"{key}: the directory {directory} has no tokenizer files (none of "
        f"{', '.join(VOCABULARY_FILES)}); save the tokenizer there "
        "(tokenizer.save_pretrained) or set model.tokenizer to one"
    )


def check_round_trip(tokenizer, key: str) -> None:
    """A ConfigError naming `key` when the tokenizer cannot encode and decode a sample text
    back to itself: it would train on wrong (or no) tokens."""
    ids = tokenizer(ROUND_TRIP_SAMPLE, add_special_tokens=False)["input_ids"]
    back = tokenizer.decode(ids, skip_special_tokens=True)
    if not ids or back.strip() != ROUND_TRIP_SAMPLE:
        raise ConfigError(
            f"{key}: the tokenizer cannot round-trip a sample text: {ROUND_TRIP_SAMPLE!r} -> "
            f"{len(ids)} token(s) -> {back!r}; check its files (vocabulary of {len(tokenizer)})"
        )
