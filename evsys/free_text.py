"""Free text is literal: `${...}` in a hypothesis, metadata, tags or a name is never resolved.

OmegaConf resolves `${...}` in every string of a config, so a hypothesis `${oc.env:HF_TOKEN}`
would write the token into experiment.json, the records, TensorBoard and the registry, and
`${HOME}` would fail with a long traceback. The schema marks its free-text fields with
`free_text` (evsys/rules.py); `literal` escapes every live `${` in them as OmegaConf's own
escape `\\${`, whichever way the text came (a preset, a page file, a command line override).
It runs where a composed config enters evsys: Hydra's callbacks before any dir is made, the
plan's master config, and `validate_run_config` for every job. An escape already written is
left as it is, so `literal` may run on a config more than once and the text stays the same.
Names (experiment.name, arm) are literal too; a `$` is no name character (check_names).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from evsys.config import RunConfig
from evsys.rules import FREE_TEXT

# `${` after an even number of backslashes (none included): an interpolation OmegaConf resolves
LIVE_INTERPOLATION = re.compile(r"(?<!\\)((?:\\\\)*)\$\{")


def escaped(value: Any) -> Any:
    """`value` with every live `${` escaped, in every string of a nested list or mapping."""
    if isinstance(value, str):
        return LIVE_INTERPOLATION.sub(lambda match: match.group(1) + "\\${", value)
    if isinstance(value, dict):
        return {key: escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escaped(item) for item in value]
    return value


def free_text_keys(schema: type, where: str = "") -> list[str]:
    """The dotted keys of the free-text fields of `schema` and the schemas nested in it, also
    those that may be None or a list of them (`[]` marks each element of a list)."""
    keys, types = [], typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        if item.metadata.get(FREE_TEXT):
            keys.append(f"{where}{item.name}")
        elif nested := _nested_schema(types[item.name]):
            inner, is_list = nested
            keys += free_text_keys(inner, f"{where}{item.name}{'[]' if is_list else ''}.")
    return keys


def _nested_schema(hint: Any) -> tuple[type, bool] | None:
    """The dataclass a field of type `hint` holds (`X`, `X | None`, `list[X] | None`) and
    whether it is a list of them; None for any other type."""
    options = [option for option in typing.get_args(hint) if option is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(options) == 1:
        hint = options[0]
    if typing.get_origin(hint) is list:
        inner = typing.get_args(hint)[0]
        return (inner, True) if dataclasses.is_dataclass(inner) else None
    return (hint, False) if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def literal(cfg: DictConfig) -> DictConfig:
    """`cfg` with its free-text fields (RunConfig's) escaped in place, read as written."""
    for key in FREE_TEXT_KEYS:
        for parent, name in _holders(cfg, key):
            raw = OmegaConf.to_container(parent, resolve=False)[name]
            if raw != (value := escaped(raw)):
                with read_write(parent), open_dict(parent):
                    parent[name] = value
    return cfg


def _holders(cfg: DictConfig, key: str) -> list[tuple[DictConfig, str]]:
    """The nodes of `cfg` that hold field `key` (one per list element below a `[]`), with the
    field's name: those that exist."""
    path, _, name = key.rpartition(".")
    nodes: list[Any] = [cfg]
    for part in path.split(".") if path else []:
        step, each = part.removesuffix("[]"), part.endswith("[]")
        nodes = [node[step] for node in nodes if isinstance(node, DictConfig) and step in node]
        if each:
            nodes = [item for node in nodes if isinstance(node, ListConfig) for item in node]
    return [(node, name) for node in nodes if isinstance(node, DictConfig) and name in node]


def as_written(overrides: ListConfig) -> list[str]:
    """Hydra's recorded overrides (hydra.overrides.task) as the user wrote them: read through
    OmegaConf, `experiment.hypothesis=${oc.env:X}` would come back with X's value in it."""
    return [str(item) for item in OmegaConf.to_container(overrides, resolve=False)]


FREE_TEXT_KEYS = free_text_keys(
    RunConfig
)  # experiment.name, ..., experiment.continual.datasets[].name
