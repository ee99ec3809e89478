"""How numbers, methods and user text read in the conclusion: 4 significant digits,
intervals, seeds, the statistics' method codes in words; free text escaped for markdown."""

from __future__ import annotations

import json
import re
from typing import Any

from evsys.conclusion.model import Group, PowerRow
from evsys.plural import count

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


# evsys.conclusion.inference's method codes (conclusion.json keeps the codes)
METHOD_WORDS = {
    "paired_seeds_items": "paired by seed and by item",
    "paired_pooled_seeds_items": "paired by seed and by item, seed variance pooled over the arms",
    "unpaired_seeds_items": (
        "paired by item, not by seed (the arms ran different seeds, or seeds that do not make "
        "the same initialisation and data order)"
    ),
    "welch_seed_means": "Welch's t-test on seed means (item sampling not counted)",
    "seeds_items": "over seeds and items",
    "wilson_seeds_items": "Wilson's interval over seeds and items (a 0/1 share on few items)",
}


def method_text(method: str | None) -> str:
    """A method code in words (an unknown code as it is)."""
    return METHOD_WORDS.get(method or "", method or "–")


def power_texts(rows: list[PowerRow]) -> list[str]:
    """Each power row as a sentence: the minimum detectable effect with how uncertain it is
    (the variance behind it comes from a few seeds), and the seeds a target needs."""
    lines = []
    for row in rows:
        if row.mde == 0:
            line = (
                f"{row.comparison}: no spread between seeds or items was seen, so the effect "
                f"it could detect is unknown ({count(row.n_seeds, 'seed')})"
            )
        else:
            spread = ""
            if row.mde_low is not None and row.mde_high is not None:
                spread = (
                    f" (95% range {num(row.mde_low)} to {num(row.mde_high)}: the variance it "
                    f"rests on is estimated from these seeds)"
                    if row.mde_high > row.mde_low * (1 + 1e-6)
                    else " (the seeds varied less than their items' noise: it rests on that "
                    "noise, known from the items)"
                )
            line = (
                f"{row.comparison}: detects about {num(row.mde)} at 80% power with "
                f"{count(row.n_seeds, 'seed')}{spread}"
            )
        if row.target is not None:
            line += (
                f"; an effect of {num(row.target)} needs {count(row.seeds_needed, 'seed')} per arm"
                if row.seeds_needed
                else f"; no number of seeds detects {num(row.target)} (score more items)"
            )
        lines.append(line)
    return lines
