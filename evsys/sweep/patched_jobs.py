"""Jobs that differ from a checked job only in some values (the cells of a matrix over values):
each is checked on a copy of that job's validated config with its own values set, not merged
into its schemas and resolved again, so a plan of 1,000 distinct cells costs milliseconds each.

A value is set this way only where the result is the config composing the job alone gives: a
plain `key=value` override of a leaf the checked job overrode too, with a number, a bool, null
or a string without `${` (so free text reads the same), that no interpolation of the config or
its schema reads, and not a key that picks the schema or what the identity adds
(algorithm.kind, model.init_from, experiment.*), in a job that is not continual. The schema's
typed node converts the value as the merge would; its field's rules, the rules between keys
and the plan's own checks run on the result. Any other job, and any job a check refuses (so
its error is the one composing it alone gives), is composed and validated in full.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf

from evsys.rules import check_field
from evsys.validate import check_between_keys, run_schema

# Keys whose value picks the schema, or adds keys to the identity (evsys/identity.py _trained).
NOT_SET = ("algorithm.kind", "model.init_from")
NOT_SET_UNDER = ("experiment.",)
NAMES = re.compile(r"[\w.]+")  # the names an interpolation may read (and more: conservative)


@dataclass
class Template:
    """A checked job: its value overrides, its validated config (a copy, set per patched job),
    its identity config and whether it reads no seed (shared_checks.Composed); `settable`, the
    keys a patched job may give another value."""

    values: list[Override]
    config: DictConfig
    identity_config: dict[str, Any]
    seed_free: bool
    settable: set[str]


class PatchedJobs:
    """One plan's checked jobs, by their config-group overrides and value-override keys."""

    def __init__(self) -> None:
        self.templates: dict[tuple, Template] = {}

    def learn(
        self, defaults: tuple[str, ...], values: list[Override], base: DictConfig, merged, known
    ) -> None:
        """A fully checked job (`known`: its shared_checks.Composed) as the template of the
        jobs that set the same keys; `base`: its composed defaults."""
        key = _structure(defaults, values)
        if key in self.templates:
            return
        reads = _read_names(base, merged.algorithm.kind, values)
        continual = merged.experiment.continual.datasets is not None
        settable = set() if continual else {o.key_or_group for o in values if _may_set(o, reads)}
        self.templates[key] = Template(
            values, copy.deepcopy(merged), known.identity_config, known.seed_free, settable
        )

    def patched(
        self, defaults: tuple[str, ...], values: list[Override], check: Callable
    ) -> tuple[DictConfig, dict[str, Any], bool] | None:
        """The job's validated config (its template's, shared: copy it to keep it), identity
        config and whether it reads no seed, or None where it must be composed in full. Its
        values are plain (no interpolation): it reads a seed where its template does."""
        template = self.templates.get(_structure(defaults, values))
        if template is None or not _only_settable_differ(template, values):
            return None
        config = template.config
        try:  # any refusal: composed in full, which raises the error composing alone gives
            for override in values:
                if override.key_or_group in template.settable:
                    OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
                    check_field(config, override.key_or_group)
            check_between_keys(config)
            check(config)
        except Exception:  # noqa: BLE001 - the full composition reports it
            return None
        identity = dict(template.identity_config)
        for key in template.settable & identity.keys():
            identity[key] = OmegaConf.select(config, key)
        return config, identity, template.seed_free


def _structure(defaults: tuple[str, ...], values: list[Override]) -> tuple:
    return defaults, tuple((o.type, o.key_or_group, o.package) for o in values)


def _only_settable_differ(template: Template, values: list[Override]) -> bool:
    for mine, checked in zip(values, template.values, strict=True):
        if mine.input_line != checked.input_line and (
            mine.key_or_group not in template.settable or not _plain(mine.value())
        ):
            return False
    return True


def _plain(value: Any) -> bool:
    """A value the typed node converts alone: no container, no interpolation."""
    if isinstance(value, str):
        return "${" not in value
    return value is None or isinstance(value, (bool, int, float))


def _may_set(override: Override, reads: Callable[[str], bool]) -> bool:
    key = override.key_or_group
    return (
        override.type == OverrideType.CHANGE
        and _plain(override.value())
        and key not in NOT_SET
        and not key.startswith(NOT_SET_UNDER)
        and not reads(key)
    )


def _read_names(base: DictConfig, kind: str, values: list[Override]) -> Callable[[str], bool]:
    """Whether an interpolation of the job's config (its composed defaults, its schema, its
    overrides) may read a key: it names the key's last part or a node above it."""
    texts = [o.input_line for o in values]
    for node in (base, run_schema(kind)):
        texts += _strings(OmegaConf.to_container(node, resolve=False))
    names = {name for text in texts if "${" in text for name in NAMES.findall(text)}
    parts = [[p for p in name.split(".") if p] for name in names]

    def reads(key: str) -> bool:
        leaf = key.rsplit(".", 1)[-1]
        return any(
            not named or leaf in named or key.startswith(".".join(named) + ".") for named in parts
        )

    return reads


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    return []
