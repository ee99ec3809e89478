"""Data: the byte tokenizer, built-in tasks, tokenization and packing."""

from evsys.data.packing import (
    collate_packed,
    collate_padded,
    count_real_tokens,
    count_target_tokens,
    pack_examples,
)
from evsys.data.tasks import TASKS, Task, get_task, is_task
from evsys.data.tokenize import IGNORE_INDEX, tokenize_examples
from evsys.data.tokenizer import byte_tokenizer

__all__ = [
    "IGNORE_INDEX",
    "TASKS",
    "Task",
    "byte_tokenizer",
    "collate_packed",
    "collate_padded",
    "count_real_tokens",
    "count_target_tokens",
    "get_task",
    "is_task",
    "pack_examples",
    "tokenize_examples",
]
