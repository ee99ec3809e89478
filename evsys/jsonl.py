"""JSON Lines files read with their line numbers, so that an error can name the row."""

from __future__ import annotations

import json
from pathlib import Path

from evsys.errors import DataError


def numbered_rows(path: Path, encoding: str = "utf-8") -> list[tuple[int, dict]]:
    """(line number from 1, object) of every non-blank line of `path`; a line that is not a
    JSON object is a DataError naming the file and line."""
    rows = []
    with Path(path).open(encoding=encoding) as lines:
        for number, line in enumerate(lines, start=1):
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
