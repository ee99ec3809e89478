"""Where examples come from: `data.dataset_name` resolved to a list of example dicts."""

from __future__ import annotations

from evsys.config import ConfigError, DataConfig
from evsys.data.tasks import TASKS, get_task, is_task


def load_split(data: DataConfig, split: str) -> list[dict]:
    """Examples of one split ("train" or "eval") of the configured dataset."""
    if is_task(data.dataset_name):
        size = data.num_train if split == "train" else data.num_eval
        return get_task(data.dataset_name).examples(split, size, data.seed)
    raise ConfigError(
        f"data.dataset_name={data.dataset_name!r} is not a built-in task "
        f"({', '.join(sorted(TASKS))}) nor a dataset evsys can find"
    )


def check_source(data: DataConfig) -> None:
    """Fail fast, before any model is built, when the dataset cannot be resolved."""
    if not is_task(data.dataset_name):
        load_split(data, "eval")
