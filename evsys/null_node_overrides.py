"""A dict override of a schema node whose default is null, like
`experiment.prediction={better: a, than: b}`, works as the same value in a preset does.

OmegaConf 2.3 (the Hydra 1.3 line) crashes merging a dict into a null structured node (an
AttributeError deep in its merge; 2.4 merges it). Hydra applies every override, from the command
line, a sweep or `compose`, through one function; this wraps it so that such a node first gets
an empty value of its type, into which the dict then merges, on both lines. So does a key below
a null node (`experiment.prediction.better=a`), which neither line merges on its own.
"""

from __future__ import annotations

from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

_hydra_apply = ConfigLoaderImpl._apply_overrides_to_config


def install() -> None:
    """Make Hydra apply overrides through `apply_overrides` (idempotent)."""
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_overrides)


def apply_overrides(overrides: list[Override], cfg: DictConfig) -> None:
    """Hydra's own application, one override at a time: an earlier one may set a node null."""
    for override in overrides:
        if override.package is None and not override.is_delete():
            _prepare(override, cfg)
        _hydra_apply([override], cfg)


def _prepare(override: Override, cfg: DictConfig) -> None:
    """Give an empty value of its type to each null mapping the override sets a key below,
    or sets to a dict."""
    parts = override.key_or_group.split(".")
    depth = len(parts) if isinstance(override.value(), dict) else len(parts) - 1
    for key in (".".join(parts[:end]) for end in range(1, depth + 1)):
        node = _null_mapping(cfg, key)
        if node is not None:
            node_type = node._metadata.ref_type
            empty = {} if node_type is Any else OmegaConf.structured(node_type)
            OmegaConf.update(cfg, key, empty, merge=False)


def _null_mapping(cfg: DictConfig, key: str) -> DictConfig | None:
    """The node at `key` if it is a mapping (a structured config, a dict) whose value is null."""
    parent_key, _, last = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, throw_on_missing=False) if parent_key else cfg
    if not isinstance(parent, DictConfig) or parent._is_none() or last not in parent:
        return None
    node = parent._get_node(last)
    return node if isinstance(node, DictConfig) and node._is_none() else None
