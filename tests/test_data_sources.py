"""Data sources: local files and folders, the offline hub cache, formats, splits, transforms,
and bad data reported as a clear error rather than a stack trace."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from evsys import compose_run_config, run_experiment
from evsys.config import DataConfig
from evsys.data.prepare import check_source
from evsys.data.sources import load_split
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError, DataError
from tests.conftest import FAST

ROWS = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(20)]


def data_config(dataset_name, **fields) -> DataConfig:
    """cfg.data as the runner sees it: a structured OmegaConf node."""
    schema = OmegaConf.structured(DataConfig)
    return OmegaConf.merge(schema, {"dataset_name": str(dataset_name), **fields})


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def both_splits(data, tokenizer=None) -> tuple[list[dict], list[dict]]:
    return load_split(data, "train", tokenizer), load_split(data, "eval", tokenizer)


# ------------------------------------------------------------------------------- local formats
def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def _write_saved_dataset(path: Path, rows: list[dict]) -> None:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))


WRITERS = {
    "data.jsonl": write_jsonl,
    "data.json": lambda path, rows: path.write_text(json.dumps(rows), encoding="utf-8"),
    "data.csv": _write_csv,
    "data.parquet": _write_parquet,
    "saved": _write_saved_dataset,
}


@pytest.mark.parametrize("filename", sorted(WRITERS))
def test_local_format_loads_with_held_out_eval(tmp_path, filename):
    path = tmp_path / filename
    WRITERS[filename](path, ROWS)
    train, held_out = both_splits(data_config(path))
    assert len(train) == 18 and len(held_out) == 2  # eval_fraction 0.1
    assert sorted(train + held_out, key=lambda ex: int(ex["completion"])) == ROWS
    # Seeded by data.seed: the same share again, another one for another seed.
    assert load_split(data_config(path), "eval") == held_out
    other = [load_split(data_config(path, seed=s), "eval") for s in range(1, 4)]
    assert any(split != held_out for split in other)


def test_txt_file_is_one_text_example_per_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(f"line {i}" for i in range(10)) + "\n\n", encoding="utf-8")
    train, held_out = both_splits(data_config(path))
    assert len(train) == 9 and len(held_out) == 1
    assert all(ex["prompt"] == "" and ex["completion"].startswith("line ") for ex in train)


def test_saved_dataset_dict_uses_its_test_split(tmp_path):
    import datasets

    splits = {"train": ROWS[:15], "test": ROWS[15:]}
    datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    ).save_to_disk(str(tmp_path / "saved"))
    train, test = both_splits(data_config(tmp_path / "saved"))
    assert train == ROWS[:15] and test == ROWS[15:]


def test_folder_of_split_files_and_split_names(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS[:10])
    write_jsonl(tmp_path / "validation.jsonl", ROWS[10:12])
    write_jsonl(tmp_path / "test.jsonl", ROWS[12:])
    assert both_splits(data_config(tmp_path)) == (ROWS[:10], ROWS[10:12])  # validation first
    swapped = data_config(tmp_path, train_split="test", eval_split="train")
    assert both_splits(swapped) == (ROWS[12:], ROWS[:10])
    with pytest.raises(ConfigError, match=r"data.eval_split='dev'.*\['test', 'train', 'valid"):
        load_split(data_config(tmp_path, eval_split="dev"), "eval")
    with pytest.raises(ConfigError, match=r"data.train_split='all'"):
        load_split(data_config(tmp_path, train_split="all"), "train")


# ------------------------------------------------------------------------------ other formats
CHAT = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Say {i}"},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "Now?"},
            {"role": "assistant", "content": str(i)},
        ]
    }
    for i in range(10)
]


def test_chat_messages_train_on_the_last_assistant_turn(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    train, _ = both_splits(data_config(path))
    example = next(ex for ex in train if ex["completion"] == "3")
    assert example["prompt"] == (
        "<|system|>\nBe brief.\n<|user|>\nSay 3\n<|assistant|>\nSure.\n"
        "<|user|>\nNow?\n<|assistant|>\n"
    )


def test_chat_uses_the_tokenizer_chat_template(tmp_path):
    tokenizer = byte_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    path = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    train = load_split(data_config(path), "train", tokenizer)
    example = next(ex for ex in train if ex["completion"] == "3")
    assert example["prompt"] == (
        "[system] Be brief. [user] Say 3 [assistant] Sure. [user] Now? [assistant] "
    )


def test_text_answer_and_column_mapping(tmp_path):
    text = write_jsonl(tmp_path / "text.jsonl", [{"text": f"doc {i}"} for i in range(10)])
    assert load_split(data_config(text), "train")[0] == {"prompt": "", "completion": "doc 0"}
    qa = [{"question": f"q{i}", "reference": f"a{i}", "id": i} for i in range(10)]
    path = write_jsonl(tmp_path / "qa.jsonl", qa)
    mapped = data_config(path, columns={"prompt": "question"})
    assert load_split(mapped, "train")[0] == {"prompt": "q0", "completion": "a0"}
    explicit = data_config(path, format="text", columns={"text": "question"})
    assert load_split(explicit, "train")[0] == {"prompt": "", "completion": "q0"}


def test_column_names_are_checked_by_the_config_schema():
    cfg = compose_run_config(["data.columns.prompt=question", "data.format=prompt_answer"])
    assert cfg.data.columns.prompt == "question" and cfg.data.columns.completion is None
    with pytest.raises(Exception, match=r"data\.columns\.promt"):
        compose_run_config(["data.columns.promt=question"])


# ---------------------------------------------------------------------------------- transforms
def double(examples: list[dict], suffix: str = "") -> list[dict]:
    """A user transform, referenced as tests.test_data_sources:double."""
    return [*examples, *({**ex, "prompt": ex["prompt"] + suffix} for ex in examples)]


def test_transform_chain(tmp_path):
    rows = [{"q": f"{i % 10}", "a": "x" * (i % 10)} for i in range(40)]  # 4 copies of each
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    transforms = [
        {"name": "template", "prompt": "Q: {q}\nA:"},
        {"name": "rename", "a": "completion"},
        "dedupe",
        {"name": "filter_length", "min": 7, "max": 12},  # "Q: d\nA:" is 7 characters
        {"name": "tests.test_data_sources:double", "suffix": "!"},
        "shuffle",
        {"name": "take", "n": 6},
    ]
    data = data_config(path, transforms=transforms, eval_split=None, eval_fraction=0.5)
    train, held_out = both_splits(data)
    everything = train + held_out
    assert len(train) == 3 and len(held_out) == 3
    assert all(len(ex["prompt"] + ex["completion"]) <= 13 for ex in everything)
    assert all(ex["prompt"].startswith("Q: ") for ex in everything)
    assert everything != sorted(everything, key=lambda ex: ex["prompt"])  # shuffled
    # The same config gives the same data.
    assert both_splits(data) == (train, held_out)


def test_filter_length_in_tokens_needs_the_tokenizer(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    data = data_config(path, transforms=[{"name": "filter_length", "max": 5, "unit": "tokens"}])
    check_source(data)  # no tokenizer yet: checked, not filtered
    train = load_split(data, "train", byte_tokenizer())
    assert train and all(len(ex["prompt"] + ex["completion"]) <= 5 for ex in train)


def test_transforms_apply_to_built_in_tasks():
    data = data_config("addition", transforms=[{"name": "take", "n": 5}])
    assert len(load_split(data, "train")) == 5 and len(load_split(data, "eval")) == 5


def test_unknown_or_misplaced_transform_is_a_config_error(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    with pytest.raises(ConfigError, match=r"transforms\[1\] \(shufle\).*dedupe, filter_length"):
        check_source(data_config(path, transforms=["dedupe", "shufle"]))
    with pytest.raises(ConfigError, match=r"transforms\[0\] \(shufle\)"):
        check_source(data_config("addition", transforms=["shufle"]))
    with pytest.raises(ConfigError, match=r"\(rename\) works on source columns.*\(take\)"):
        check_source(data_config(path, transforms=[{"name": "take", "n": 2}, "rename"]))
    with pytest.raises(ConfigError, match=r"cannot import 'tests.nowhere:fn'"):
        check_source(data_config(path, transforms=[{"name": "tests.nowhere:fn"}]))
    with pytest.raises(ConfigError, match=r"transforms\[0\] \(take\).*'count'"):
        check_source(data_config(path, transforms=[{"name": "take", "count": 2}]))


# ------------------------------------------------------------------------------ hub, offline
def _cache_hub_dataset(cache: Path, repo_id: str, splits: dict[str, list[dict]]) -> None:
    """Lay out `cache` as `load_dataset(repo_id)` leaves it after an online download."""
    from datasets.packaged_modules.json.json import Json

    namespace, name = repo_id.split("/")
    files = {
        split: str(write_jsonl(cache / f"{split}.jsonl", rows)) for split, rows in splits.items()
    }
    builder = Json(
        cache_dir=str(cache),
        dataset_name=f"{namespace}___{name}",
        config_name="default",
        data_files=files,
        hash="0123456789abcdef",
    )
    builder.download_and_prepare()
    # A hub download is stored under the config's plain name, with files named after the repo.
    built = Path(builder.cache_dir)
    for arrow in built.glob("*.arrow"):
        arrow.rename(built / arrow.name.replace(f"{namespace}___", ""))
    built.parents[1].rename(built.parents[2] / "default")


@pytest.fixture
def offline_hub_cache(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    cache = tmp_path / "hf_datasets"
    cache.mkdir()
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def test_hub_id_loads_offline_from_the_local_cache(offline_hub_cache):
    _cache_hub_dataset(offline_hub_cache, "evsys-test/tiny", {"train": ROWS, "test": ROWS[:3]})
    data = data_config("evsys-test/tiny")
    check_source(data)
    assert both_splits(data) == (ROWS, ROWS[:3])


def test_hub_id_neither_online_nor_cached_is_a_config_error(offline_hub_cache):
    with pytest.raises(ConfigError, match=r"data.dataset_name='nobody/nothing' is not a built-in"):
        check_source(data_config("nobody/nothing"))
    with pytest.raises(ConfigError, match=r"'./missing.jsonl': no such file"):
        check_source(data_config("./missing.jsonl"))


# ------------------------------------------------------------------------------------ bad data
def test_malformed_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS[:3])
    path.write_text(path.read_text() + '{"prompt": "x", "completion": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"data.jsonl, line 4: malformed JSON"):
        check_source(data_config(path))
    broken = tmp_path / "data.json"
    broken.write_text('[\n{"prompt": "a", "completion": "b"},\n{"prompt": }\n]')
    with pytest.raises(DataError, match=r"data.json, line 3: malformed JSON"):
        check_source(data_config(broken))


def test_missing_column_names_it_and_lists_present(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"question": "a", "solution": "b"}] * 4)
    with pytest.raises(DataError, match=r"cannot tell the data format.*\['question', 'solution'"):
        check_source(data_config(path))
    mapped = data_config(path, columns={"prompt": "question", "completion": "answer"})
    with pytest.raises(
        DataError, match=r"column 'answer' \(data.columns.completion\).*\['question', 'solution'"
    ):
        check_source(mapped)


def test_transform_that_empties_the_dataset_is_named(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    data = data_config(path, transforms=["dedupe", {"name": "filter_length", "min": 1000}])
    with pytest.raises(DataError, match=r"transforms\[1\] \(filter_length\) left no examples"):
        check_source(data)


def test_non_string_value_names_row_and_column(tmp_path):
    rows = [*ROWS[:5], {"prompt": "5+1=", "completion": 6}]
    with pytest.raises(DataError, match=r"row 5, column 'completion': expected text, got int"):
        check_source(data_config(write_jsonl(tmp_path / "data.jsonl", rows)))
    chat = [*CHAT[:2], {"messages": [{"role": "user", "content": ["hi"]}]}]
    with pytest.raises(DataError, match=r"row 2, column 'messages': turn 0: 'content'"):
        check_source(data_config(write_jsonl(tmp_path / "chat.jsonl", chat)))
    short = tmp_path / "short.csv"
    short.write_text("prompt,completion\na,b\nc\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1, column 'completion': expected text, got None"):
        check_source(data_config(short))


# ---------------------------------------------------------------------------------- end to end
def _train(tmp_path: Path, *overrides: str):
    # A built-in benchmark, since a file is not one (and runner's _write_hparams finds the
    # TensorBoard writer closed when no benchmark logged after training).
    cfg = compose_run_config([*FAST, "eval.benchmarks=[addition]", *overrides])
    return run_experiment(cfg, job_dir=tmp_path / "arm")


@pytest.mark.integration
def test_sft_arm_trains_on_a_jsonl_file_with_transforms(tmp_path):
    rows = [{"question": f"{a}+{b}=", "answer": str(a + b)} for a in range(12) for b in range(12)]
    path = write_jsonl(tmp_path / "sums.jsonl", rows)
    result = _train(
        tmp_path,
        f"data.dataset_name={path}",
        "data.columns={prompt: question}",
        "data.transforms=[shuffle, {name: take, n: 100}]",
    )
    assert result.status == "completed", result.error
    assert result.metrics["val/loss"] > 0


@pytest.mark.integration
def test_sft_arm_trains_on_chat_messages(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", CHAT * 3)
    result = _train(tmp_path, f"data.dataset_name={path}")
    assert result.status == "completed", result.error


@pytest.mark.integration
def test_bad_data_fails_the_arm_with_the_message(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    path.write_text(path.read_text() + "not json\n", encoding="utf-8")
    result = _train(tmp_path, f"data.dataset_name={path}")
    assert result.status == "failed"
    assert result.error.startswith("DataError: ") and "data.jsonl, line 21" in result.error
