"""One arm record as a researcher reads it: a few lines of text, or an HTML table in a
notebook (ArmResult's reprs), and the cell formatting evsys/result_tables.py shares. Imports
nothing of evsys, so evsys/records.py may use it."""

from __future__ import annotations

import html
from typing import Any, Protocol


class Record(Protocol):
    """What these views read of an ArmResult (evsys/records.py, which imports this module)."""

    arm: str
    seed: int
    status: str
    error: str | None
    metrics: dict[str, Any]
    dir: str | None


MAX_METRICS = 6  # metrics shown in an arm's repr
WIDTH = 100  # characters of free text kept in a repr line


def arm_repr(record: Record) -> str:
    """Two or three lines: which arm and seed, how it ended, its first metrics."""
    lines = [f"ArmResult {record.arm!r} seed {record.seed}: {record.status}"]
    if record.error:
        lines.append(f"  error: {short(record.error.splitlines()[0])}")
    if record.metrics:
        shown = list(record.metrics.items())[:MAX_METRICS]
        more = len(record.metrics) - len(shown)
        text = ", ".join(f"{name}={number(value)}" for name, value in shown)
        lines.append(f"  {text}" + (f" (and {more} more in .metrics)" if more else ""))
    if record.dir:
        lines.append(f"  dir: {record.dir}")
    return "\n".join(lines)


def arm_html(record: Record) -> str:
    title = f"<b>{html.escape(record.arm)}</b> seed {record.seed}: {html.escape(record.status)}"
    parts = [f"<p>{title}</p>"]
    if record.error:
        parts.append(f"<pre>{html.escape(record.error)}</pre>")
    rows = [[name, number(value)] for name, value in record.metrics.items()]
    if rows:
        parts.append(html_table(["metric", "value"], rows))
    return "\n".join(parts)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."
