"""The keys of a JSON file checked against the dataclass it is read into (a plan, a planned
job, an arm record): a hand-edited or garbled file (metrics as a string, a job without `arm`,
`seed: "zero"`) is one line naming the file and the key, never a traceback further on.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any


def checked_fields(cls: type, raw: Any, where: str) -> dict[str, Any]:
    """The entries of `raw` that are fields of the dataclass `cls`, each of its field's type
    (top level: a dict is a dict, whatever it holds); ValueError naming `where` and the key
    when one is missing or of another type."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object, not {_shown(raw)}")
    known = {}
    for name, allowed in _field_types(cls).items():
        if name not in raw:
            if name in _required(cls):
                raise ValueError(f"{where} has no {name!r}")
            continue
        value = raw[name]
        if not _is_one_of(value, allowed):
            kinds = " or ".join(_name(kind) for kind in allowed)
            raise ValueError(f"{where}: {name!r} must be {kinds}, not {_shown(value)}")
        known[name] = value
    return known


NAMES = {
    type(None): "null", dict: "an object", list: "a list", str: "a string", int: "an integer",
    float: "a number", bool: "true or false",
}  # fmt: skip


@cache
def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    return {name: _classes(hint) for name, hint in typing.get_type_hints(cls).items()}


@cache
def _required(cls: type) -> frozenset[str]:
    import dataclasses

    missing = dataclasses.MISSING
    return frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is missing and f.default_factory is missing
    )


def _classes(hint: Any) -> tuple[type, ...]:
    """The classes a value of type `hint` may have: `dict[str, float] | None` -> (dict, None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(kind for arg in typing.get_args(hint) for kind in _classes(arg))
    if hint is Any:
        return (object,)
    if hint is float:
        return (float, int)
    return (origin or hint,)


def _is_one_of(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in allowed and object not in allowed:
        return False  # JSON true is no seed and no count
    return isinstance(value, allowed)


def _name(kind: type) -> str:
    return NAMES.get(kind, kind.__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
