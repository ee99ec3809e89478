"""Data: the byte tokenizer, built-in tasks, tokenization and packing.

Names are imported on first use: `evsys.data.tasks` is pure Python and read while a config is
validated, so `import evsys.data` must not load torch (packing) or transformers (tokenize).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "collate_packed": "evsys.data.packing",
    "collate_padded": "evsys.data.packing",
    "pack_examples": "evsys.data.packing",
    "TASKS": "evsys.data.tasks",
    "Task": "evsys.data.tasks",
    "get_task": "evsys.data.tasks",
    "is_task": "evsys.data.tasks",
    "IGNORE_INDEX": "evsys.data.tokenize",
    "tokenize_examples": "evsys.data.tokenize",
    "byte_tokenizer": "evsys.data.tokenizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evsys.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
