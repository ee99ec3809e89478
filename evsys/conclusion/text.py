"""How numbers and user text read in the conclusion: 4 significant digits, intervals, seeds;
free text escaped for markdown."""

from __future__ import annotations

import json
import re
from typing import Any

from evsys.conclusion.model import Group

# Markdown that could start a link, an image, a code span or HTML in a line of user text; `\\`
# first, so the escapes added after it stay escapes.
MARKDOWN_ESCAPES = {
    "\\": "\\\\",
    "`": "\\`",
    "[": "\\[",
    "]": "\\]",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}


def num(x: float) -> str:
    return f"{x:.4g}"


def p_text(p: float | None) -> str:
    return "–" if p is None else f"{p:.2g}"


def interval(lo: float, hi: float) -> str:
    return f"[{num(lo)}, {num(hi)}]"


def value_std(mean: float, std: float | None) -> str:
    return num(mean) + (f" ± {num(std)}" if std is not None else "")


def mean_std(group: Group) -> str:
    return value_std(group.mean, group.std)


def ci_text(ci: list[float] | None) -> str:
    return interval(*ci) if ci else "–"


def seeds_text(values: dict[str, float]) -> str:
    return ", ".join(f"{seed}: {num(value)}" for seed, value in values.items())


def metadata_text(value: Any) -> str:
    """A metadata value as it reads (and as `evsys experiments --where` compares it): a string
    as it is, anything else as JSON (true, 3, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def code_span(text: str) -> str:
    """Literal text in markdown: one line, in a code span that its own backticks cannot close."""
    text = " ".join(text.split())
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall("`+", text)) + 1)  # longer than any run
    return f"{fence} {text} {fence}"


def user_text(text: str) -> str:
    """User text (a hypothesis, an error) as one markdown line that shows exactly as written:
    it cannot start a heading or a list (no line breaks), a link, a code span or HTML."""
    line = " ".join(str(text).split())
    for character, escape in MARKDOWN_ESCAPES.items():
        line = line.replace(character, escape)
    return line


def si(x: float) -> str:
    """A count with an SI prefix, 3 significant digits: 1.23M tokens, 4.56P FLOPs."""
    for power, prefix in ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if abs(x) >= 10**power:
            return f"{x / 10**power:.3g}{prefix}"
    return f"{x:.3g}"


def duration(seconds: float) -> str:
    """Seconds as they read: 42 s, 12 min, 3.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


COST_COLUMNS = ("wall", "device-h", "tokens", "FLOPs", "peak memory")


def cost_cells(cost: dict | None) -> list[str]:
    """An arm's cost (evsys/cost.py arm_total) as the cells of COST_COLUMNS."""
    if not cost:
        return ["–"] * len(COST_COLUMNS)
    gpu, rss = cost.get("peak_gpu_mb"), cost.get("peak_rss_mb")
    memory = f"{gpu:.0f} MiB GPU" if gpu is not None else f"{rss or 0:.0f} MiB RSS"
    return [
        duration(cost["wall_seconds"]),
        f"{cost['device_hours']:.3g}",
        si(cost["tokens"]),
        si(cost["flops"]),
        memory,
    ]
