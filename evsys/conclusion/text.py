"""How numbers read in the conclusion: 4 significant digits, intervals, seeds."""

from __future__ import annotations

import json
from typing import Any

from evsys.conclusion.model import Group


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
    return f"`` {text} ``" if "`" in text else f"`{text}`"
