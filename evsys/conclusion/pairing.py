"""Pairing by seed, decided from the design: which arms' same-numbered seeds make the same
initialisation and data order.

A run's `seed` drives its model's initialisation and its data order (evsys/config.py). Two arms
whose composed configs agree on everything that seed acts on — every `model.*` key (the
architecture, the weights it starts from: `name`, `init_from`, LoRA) and every `data.*` key
(the data, its own seed, mixtures, transforms), a continual chain, the parent of
`init_from=parent` — start seed s from the same weights and feed the same examples in the same
order: their seed-s runs are correlated, and pairing by seed removes what they share. Arms that
change any of those (a deeper model, other data, another starting point) draw an unrelated
initialisation or order from the same seed number: pairing them only halves the seed term's
degrees of freedom, so they are compared as independent seeds (unpaired, still paired by item).

The choice is made from the plan (each planned job's identity_config), never from the scores:
a choice made from the results would inflate the error (docs/statistics.md, "Pairing by seed").
Pure: dicts in, a mapping and words out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# What a seed acts on, as dotted key prefixes of identity_config (evsys/identity.py).
SEED_ACTS_ON = ("model.", "data.", "continual.", "parent_experiment_id")
# model.* keys that change how the model runs, not the weights it starts from
NOT_INIT = ("model.gradient_checkpointing", "model.attn_implementation")

SeedLinks = Mapping[str, "str | None"]  # arm -> what its seed acts on (None: not recorded)


def seed_inputs(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of one job's identity_config that its seed's initialisation and data order
    depend on."""
    return {k: v for k, v in identity.items() if k.startswith(SEED_ACTS_ON) and k not in NOT_INIT}


def seed_links(configs: Mapping[str, Mapping[str, Any] | None]) -> dict[str, str | None]:
    """Per arm, a key of what its seed acts on (equal keys: seed s makes the same
    initialisation and data order in both arms), from each arm's identity_config; None for an
    arm whose plan recorded none (an older sweep)."""
    return {
        arm: json.dumps(seed_inputs(config), sort_keys=True, default=str) if config else None
        for arm, config in configs.items()
    }


def paired_by_seed(links: bool | SeedLinks, first: str, second: str) -> bool:
    """Whether `first` and `second` are paired by seed: `links` is a plain yes/no, or the
    design's seed links (an arm not recorded pairs, as before the design was recorded)."""
    if isinstance(links, bool):
        return links
    a, b = links.get(first), links.get(second)
    return a is None or b is None or a == b


def all_linked(links: bool | SeedLinks, arms: list[str]) -> bool:
    """Whether every pair of `arms` is paired by seed (the seed pool needs it)."""
    return all(paired_by_seed(links, arms[0], other) for other in arms[1:])


def pairing_text(configs: Mapping[str, Mapping[str, Any] | None]) -> str:
    """How the comparisons are paired by seed and why, in one sentence for conclusion.md."""
    links = seed_links(configs)
    arms = sorted(configs)
    if any(links[a] is None for a in arms):
        return (
            "paired by seed where two arms ran the same seeds: the plan does not record what "
            "each arm's seed acts on (a sweep planned before evsys recorded it)"
        )
    groups: dict[str, list[str]] = {}
    for arm in arms:
        groups.setdefault(links[arm] or "", []).append(arm)
    if len(groups) == 1:
        return (
            "paired by seed: every arm's seed makes the same initialisation and data order "
            "(the arms share every model.* and data.* key; only what they sweep differs), so "
            "seed s of one arm is compared with seed s of another"
        )
    differ = _differing_keys([configs[a] or {} for a in arms])
    together = "; ".join(", ".join(g) for g in groups.values() if len(g) > 1)
    return (
        f"not paired by seed across arms that differ in {', '.join(differ)} (what their seed "
        "initialises or orders differs, so the same seed number links nothing): those are "
        "compared as independent seeds, still paired by item"
        + (f"; paired by seed within {together}" if together else "")
    )


def _differing_keys(configs: list[Mapping[str, Any]], limit: int = 4) -> list[str]:
    inputs = [seed_inputs(c) for c in configs]
    keys = sorted({k for x in inputs for k in x if len({repr(y.get(k)) for y in inputs}) > 1})
    return keys[:limit] + ([f"{len(keys) - limit} more"] if len(keys) > limit else [])
