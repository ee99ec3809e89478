"""JSON Lines files read with their line numbers, so that an error can name the row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from evsys.errors import DataError


def numbered_rows(
    path: Path, encoding: str = "utf-8", max_line_chars: int | None = None, too_long: str = ""
) -> list[tuple[int, dict]]:
    """(line number from 1, object) of every non-blank line of `path`; a line that is not a
    JSON object is a DataError naming the file and line, and so is one longer than
    `max_line_chars` (refused before it is read whole; `too_long` says what to do instead)."""
    rows = []
    with Path(path).open(encoding=encoding) as lines:
        for number, line in enumerate(_bounded_lines(lines, max_line_chars), start=1):
            if line is None:
                raise DataError(
                    f"{path}, line {number}: longer than {max_line_chars:,} characters{too_long}"
                )
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}, line {number}: malformed JSON: {error.msg}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object")
            rows.append((number, row))
    return rows


def _bounded_lines(lines: TextIO, max_chars: int | None) -> Iterator[str | None]:
    """The file's lines, each read at most max_chars (+1) at a time; None for a longer one,
    so reading stays bounded in memory."""
    if max_chars is None:
        yield from lines
        return
    while line := lines.readline(max_chars + 1):
        yield None if len(line) > max_chars and not line.endswith("\n") else line
