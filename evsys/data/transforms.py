"""`data.transforms`: an ordered list of steps applied to each split of a dataset.

A step is a name ("dedupe") or a mapping {name: take, n: 100}; a name with a colon is a user
function, {name: my_pkg.my_module:my_fn, **kwargs}, called as my_fn(examples, **kwargs) on the
{"prompt", "completion"} examples and returning new ones.

Column steps (rename, template) read the source's own columns, so they come first; the rows
then become prompt/completion examples, on which every other step runs.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evsys.errors import ConfigError, DataError


@dataclass
class Step:
    """One resolved entry of data.transforms."""

    label: str  # how errors name it: "data.transforms[2] (take)"
    name: str
    fn: Callable[..., list[dict]]
    kwargs: dict[str, Any]
    on_columns: bool  # True: runs on source rows, before they become examples


@dataclass
class Context:
    """What steps may need besides their own arguments."""

    seed: int
    tokenizer: Any = None  # None while only checking the source (before the model loads)


# ---------------------------------------------------------------------------------- the steps
def shuffle(examples: list[dict], ctx: Context, seed: int | None = None) -> list[dict]:
    """A seeded permutation (data.seed unless `seed` is given)."""
    shuffled = list(examples)
    random.Random(f"shuffle/{ctx.seed if seed is None else seed}").shuffle(shuffled)
    return shuffled


def take(examples: list[dict], ctx: Context, n: int) -> list[dict]:
    """The first n examples."""
    if not isinstance(n, int) or n < 0:
        raise ConfigError(f"take: n must be a non-negative integer, got {n!r}")
    return examples[:n]


def dedupe(examples: list[dict], ctx: Context) -> list[dict]:
    """Drop repeats of the same (prompt, completion), keeping the first."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for example in examples:
        key = (example["prompt"], example["completion"])
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept


def filter_length(
    examples: list[dict],
    ctx: Context,
    min: int = 0,  # noqa: A002 - the user-facing argument names
    max: int | None = None,  # noqa: A002
    unit: str = "chars",
) -> list[dict]:
    """Keep examples whose prompt + completion length is within [min, max] chars or tokens."""
    if unit not in ("chars", "tokens"):
        raise ConfigError(f"filter_length: unit must be 'chars' or 'tokens', got {unit!r}")
    if unit == "tokens" and ctx.tokenizer is None:
        return examples  # only checking the source; prepare() filters with the real tokenizer
    lengths = _lengths(examples, unit, ctx.tokenizer)
    upper = float("inf") if max is None else max
    return [ex for ex, length in zip(examples, lengths, strict=True) if min <= length <= upper]


def _lengths(examples: list[dict], unit: str, tokenizer) -> list[int]:
    texts = [ex["prompt"] + ex["completion"] for ex in examples]
    if unit == "chars":
        return [len(text) for text in texts]
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
    return [len(ids) for ids in encoded["input_ids"]]


def rename(rows: list[dict], ctx: Context, **mapping: str) -> list[dict]:
    """Rename source columns, old=new: {name: rename, question: prompt}."""
    return [{mapping.get(key, key): value for key, value in row.items()} for row in rows]


def template(rows: list[dict], ctx: Context, **formats: str) -> list[dict]:
    """Set columns from format strings over the row: {name: template, prompt: "Q: {q}\\nA:"}."""
    out = []
    for index, row in enumerate(rows):
        new = dict(row)
        for column, fmt in formats.items():
            try:
                new[column] = fmt.format(**row)
            except KeyError as missing:
                raise DataError(
                    f"template for {column!r}: row {index} has no column {missing}; "
                    f"columns present: {sorted(row)}"
                ) from None
            except (ValueError, IndexError) as error:  # e.g. a lone brace or a positional {}
                raise ConfigError(f"template for {column!r}: bad format string: {error}") from None
        out.append(new)
    return out


COLUMN_STEPS = {"rename": rename, "template": template}
EXAMPLE_STEPS = {
    "shuffle": shuffle,
    "take": take,
    "dedupe": dedupe,
    "filter_length": filter_length,
}
REGISTRY = {**COLUMN_STEPS, **EXAMPLE_STEPS}


# ----------------------------------------------------------------------------- resolve and run
def resolve_steps(specs: list) -> list[Step]:
    """data.transforms as Steps; an unknown name or a misplaced column step is a ConfigError."""
    steps = [_resolve(spec, i) for i, spec in enumerate(specs)]
    first = next((i for i, step in enumerate(steps) if not step.on_columns), len(steps))
    misplaced = next((step for step in steps[first:] if step.on_columns), None)
    if misplaced:
        raise ConfigError(
            f"{misplaced.label} works on source columns, so it must come before "
            f"{steps[first].label}"
        )
    return steps


def _resolve(spec, index: int) -> Step:
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
    else:
        raise ConfigError(
            f"data.transforms[{index}] must be a name or a mapping with a 'name' key, got {spec!r}"
        )
    label = f"data.transforms[{index}] ({name})"
    if ":" in name:
        return Step(label, name, _user_function(name, label), kwargs, on_columns=False)
    if name not in REGISTRY:
        raise ConfigError(
            f"{label}: unknown transform; known: {', '.join(sorted(REGISTRY))}, "
            "or a user function as my_pkg.my_module:my_fn"
        )
    return Step(label, name, REGISTRY[name], kwargs, on_columns=name in COLUMN_STEPS)


def _user_function(path: str, label: str) -> Callable[..., list[dict]]:
    module_name, _, attribute = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{label}: cannot import {path!r}: {error}") from None

    def call(examples: list[dict], ctx: Context, **kwargs) -> list[dict]:
        return fn(examples, **kwargs)

    return call


def run_steps(steps: list[Step], rows: list[dict], ctx: Context, where: str) -> list[dict]:
    """Apply steps in order; a step that leaves nothing is named in the error."""
    for step in steps:
        try:
            rows = step.fn(rows, ctx, **step.kwargs)
        except TypeError as error:  # a wrong or missing argument in the step's mapping
            raise ConfigError(f"{step.label}: {error}") from None
        if not isinstance(rows, list):
            raise DataError(f"{step.label} returned {type(rows).__name__}, not a list")
        if not rows:
            raise DataError(f"{where}: {step.label} left no examples")
    return rows
