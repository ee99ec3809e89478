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
    """The dotted keys of the free-text fields of `schema` and the schemas nested in it."""
    keys = []
    for item in dataclasses.fields(schema):
        if item.metadata.get(FREE_TEXT):
            keys.append(f"{where}{item.name}")
        elif dataclasses.is_dataclass(item.default_factory):
            keys += free_text_keys(item.default_factory, f"{where}{item.name}.")
    return keys


def literal(cfg: DictConfig) -> DictConfig:
    """`cfg` with its free-text fields (RunConfig's) escaped in place, read as written."""
    for key in FREE_TEXT_KEYS:
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, DictConfig) or name not in parent:
            continue
        raw = OmegaConf.to_container(parent, resolve=False)[name]
        if raw != (value := escaped(raw)):
            with read_write(parent), open_dict(parent):
                parent[name] = value
    return cfg


def as_written(overrides: ListConfig) -> list[str]:
    """Hydra's recorded overrides (hydra.overrides.task) as the user wrote them: read through
    OmegaConf, `experiment.hypothesis=${oc.env:X}` would come back with X's value in it."""
    return [str(item) for item in OmegaConf.to_container(overrides, resolve=False)]


FREE_TEXT_KEYS = free_text_keys(RunConfig)  # experiment.name, experiment.hypothesis, ..., tags
