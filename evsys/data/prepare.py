"""An arm's data, ready before any model is built: every source checked, then each split
read through the tokenization cache (a mixture's eval split is the union of its parts).
`check_fits` lets a sweep's plan refuse data too long for data.max_length before any arm
trains."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from evsys.config import DataConfig
from evsys.data import cache, mixture
from evsys.data.sources import load_split, plain
from evsys.data.tasks import is_task
from evsys.data.tokenize import refuse_if_none_kept, tokenize_batch
from evsys.data.transforms import resolve_steps

FIT_BATCH = 256  # examples tokenized at a time until one fits: usually the first batch
CHARS_PER_TOKEN = 32  # more characters per token than any tokenizer packs on average


def check_source(data: DataConfig, required_format: str | None = None) -> None:
    """Fail fast, before any model is built, when the dataset cannot be resolved or read."""
    if mixture.is_mixture(data):
        mixture.check(data, lambda component: check_source(component, required_format))
        return
    if is_task(data.dataset_name):
        resolve_steps(plain(data.transforms))  # the task itself cannot fail; its steps can
        return
    if cache.checked_before(data, required_format):
        return  # the same config over the same bytes passed this check before
    load_split(data, "train", required_format=required_format)
    load_split(data, "eval", required_format=required_format)
    cache.mark_checked(data, required_format)


def cached_splits(
    data, tokenizer, required_format: str | None = None
) -> tuple[cache.CachedExamples, cache.CachedExamples, dict[str, cache.CachedExamples]]:
    """(train, eval, eval by dataset name) through the cache; a mixture's eval is the union."""
    entry = cache.entry_dir(data, tokenizer, required_format)

    def loader(split: str) -> Callable[[DictConfig], list[dict]]:
        return lambda config: load_split(config, split, tokenizer, required_format)

    if not mixture.is_mixture(data):
        train = cache.CachedExamples(entry, "train", lambda: loader("train")(data))
        held = cache.CachedExamples(entry, "eval", lambda: loader("eval")(data))
        return train, held, {data.dataset_name: held}
    train = cache.CachedExamples(entry, "train", lambda: mixture.load_train(data, loader("train")))
    parts = {
        config.dataset_name: cache.CachedExamples(
            entry,
            f"eval-{index}",
            lambda c=config, label=label: mixture.named(label, loader("eval"), c),
        )
        for index, (label, config, _) in enumerate(mixture.components(data))
    }
    union = cache.CachedExamples(
        entry, "eval", lambda: [ex for part in parts.values() for ex in part.examples()]
    )
    return train, union, parts


def check_fits(data, tokenizer, required_format: str | None = None) -> None:
    """A DataError when no example of a split keeps a target token within data.max_length, the
    rule tokenization drops examples by (tokenize_batch). Stops at the first batch with one
    that fits, so it costs a tokenized batch, not the data set; the examples it reads are
    those the arm trains on, through the same cache."""
    train, held_out, _ = cached_splits(data, tokenizer, required_format)
    for examples in (train.examples(), held_out.examples()):
        _refuse_if_none_fit(examples, tokenizer, data.max_length)


def check_task_fits(data: DataConfig, tokenizer) -> None:
    """check_fits for a built-in task, read directly: its examples are made, not loaded, and
    caching them here would store a second copy beside the arm's own (tokenized) entry."""
    for split in ("train", "eval"):
        _refuse_if_none_fit(load_split(data, split, tokenizer), tokenizer, data.max_length)


def _refuse_if_none_fit(examples: list[dict], tokenizer, max_length: int) -> None:
    # A prompt of more than CHARS_PER_TOKEN * max_length characters cannot plausibly fit: such
    # examples are tokenized (at the cost of their length in memory) only if no other fits.
    bound = CHARS_PER_TOKEN * max_length
    plausible = [example for example in examples if len(example["prompt"]) <= bound]
    unlikely = [example for example in examples if len(example["prompt"]) > bound]
    if not (
        _some_fits(plausible, tokenizer, max_length) or _some_fits(unlikely, tokenizer, max_length)
    ):
        refuse_if_none_kept(len(examples), 0, max_length)


def _some_fits(examples: list[dict], tokenizer, max_length: int) -> bool:
    for start in range(0, len(examples), FIT_BATCH):
        batch = examples[start : start + FIT_BATCH]
        columns = {
            "prompt": [ex["prompt"] for ex in batch],
            "completion": [ex["completion"] for ex in batch],
            "segments": [ex.get("segments") for ex in batch],
        }
        if tokenize_batch(columns, tokenizer, max_length)["labels"]:
            return True
    return False
