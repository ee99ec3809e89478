"""`data.mixture`: several datasets, each with its own settings and transforms, mixed by weight.

Training: each component loads its own train split exactly as a lone dataset would. The mix
has N examples: all components' together, or with data.mixture_size=first as many as the
first component alone. Component i gets round(N * w_i / sum w) of them (largest remainder, so
the counts add up to N). A component with fewer examples than its share is repeated whole and
topped up with a seeded sample; one with more is subsampled (seeded by data.seed). The
training stream then shuffles the mix.

Eval: each component keeps its own eval split, not re-weighted. The validation loss is on
their union; each one is also a benchmark under its dataset_name.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from evsys.config import DataConfig, DatasetConfig
from evsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DATASET_FIELDS = tuple(DatasetConfig.__dataclass_fields__)  # what a component sets itself
SHARED_FIELDS = ("max_length", "packing", "num_workers", "cache", "cache_dir", "num_proc")


def is_mixture(data) -> bool:
    return getattr(data, "mixture", None) is not None


def components(data) -> list[tuple[str, DictConfig, float]]:
    """(label for errors, a full data config, weight) for each entry of data.mixture."""
    entries = data.mixture
    if len(entries) == 0:
        raise ConfigError(
            "data.mixture is empty: list at least one dataset, or leave it null (the default) "
            "to train on data.dataset_name"
        )
    out, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"data.mixture[{index}]"
        if OmegaConf.is_missing(entry, "dataset_name") or not entry.dataset_name:
            raise ConfigError(f"{where}.dataset_name is missing: name the component's dataset")
        if entry.dataset_name in seen:
            raise ConfigError(
                f"{where}.dataset_name={entry.dataset_name!r} appears twice in data.mixture; "
                "merge the two entries (a component's eval split is named by its dataset)"
            )
        seen.add(entry.dataset_name)
        fields = {name: entry[name] for name in DATASET_FIELDS}
        fields["seed"] = data.seed if entry.seed is None else entry.seed
        fields.update({name: data[name] for name in SHARED_FIELDS})
        config = OmegaConf.merge(OmegaConf.structured(DataConfig), fields)
        out.append((f"{where} ({entry.dataset_name})", config, float(entry.weight)))
    return out


def dataset_names(data) -> list[str]:
    """The datasets an arm trains on: the one dataset, or every component of the mixture."""
    if not is_mixture(data):
        return [data.dataset_name]
    return [entry.dataset_name for entry in data.mixture]


def mix_size(data, sizes: list[int]) -> int:
    """Examples in the training mix (data.mixture_size): every component's, or the first's."""
    return sizes[0] if data.mixture_size == "first" else sum(sizes)


def mixture_counts(sizes: list[int], weights: list[float], total: int | None = None) -> list[int]:
    """Examples drawn from each component: proportional to the weights, summing to `total`
    (None: sum(sizes))."""
    total = sum(sizes) if total is None else total
    weight_sum = sum(weights)
    exact = [total * weight / weight_sum for weight in weights]
    counts = [int(share) for share in exact]
    # Largest remainder: the examples left after rounding down go to the largest fractions.
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def sample(examples: list[dict], count: int, seed: int, index: int) -> list[dict]:
    """`count` examples: whole repeats of the list, then a seeded sample in source order."""
    whole, rest = divmod(count, len(examples))
    picked = sorted(random.Random(f"mixture/{seed}/{index}").sample(range(len(examples)), rest))
    return examples * whole + [examples[i] for i in picked]


def load_train(data, load: Callable[[DictConfig], list[dict]]) -> list[dict]:
    """The training mix; `load(config)` gives one component's train examples."""
    parts = components(data)
    loaded = [named(label, load, config) for label, config, _ in parts]
    sizes = [len(x) for x in loaded]
    total = mix_size(data, sizes)
    counts = mixture_counts(sizes, [weight for _, _, weight in parts], total)
    mixed = []
    for index, (examples, count) in enumerate(zip(loaded, counts, strict=True)):
        mixed += sample(examples, count, data.seed, index)
    rule = "every component's" if data.mixture_size == "all" else f"as many as {parts[0][0]}"
    log.info(
        "data.mixture (data.mixture_size=%s: %d examples, %s): %s",
        data.mixture_size,
        total,
        rule,
        ", ".join(
            f"{label}: {count} of {len(x)} examples"
            for (label, _, _), x, count in zip(parts, loaded, counts, strict=True)
        ),
    )
    return mixed


def check(data, check_one: Callable[[DictConfig], None]) -> None:
    """Every component checked (before the model loads), errors naming the component."""
    for label, config, _ in components(data):
        named(label, check_one, config)


def named(label: str, fn: Callable, config: DictConfig):
    try:
        return fn(config)
    except (ConfigError, DataError) as error:
        raise type(error)(f"{label}: {error}") from None
