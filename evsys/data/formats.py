"""Rows with any columns to the {"prompt", "completion"} examples the SFT path trains on.

Five layouts are understood, detected from the columns or named by `data.format`:

    prompt_completion   prompt + completion columns
    prompt_answer       prompt + answer (or reference) column; the answer is the completion
    chat                a `messages` column: [{role, content}, ...]; every assistant turn is
                        learned (`segments`), the last one is also the prompt/completion pair
    text                a `text` column; empty prompt, so the loss is on every token
    preference          prompt + chosen + rejected columns (TRL's preference format), as text
                        or as messages; the chosen answer is the completion and the rejected
                        one rides along as `rejected`, so SFT trains on the chosen answers

`data.columns` maps these canonical names to the source's own, e.g. {prompt: question}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evsys.choices import FORMATS
from evsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CANONICAL_COLUMNS = ("prompt", "completion", "answer", "messages", "text", "chosen", "rejected")
PREFERENCE = "preference"
ANSWER_COLUMNS = ("answer", "reference")  # accepted as the completion of prompt_answer data


@dataclass(frozen=True)
class ExampleFormat:
    """A data shape an algorithm declares itself (its `example_format`), beyond the built-in
    ones: the columns every row needs and how a row becomes an example. e.g. KTO's unpaired
    labelled rows: ExampleFormat("labelled", ("prompt", "completion", "label"), to_example).
    `data.columns` maps these column names to the source's, as for the built-in formats.
    `from_task`, where given, makes such rows from a built-in task (evsys/data/tasks.py)."""

    name: str
    columns: tuple[str, ...]
    to_example: Callable[[dict], dict]  # a row holding `columns` -> {"prompt", "completion", ...}
    # (task, split, n, seed) -> rows holding `columns`; None: built-in tasks cannot make them
    from_task: Callable[[Any, str, int, int], list[dict]] | None = None

    def __str__(self) -> str:  # part of the data cache key: task rows differ by from_task
        shape = f"{self.name}({','.join(self.columns)})"
        if self.from_task is None:
            return shape
        return f"{shape} from {self.from_task.__module__}.{self.from_task.__qualname__}"


def to_examples(
    rows: list[dict],
    fmt: str,
    columns: Mapping[str, str],
    where: str,
    tokenizer=None,
    required: str | None = None,
) -> list[dict]:
    """Each row as {"prompt": str, "completion": str}; `where` names the split in errors.

    `required` is the format an algorithm needs (`preference` for DPO): then data.format
    must be it or `auto`, and auto means that format, so a missing column is named.
    """
    present = sorted(rows[0]) if rows else []
    if isinstance(required, ExampleFormat):
        return _declared_examples(rows, required, columns, present, where)
    if required == "text" and fmt != "text":
        return _as_text(rows, fmt, columns, present, where, tokenizer)
    fmt = _required_format(fmt, required)
    fmt, source = resolve_columns(present, fmt, columns, where)
    convert = {"chat": _chat_example, PREFERENCE: _preference_example}.get(fmt, _plain_example)
    return [convert(row, i, source, where, tokenizer) for i, row in enumerate(rows)]


def _declared_examples(
    rows: list[dict], declared: ExampleFormat, columns: Mapping[str, str], present, where: str
) -> list[dict]:
    """Rows in an algorithm's own format: its columns (renamed by data.columns) converted."""
    source = {name: columns.get(name, name) for name in declared.columns}
    for name, column in source.items():
        if column not in present:
            mapped = f" (data.columns.{name})" if name in columns else ""
            raise DataError(
                f"{where}: column {column!r}{mapped} needed by format {declared.name!r} is "
                f"missing; columns present: {present}"
            )
    examples = []
    for index, row in enumerate(rows):
        try:
            examples.append(declared.to_example({n: row[c] for n, c in source.items()}))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{where}: row {index}: {type(error).__name__}: {error}") from None
    return examples


def _as_text(rows, fmt: str, columns, present, where: str, tokenizer) -> list[dict]:
    """Text for an algorithm that trains on every token (pretrain) from data in any format:
    prompt + completion as one text, a conversation as its rendered chat template."""
    fmt, source = resolve_columns(present, fmt, columns, where)
    if fmt == PREFERENCE:
        raise DataError(
            f"{where}: preference pairs (prompt+chosen+rejected) have two answers, so they are "
            "not one text to pretrain on; use algorithm=dpo, or point data.columns.text at "
            "the column to train on"
        )
    convert = {"chat": _chat_example}.get(fmt, _plain_example)
    texts = []
    for index, row in enumerate(rows):
        example = convert(row, index, source, where, tokenizer)
        segments = example.get("segments")
        text = "".join(s["text"] for s in segments) if segments else None
        texts.append(
            {"prompt": "", "completion": text or example["prompt"] + example["completion"]}
        )
    return texts


def _required_format(fmt: str, required: str | None) -> str:
    if required is None or fmt == required:
        return fmt
    if fmt != "auto":
        raise ConfigError(
            f"data.format={fmt!r}: this algorithm trains on {required!r} data; "
            f"set data.format={required} or auto"
        )
    return required


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
        PREFERENCE: ("prompt", "chosen", "rejected"),
    }[fmt]


def _detect(
    present: list[str], source: dict[str, str], columns: Mapping[str, str], where: str
) -> str:
    has = {name for name, column in source.items() if column in present}
    for fmt in ("chat", PREFERENCE, "prompt_completion", "prompt_answer", "text"):
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
        "prompt+completion, prompt+answer, messages, text or prompt+chosen+rejected "
        "(map yours with data.columns, "
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
    # prompt/completion is the last reply (what benchmarks score); `segments` trains on all.
    return {
        "prompt": render_chat_prompt(messages[:last], tokenizer),
        "completion": messages[last]["content"],
        "segments": chat_segments(messages[: last + 1], tokenizer),
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
    layout it was trained on; otherwise the default layout (see `_default_segments`).
    """
    if _has_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    segments = _default_segments([*messages, {"role": "assistant", "content": ""}], tokenizer)
    return "".join(segment["text"] for segment in segments[:-1])


def chat_segments(messages: list[dict], tokenizer=None) -> list[dict]:
    """The conversation as [{"text", "train"}]: every assistant reply is a `train` segment.

    With a chat template, reply k's segment is what rendering turns 0..k adds to rendering
    turns 0..k-1 with the generation cue, so it holds the reply and the template's own
    end-of-turn text. A template that re-renders earlier turns differently (some drop past
    reasoning) cannot be split this way: then only the last reply is trained, with a warning.
    """
    if not _has_template(tokenizer):
        return _default_segments(messages, tokenizer)
    segments, done = [], ""
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        cue = tokenizer.apply_chat_template(
            messages[:k], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(messages[: k + 1], tokenize=False)
        if not (cue.startswith(done) and full.startswith(cue)):
            _warn_unstable_template()
            prompt = render_chat_prompt(messages[:-1], tokenizer)
            return [_segment(prompt, False), _segment(messages[-1]["content"], True)]
        segments += [_segment(cue[len(done) :], False), _segment(full[len(cue) :], True)]
        done = full
    return segments


def _default_segments(messages: list[dict], tokenizer) -> list[dict]:
    """The default layout: `<|role|>` + newline + content + newline per turn, with the EOS
    token right after an assistant's content: reply + EOS is the target, so the model learns
    to stop."""
    eos = getattr(tokenizer, "eos_token", None) or ""
    segments = []
    for message in messages:
        cue = f"<|{message['role']}|>\n"
        if message["role"] == "assistant":
            segments += [_segment(cue, False), _segment(message["content"] + eos, True)]
            segments.append(_segment("\n", False))
        else:
            segments.append(_segment(cue + message["content"] + "\n", False))
    segments = _merge_context(segments)
    if segments and not segments[-1]["train"]:
        segments.pop()  # nothing after the last reply is learned
    return segments


def _segment(text: str, train: bool) -> dict:
    return {"text": text, "train": train}


def _merge_context(segments: list[dict]) -> list[dict]:
    merged: list[dict] = []
    for segment in segments:
        if merged and not merged[-1]["train"] and not segment["train"]:
            merged[-1] = _segment(merged[-1]["text"] + segment["text"], False)
        else:
            merged.append(segment)
    return merged


def _has_template(tokenizer) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


_warned: list[bool] = []


def _warn_unstable_template() -> None:
    if not _warned:
        _warned.append(True)
        log.warning(
            "the tokenizer's chat template renders earlier turns differently once a reply "
            "follows them, so only the last assistant reply of each conversation is trained"
        )


# ----------------------------------------------------------------------------------- preference
def _preference_example(row: dict, index: int, source: dict, where: str, tokenizer) -> dict:
    """{"prompt", "completion": the chosen answer, "rejected"}.

    Like TRL, each column is either text or messages: the prompt as the conversation so far,
    each answer as the assistant's turn (whose content is the answer).
    """
    prompt = row.get(source["prompt"])
    if isinstance(prompt, list):
        prompt = render_chat_prompt(_messages(prompt, index, source["prompt"], where), tokenizer)
    else:
        prompt = _text(row, source["prompt"], index, where)
    return {
        "prompt": prompt,
        "completion": _answer(row, source["chosen"], index, where),
        "rejected": _answer(row, source["rejected"], index, where),
    }


def _answer(row: dict, column: str, index: int, where: str) -> str:
    value = row.get(column)
    if not isinstance(value, list):
        return _text(row, column, index, where)
    messages = _messages(value, index, column, where)
    if messages[-1]["role"] != "assistant":
        raise DataError(
            f"{where}: row {index}, column {column!r}: the last turn is not assistant's"
        )
    return messages[-1]["content"]
