"""A number with its noun, singular or plural as the number says: "1 arm", "3 arms"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n noun` in the right number; `plural` when it is not the noun plus "s"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
