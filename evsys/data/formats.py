"""Rows with any columns to the {"prompt", "completion"} examples the SFT path trains on.

Four layouts are understood, detected from the columns or named by `data.format`:

    prompt_completion   prompt + completion columns
    prompt_answer       prompt + answer (or reference) column; the answer is the completion
    chat                a `messages` column: [{role, content}, ...]; the last assistant turn is
                        the completion, everything before it (rendered) is the prompt
    text                a `text` column; empty prompt, so the loss is on every token

`data.columns` maps these canonical names to the source's own, e.g. {prompt: question}.
"""

from __future__ import annotations

from collections.abc import Mapping

from evsys.config import ConfigError

FORMATS = ("auto", "prompt_completion", "prompt_answer", "chat", "text")
CANONICAL_COLUMNS = ("prompt", "completion", "answer", "messages", "text")
ANSWER_COLUMNS = ("answer", "reference")  # accepted as the completion of prompt_answer data


class DataError(ValueError):
    """The data (not the config) is wrong: the message says where and what."""


def to_examples(
    rows: list[dict], fmt: str, columns: Mapping[str, str], where: str, tokenizer=None
) -> list[dict]:
    """Each row as {"prompt": str, "completion": str}; `where` names the split in errors."""
    present = sorted(rows[0]) if rows else []
    fmt, source = resolve_columns(present, fmt, columns, where)
    convert = _chat_example if fmt == "chat" else _plain_example
    return [convert(row, i, source, where, tokenizer) for i, row in enumerate(rows)]


def resolve_columns(
    present: list[str], fmt: str, columns: Mapping[str, str], where: str
) -> tuple[str, dict[str, str]]:
    """The format and, for each canonical column it needs, the source column to read."""
    if fmt not in FORMATS:
        raise ConfigError(f"data.format={fmt!r} is not one of {', '.join(FORMATS)}")
    unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
    if unknown:
        raise ConfigError(
            f"data.columns has unknown keys {unknown}; known: {', '.join(CANONICAL_COLUMNS)}"
        )
    # Canonical name -> source column: the mapping where given, else the name itself.
    source = {name: columns.get(name, name) for name in CANONICAL_COLUMNS}
    if "answer" not in columns:
        source["answer"] = next((c for c in ANSWER_COLUMNS if c in present), "answer")
    if fmt == "auto":
        fmt = _detect(present, source, columns, where)
    needed = _needed_columns(fmt)
    for name in needed:
        if source[name] not in present:
            mapped = f" (data.columns.{name})" if name in columns else ""
            raise DataError(
                f"{where}: column {source[name]!r}{mapped} needed by format {fmt!r} is missing; "
                f"columns present: {present}"
            )
    return fmt, {name: source[name] for name in needed}


def _needed_columns(fmt: str) -> tuple[str, ...]:
    return {
        "prompt_completion": ("prompt", "completion"),
        "prompt_answer": ("prompt", "answer"),
        "chat": ("messages",),
        "text": ("text",),
    }[fmt]


def _detect(
    present: list[str], source: dict[str, str], columns: Mapping[str, str], where: str
) -> str:
    has = {name for name, column in source.items() if column in present}
    for fmt in ("chat", "prompt_completion", "prompt_answer", "text"):
        if set(_needed_columns(fmt)) <= has:
            return fmt
    for name, column in columns.items():  # a mapping the user wrote is the likeliest culprit
        if column not in present:
            raise DataError(
                f"{where}: column {column!r} (data.columns.{name}) is missing; "
                f"columns present: {present}"
            )
    raise DataError(
        f"{where}: cannot tell the data format from columns {present}; expected "
        "prompt+completion, prompt+answer, messages or text (map yours with data.columns, "
        "e.g. data.columns={prompt: question, completion: answer})"
    )


def _plain_example(row: dict, index: int, source: dict, where: str, tokenizer) -> dict:
    if "text" in source:
        return {"prompt": "", "completion": _text(row, source["text"], index, where)}
    completion_column = source.get("completion") or source["answer"]
    return {
        "prompt": _text(row, source["prompt"], index, where),
        "completion": _text(row, completion_column, index, where),
    }


def _text(row: dict, column: str, index: int, where: str) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise DataError(
            f"{where}: row {index}, column {column!r}: expected text, "
            f"got {type(value).__name__} {_preview(value)}"
        )
    return value


def _preview(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------------------- chat
def _chat_example(row: dict, index: int, source: dict, where: str, tokenizer) -> dict:
    column = source["messages"]
    messages = _messages(row.get(column), index, column, where)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise DataError(f"{where}: row {index}, column {column!r}: no assistant turn to learn")
    # Only the final assistant turn is the target; earlier ones are context (see docs/data.md).
    return {
        "prompt": render_chat_prompt(messages[:last], tokenizer),
        "completion": messages[last]["content"],
    }


def _messages(value, index: int, column: str, where: str) -> list[dict]:
    def bad(why: str) -> DataError:
        return DataError(f"{where}: row {index}, column {column!r}: {why}")

    if not isinstance(value, list) or not value:
        raise bad(f"expected a non-empty list of {{role, content}}, got {_preview(value)}")
    for turn, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise bad(f"turn {turn} is not a {{role, content}} mapping: {_preview(message)}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise bad(f"turn {turn}: {key!r} must be text, got {_preview(message.get(key))}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def render_chat_prompt(messages: list[dict], tokenizer=None) -> str:
    """The conversation so far plus the cue for the assistant's reply, as one string.

    The tokenizer's own chat template is used when it has one, so a chat model sees the
    layout it was trained on; otherwise a plain role-tag layout.
    """
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
    return turns + "<|assistant|>\n"
