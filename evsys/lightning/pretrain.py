"""Pretraining (continued): next-token cross entropy on every token of plain text.

The data are plain text (a `text` column, a .txt file, or data.columns.text); data in another
format are rendered as text and trained on whole: prompt + completion as one document, a chat
conversation through its template (evsys/data/formats.py). Documents are cut into max_length
pieces rather than truncated, so no text is thrown away, and the pieces are packed into
training rows; a piece never attends to another one.
"""

from __future__ import annotations

from evsys.data.packing import chunk_token_rows, pack_token_rows
from evsys.data.tokenize import tokenize_rows
from evsys.lightning.sft import SFTModule

NO_LIMIT = 1 << 30  # documents are cut into pieces below, never truncated


class PretrainModule(SFTModule):
    """Causal language modelling: the loss of every token given everything before it.

    The training step is SFT's; only the rows differ (every token is a target)."""

    example_format = "text"  # other formats arrive rendered as text (formats._as_text)

    @classmethod
    def build_rows(cls, examples, tokenizer, cfg, split: str):
        # Text examples have an empty prompt, so every token (and the closing EOS) is a target.
        documents = tokenize_rows(examples, tokenizer, NO_LIMIT, cfg.data.num_proc)
        pieces = chunk_token_rows(documents, cfg.data.max_length)
        if split == "train" and cfg.data.packing:
            return pack_token_rows(
                pieces, cfg.data.max_length, cfg.data.packing_window, cfg.data.packing_strategy
            )
        return pieces
