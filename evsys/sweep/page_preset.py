"""The concept page's experiment file written as the equivalent experiment preset.

After this translation both forms run the one path: the preset is composed by Hydra, planned
by evsys/sweep/plan.py (matrix axes x named arms x seeds), launched and concluded alike.

    page                                   preset (# @package _global_)
    name, hypothesis, n_repeats, ...       experiment.name, experiment.hypothesis, ...
    run: <RunConfig>                       the RunConfig's settings at the top level; one arm
    runs: [{name: a, ...}, {name: b, ...}] settings all runs share at the top level;
                                           experiment.arms.<name>: each run's own, dotted
    matrix: {base, axes}                   base at the top level; hydra.sweeper.params: axes
    algorithm.kind: dpo                    defaults: [override /algorithm: dpo] (or algorithm=dpo)
    continual: {datasets, replay}          experiment.continual
    output_dir / stores                    hydra.sweep.dir / experiment.stores, data.cache_dir
    prediction: {better, than}             experiment.prediction
"""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import OmegaConf

from evsys.sweep.page_checks import KIND
from evsys.sweep.page_format import Page
from evsys.sweep.plan import _override_value as override_value  # the plan's own grammar

HEADER = "# @package _global_\n"


def preset_of(page: Page) -> dict[str, Any]:
    """The preset equivalent to the page: the same arms, seeds and overrides once planned."""
    flats = {name: flatten(tree) for name, tree in page.runs.items()}
    shared = _shared(list(flats.values()))
    preset: dict[str, Any] = {}
    if KIND in shared:
        preset["defaults"] = [{"override /algorithm": shared[KIND]}]
    experiment = copy.deepcopy(page.experiment)
    experiment["arms"] = {
        name: {_override_key(key): value for key, value in flat.items() if key not in shared}
        for name, flat in flats.items()
        if name
    }
    preset["experiment"] = experiment
    preset.update(unflatten({key: value for key, value in shared.items() if key != KIND}))
    if page.cache_dir is not None:
        preset.setdefault("data", {}).setdefault("cache_dir", page.cache_dir)
    hydra: dict[str, Any] = {}
    if page.output_dir:
        hydra["sweep"] = {"dir": str(page.output_dir)}
    if page.axes:
        params = {_override_key(path): _sweep(values) for path, values in page.axes.items()}
        hydra["sweeper"] = {"params": params}
    if hydra:
        preset["hydra"] = hydra
    return preset


def preset_yaml(page: Page, source: str = "") -> str:
    """The preset as the text of a conf/experiment/<name>.yaml file."""
    note = f"# Written by evsys from the experiment file {source}\n" if source else ""
    return HEADER + note + OmegaConf.to_yaml(OmegaConf.create(preset_of(page)))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted paths to leaves (lists and empty mappings are leaves)."""
    pairs: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            pairs.update(flatten(value, f"{path}."))
        elif not (isinstance(value, dict) and not value):  # an empty mapping sets nothing
            pairs[path] = value
    return pairs


def unflatten(pairs: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in pairs.items():
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return tree


def _shared(flats: list[dict[str, Any]]) -> dict[str, Any]:
    """The settings every run has, with the same value: they move to the preset's top level,
    so each arm's overrides are only what makes it differ (as a preset author writes them)."""
    first, *others = flats
    return {
        key: value
        for key, value in first.items()
        if all(key in other and other[key] == value for other in others)
    }


def _override_key(path: str) -> str:
    """algorithm.kind is a group option: `algorithm=dpo` picks conf/algorithm/dpo.yaml."""
    return "algorithm" if path == KIND else path


def _sweep(values: list[Any]) -> str:
    return ",".join(override_value(value) for value in values)
