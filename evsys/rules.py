"""The allowed values of a schema field, declared once on the field, and the one check that
reads them.

A field of evsys/config.py that takes one of a few values is declared with `one_of`, a numeric
field with a range with `at_least`, `above` or `within`; `check_fields` walks a config merged
into its schemas and rejects every value outside them, and every nan or inf number, naming the
full key and what is allowed.
A field of free text (a hypothesis, notes) is declared with `free_text`.
The lists of values are in evsys/choices.py; code that dispatches on a value imports its list
from there (or reads a field's with `choices_of`), never keeps one of its own. No torch, no
evsys imports beyond errors: config.py builds its fields from this.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from evsys.errors import ConfigError

CHOICES = "choices"  # the field metadata key of allowed values
RANGE = "range"  # the field metadata key of a Range
FREE_TEXT = "free_text"  # the field metadata key of literal text (evsys/free_text.py)


@dataclass(frozen=True)
class Range:
    """low <= value (or low < value when low_open), value < high when high is set."""

    low: float
    low_open: bool = False
    high: float | None = None
    why: str = ""  # what the bound means, shown in the error

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        above_low = value > self.low if self.low_open else value >= self.low
        return above_low and (self.high is None or value < self.high)

    def text(self) -> str:
        if self.high is not None:
            rule = f"must be in {'(' if self.low_open else '['}{self.low:g}, {self.high:g})"
        elif self.low_open:
            rule = "must be positive" if self.low == 0 else f"must be > {self.low:g}"
        else:
            rule = f"must be >= {self.low:g}"
        return f"{rule} ({self.why})" if self.why else rule


# ------------------------------------------------------------------------------ field makers
def one_of(default: Any, choices: tuple[str, ...]) -> Any:
    """A field whose value is one of `choices` (or None, when its type allows None)."""
    return dataclasses.field(default=default, metadata={CHOICES: tuple(choices)})


def at_least(default: Any, low: float, why: str = "") -> Any:
    """A number >= low (or None, when its type allows None)."""
    return dataclasses.field(default=default, metadata={RANGE: Range(low, why=why)})


def above(default: Any, low: float, why: str = "") -> Any:
    """A number > low."""
    return dataclasses.field(default=default, metadata={RANGE: Range(low, True, why=why)})


def within(default: Any, low: float, high: float, why: str = "", low_open: bool = False) -> Any:
    """A number in [low, high), or in (low, high) when low_open."""
    bounds = Range(low, low_open, high=high, why=why)
    return dataclasses.field(default=default, metadata={RANGE: bounds})


def free_text(
    default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING
) -> Any:
    """Free text (or a container of it): read literally, `${...}` in it never resolved
    (evsys/free_text.py)."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={FREE_TEXT: True}
    )


def choices_of(schema: type, name: str) -> tuple[str, ...]:
    """The allowed values of field `name` of the dataclass `schema`."""
    return rules_of(schema, name)[CHOICES]


# ------------------------------------------------------------------------------------ the check
def check_fields(node: DictConfig, where: str = "", given: Any = None) -> None:
    """Every field of `node` (merged into its dataclass schema) and of the schemas nested in it
    within its choices and range; a ConfigError names the first that is not, as `where` + key.
    `given`: the values as a file wrote them (before the schema made 1 into 1.0), for the
    message. Missing values and interpolations that do not resolve are left to the caller."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return
    given = given if isinstance(given, dict) else {}
    for item in dataclasses.fields(schema):
        if item.name not in node:
            continue
        key, written = f"{where}{item.name}", given.get(item.name)
        value = OmegaConf.select(node, item.name, default=None, throw_on_resolution_failure=False)
        if isinstance(value, DictConfig):
            check_fields(value, f"{key}.", written)
        elif isinstance(value, ListConfig):
            for index, element in enumerate(value):
                if isinstance(element, DictConfig):
                    mine = written[index] if isinstance(written, list) else None
                    check_fields(element, f"{key}[{index}].", mine)
        elif value is not None:
            check_value(key, value, rules_of(schema, item.name), written)


def check_field(config: DictConfig, key: str) -> None:
    """Field `key` (dotted) of `config`, merged into its schemas, within its choices and range:
    check_fields' check of one field, for a config of which only that value changed (a plan's
    patched job, evsys/sweep/patched_jobs.py)."""
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(config, parent_key) if parent_key else config
    schema = OmegaConf.get_type(parent)
    value = OmegaConf.select(config, key, default=None)
    if dataclasses.is_dataclass(schema) and value is not None:
        check_value(key, value, rules_of(schema, name))


def rules_of(schema: type, name: str) -> dict:
    """The choices and range of field `name`: its own, or, where a subclass redeclares the
    field with a plain default (GRPOConfig's lr), those of the class that declared them."""
    for cls in schema.__mro__:
        declared = getattr(cls, "__dataclass_fields__", {}).get(name)
        if declared is not None and (CHOICES in declared.metadata or RANGE in declared.metadata):
            return dict(declared.metadata)
    return {}


def check_value(key: str, value: Any, metadata: Any, written: Any = None) -> None:
    """`value` of `key` within the choices and range of its field's metadata (shown as
    `written` when given)."""
    choices = metadata.get(CHOICES)
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}{hint}")
    bounds = metadata.get(RANGE)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and not math.isfinite(value):  # nan and inf pass no range and train no model
        shown = value if written is None else written
        raise ConfigError(f"{key}={shown} must be a finite number")
    if bounds is not None and number and not bounds.holds(value):
        shown = value if written is None else written
        raise ConfigError(f"{key}={shown} {bounds.text()}")


def fields_with_rules(schema: type, where: str = "") -> list[tuple[str, dict]]:
    """(dotted key, rules) of every field with choices or a range, in `schema` and the
    dataclass defaults nested in it: the table the generic check reads, for tests and docs."""
    found = []
    for item in dataclasses.fields(schema):
        key = f"{where}{item.name}"
        if rules_of(schema, item.name):
            found.append((key, rules_of(schema, item.name)))
        if item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
            if dataclasses.is_dataclass(default):
                found += fields_with_rules(type(default), f"{key}.")
    return found
