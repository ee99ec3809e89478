"""Where examples come from: `data.dataset_name` resolved to a list of example dicts.

The name is tried, in order, as (1) a built-in task, (2) an existing local path: a .jsonl,
.json, .csv, .parquet or .txt file, or a folder written by `save_to_disk` (or holding one such
file per split, e.g. train.jsonl + test.jsonl), (3) a Hugging Face hub id, which
`datasets.load_dataset` also finds offline in the local cache. See docs/data.md.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import asdict, is_dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from evsys.config import DataConfig
from evsys.data.degenerate import check_examples
from evsys.data.formats import PREFERENCE, ExampleFormat, to_examples
from evsys.data.tasks import TASKS, get_task, is_task
from evsys.data.transforms import Context, Step, resolve_steps, run_steps
from evsys.errors import ConfigError, DataError
from evsys.jsonl import numbered_rows

LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")
EVAL_SPLITS = ("validation", "test")  # tried in this order when data.eval_split is null


def load_split(
    data: DataConfig, split: str, tokenizer=None, required_format: str | None = None
) -> list[dict]:
    """Examples of one split ("train" or "eval") as {"prompt": str, "completion": str}.

    `tokenizer` renders chat data with its chat template and measures `filter_length` in
    tokens; without one (checking the source before the model loads) a default layout is used.
    `required_format` is the data format the algorithm needs (its `example_format`): with
    `preference`, examples also carry `rejected` and built-in tasks make near-miss pairs; an
    algorithm's own format (an ExampleFormat) makes task rows with its `from_task`.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    steps = resolve_steps(plain(data.transforms))
    ctx = Context(seed=data.seed, tokenizer=tokenizer)
    name = data.dataset_name
    if is_task(name):
        size = data.num_train if split == "train" else data.num_eval
        task = get_task(name)
        if required_format == PREFERENCE:
            rows = task.preference_examples(split, size, data.seed)
        elif isinstance(required_format, ExampleFormat) and required_format.from_task:
            rows = required_format.from_task(task, split, size, data.seed)
        else:
            rows = task.examples(split, size, data.seed)
        return _prepare(rows, steps, data, ctx, f"{name} [{split}]", required_format)
    splits = read_source(data)
    train_name, eval_name = split_names(data, list(splits))
    if eval_name is None:
        # No eval split in the source: hold out a seeded share of the prepared train split.
        where = f"{name} [{train_name}]"
        examples = _prepare(splits[train_name], steps, data, ctx, where, required_format)
        train, held_out = hold_out(examples, data.eval_fraction, data.seed)
        return train if split == "train" else held_out
    chosen = train_name if split == "train" else eval_name
    return _prepare(splits[chosen], steps, data, ctx, f"{name} [{chosen}]", required_format)


def _prepare(
    rows: list[dict],
    steps: list[Step],
    data,
    ctx: Context,
    where: str,
    required_format: str | None = None,
) -> list[dict]:
    """Column steps, then rows to examples, then the other steps, checked all the way."""
    if not rows:
        raise DataError(f"{where}: the split has no rows")
    column_steps = [step for step in steps if step.on_columns]
    rows = run_steps(column_steps, rows, ctx, where)
    mapped = plain(data.columns) or {}
    columns = {name: column for name, column in mapped.items() if column is not None}
    fmt = data.format
    examples = to_examples(rows, fmt, columns, where, ctx.tokenizer, required_format)
    examples = run_steps(steps[len(column_steps) :], examples, ctx, where)
    _check_examples(examples, where, required_format)
    check_examples(examples, where, preference=required_format == PREFERENCE)
    return examples


def _check_examples(examples: list[dict], where: str, required_format: str | None) -> None:
    # User functions may return anything; tokenization must get only text.
    columns = ("prompt", "completion")
    if required_format == PREFERENCE:
        columns += ("rejected",)
    for index, example in enumerate(examples):
        for column in columns:
            value = example.get(column) if isinstance(example, dict) else None
            if not isinstance(value, str):
                raise DataError(
                    f"{where}: after data.transforms, row {index}, column {column!r}: "
                    f"expected text, got {type(value).__name__}"
                )


def hold_out(examples: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, eval): a seeded `fraction` of the examples held out, the rest in order
    (`fraction` in (0, 1): data.eval_fraction's range, checked with the config)."""
    if len(examples) < 2:
        raise DataError(f"cannot hold out an eval share of {len(examples)} example(s)")
    count = min(len(examples) - 1, max(1, round(fraction * len(examples))))
    order = list(range(len(examples)))
    random.Random(f"hold_out/{seed}").shuffle(order)
    held = set(order[:count])
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [examples[i] for i in sorted(held)]


def split_names(data, available: list[str]) -> tuple[str, str | None]:
    """(train split, eval split or None when the eval set is to be held out of train)."""
    if data.train_split not in available:
        raise ConfigError(
            f"data.train_split={data.train_split!r} is not a split of "
            f"{data.dataset_name!r}; splits: {available}"
        )
    if data.eval_split is None:
        return data.train_split, next((s for s in EVAL_SPLITS if s in available), None)
    if data.eval_split not in available:
        raise ConfigError(
            f"data.eval_split={data.eval_split!r} is not a split of "
            f"{data.dataset_name!r}; splits: {available}"
        )
    return data.train_split, data.eval_split


def plain(value):
    """OmegaConf containers as plain lists and dicts (transform kwargs, column maps)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if is_dataclass(value):  # a DataConfig built in code rather than composed
        return asdict(value)
    return value


# -------------------------------------------------------------------------------------- reading
TEXT_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte-order mark (Excel, Notepad)
# One line of a .jsonl file (one example) at most, in characters: a longer line is refused, so
# a stray huge line cannot take planning's memory and time (docs/data.md).
MAX_LINE_CHARS = 16 * 2**20


def read_source(data) -> dict[str, list[dict]]:
    """Every split of a local path or hub dataset, as raw rows with the source's columns."""
    name = data.dataset_name
    path = Path(name).expanduser()
    if path.is_file():
        return {"train": read_file(path)}
    if path.is_dir():
        return read_folder(path)
    if path.suffix in LOCAL_SUFFIXES or name.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"data.dataset_name={name!r}: no such file or folder")
    return read_hub(name, data.config_name)


def read_file(path: Path) -> list[dict]:
    readers = {
        ".jsonl": _read_jsonl,
        ".json": _read_json,
        ".csv": _read_csv,
        ".parquet": _read_parquet,
        ".txt": _read_txt,
    }
    if path.suffix not in readers:
        raise ConfigError(
            f"data.dataset_name={str(path)!r}: cannot read {path.suffix or 'extensionless'} "
            f"files; use one of {', '.join(LOCAL_SUFFIXES)}"
        )
    try:
        return readers[path.suffix](path)
    except UnicodeDecodeError as error:
        raise DataError(_not_utf8(path, error)) from None


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """Where a text file stops being UTF-8: its line, or that it looks binary."""
    content = path.read_bytes()
    try:
        content.decode(TEXT_ENCODING)
    except UnicodeDecodeError as exact:  # offsets into the whole file, not a read buffer
        error = exact
    line = content[: error.start].count(b"\n") + 1
    kind = "binary content" if b"\x00" in content[:8192] else "text that is not UTF-8"
    return (
        f"{path}, line {line}: {kind} (byte {content[error.start : error.start + 1]!r} at offset "
        f"{error.start}); save the file as UTF-8 (a BOM is fine), or use .parquet for binary data"
    )


def _read_jsonl(path: Path) -> list[dict]:
    hint = (
        ", the limit of one example (evsys.data.sources.MAX_LINE_CHARS); split it into "
        "examples, or store long documents as .txt or .parquet"
    )
    rows = numbered_rows(path, TEXT_ENCODING, MAX_LINE_CHARS, hint)
    return [row for _, row in rows]


def _read_json(path: Path) -> list[dict]:
    """A list of objects; JSON Lines saved as .json are read as such."""
    try:
        content = json.loads(path.read_text(encoding=TEXT_ENCODING))
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # one object per line
            return _read_jsonl(path)
        raise DataError(f"{path}, line {error.lineno}: malformed JSON: {error.msg}") from None
    if not isinstance(content, list) or not all(isinstance(row, dict) for row in content):
        raise DataError(f"{path}: expected a list of JSON objects")
    return content


def _read_csv(path: Path) -> list[dict]:
    with path.open(encoding=TEXT_ENCODING, newline="") as lines:
        # A row with more fields than the header puts the extras under None: ignore them.
        return [{k: v for k, v in row.items() if k is not None} for row in csv.DictReader(lines)]


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable parquet file: {error}") from None


def _read_txt(path: Path) -> list[dict]:
    """One example per non-empty line, in the `text` format."""
    lines = path.read_text(encoding=TEXT_ENCODING).splitlines()
    return [{"text": line} for line in lines if line.strip()]


def read_folder(path: Path) -> dict[str, list[dict]]:
    """A `save_to_disk` folder, or a folder of one data file per split (train.jsonl, ...)."""
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        import datasets

        saved = datasets.load_from_disk(str(path))
        if isinstance(saved, datasets.Dataset):
            return {"train": saved.to_list()}
        return {split: dataset.to_list() for split, dataset in saved.items()}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in LOCAL_SUFFIXES)
    if not files:
        raise ConfigError(
            f"data.dataset_name={str(path)!r}: the folder holds neither a dataset saved with "
            f"save_to_disk nor data files ({', '.join(LOCAL_SUFFIXES)}), one per split"
        )
    return {file.stem: read_file(file) for file in files}


def read_hub(name: str, config_name: str | None) -> dict[str, list[dict]]:
    """Every split of a hub dataset; offline, `datasets` serves it from the local cache."""
    loaded = read_hub_datasets(name, config_name)
    return {split: dataset.to_list() for split, dataset in loaded.items()}


def read_hub_datasets(name: str, config_name: str | None) -> dict:
    """Every split of a hub dataset as a `datasets.Dataset` (memory-mapped, not yet read)."""
    import datasets

    try:
        return dict(datasets.load_dataset(name, config_name))
    except Exception as error:  # no network and no cache, a bad id, a bad config, ...
        raise ConfigError(
            f"data.dataset_name={name!r} is not a built-in task ({', '.join(sorted(TASKS))}), "
            f"not an existing local path, and could not be loaded from the Hugging Face hub "
            f"or its local cache: {type(error).__name__}: {error}"
        ) from error
