"""data.mixture: weighted datasets with their own transforms, mixed in the sampled proportions,
each one's eval split scored on its own."""

from __future__ import annotations

import pytest

from evsys import compose_run_config, run_experiment
from evsys.data.mixture import mixture_counts, sample
from evsys.data.prepare import check_source
from evsys.errors import ConfigError, DataError
from evsys.lightning.datamodule import PostTrainingDataModule, StepStream
from evsys.lightning.sft import SFTModule
from evsys.models import load_tokenizer
from tests.conftest import FAST
from tests.test_data_sources import write_jsonl


def test_counts_follow_the_weights_and_add_up():
    assert mixture_counts([100, 10], [3, 1]) == [83, 27]  # 110 * 3/4 = 82.5 -> 83, 27.5 -> 27
    assert mixture_counts([5, 5, 5], [1, 1, 1]) == [5, 5, 5]
    counts = mixture_counts([7, 1000, 13], [0.2, 0.3, 0.5])
    assert sum(counts) == 1020 and counts == [204, 306, 510]


def test_a_small_component_is_repeated_then_sampled():
    examples = [{"i": i} for i in range(4)]
    drawn = sample(examples, 10, seed=0, index=1)
    assert drawn[:8] == examples * 2 and len(drawn) == 10
    assert sample(examples, 10, seed=0, index=1) == drawn  # seeded


def mixture_files(tmp_path):
    """A: 120 sums (its transforms keep 90), B: 20 products; told apart by the prompt."""
    a = [{"q": f"A {x}+{y}=", "a": str(x + y)} for x in range(12) for y in range(10)]
    b = [{"prompt": f"B {x}*3=", "completion": str(3 * x)} for x in range(20)]
    return write_jsonl(tmp_path / "sums.jsonl", a), write_jsonl(tmp_path / "products.jsonl", b)


def mixture_overrides(a, b, weight_a=3, weight_b=1):
    return [
        "data.mixture=["
        f"{{dataset_name: '{a}', weight: {weight_a}, columns: {{prompt: q, completion: a}},"
        " transforms: [shuffle, {name: take, n: 90}]},"
        f"{{dataset_name: '{b}', weight: {weight_b}, eval_fraction: 0.2}}]"
    ]


@pytest.mark.integration
def test_sft_arm_trains_on_a_weighted_mixture(tmp_path, monkeypatch):
    monkeypatch.setenv("EVSYS_CACHE_DIR", str(tmp_path / "cache"))
    a, b = mixture_files(tmp_path)
    overrides = [*FAST, *mixture_overrides(a, b), f"eval.benchmarks=['{a}', '{b}']"]
    cfg = compose_run_config(overrides)
    result = run_experiment(cfg, job_dir=tmp_path / "arm")
    assert result.status == "completed", result.error
    # Each component's held-out split is scored on its own.
    assert {"eval/sums/loss", "eval/products/loss"} <= set(result.metrics)

    # The sampled proportions. A keeps 81 of its 90 for training (eval_fraction 0.1), B 16 of
    # 20 (0.2): N = 97, drawn 3:1 -> 72.75 and 24.25 -> 73 A and 24 B (B repeated). The counts
    # are fixed (largest remainder), not random, so the only error is rounding: < 1/N.
    data = PostTrainingDataModule(cfg, load_tokenizer(cfg.model), SFTModule)
    data.prepare()
    prompts = [row_prompt for row_prompt in _example_starts(data.train_rows)]
    share_a = prompts.count("A") / len(prompts)
    assert len(prompts) == 97 and prompts.count("A") == 73
    assert abs(share_a - 0.75) < 1 / len(prompts)
    # One epoch of the training stream reads every row once: the same proportions in training.
    stream = StepStream(data.train_rows, 1, cfg.seed, lambda rows: {"rows": rows})
    batches = iter(stream)
    epoch = [next(batches)["rows"][0] for _ in range(len(data.train_rows))]
    assert sorted(_example_starts(epoch)) == sorted(prompts)
    # The eval split is the union of the components' own eval splits, not re-weighted.
    assert len(data.eval_raw) == 9 + 4
    assert {name: len(part) for name, part in data.held_out.items()} == {str(a): 9, str(b): 4}


def _example_starts(rows) -> list[str]:
    """The first character of every example packed in the rows ("A" or "B")."""
    return [
        chr(row["input_ids"][i])
        for row in rows
        for i, position in enumerate(row["position_ids"])
        if position == 0
    ]


@pytest.mark.integration
def test_mixture_errors_name_the_component(tmp_path):
    a, b = mixture_files(tmp_path)
    with pytest.raises(ConfigError, match=r"data.mixture\[1\].weight=0.0 must be positive"):
        check_source(compose_run_config(mixture_overrides(a, b, weight_b=0)).data)
    with pytest.raises(ConfigError, match=r"data.mixture\[0\].weight=-1.0 must be positive"):
        check_source(compose_run_config(mixture_overrides(a, b, weight_a=-1)).data)
    with pytest.raises(ConfigError, match=r"data.mixture is empty"):
        check_source(compose_run_config(["data.mixture=[]"]).data)
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(ConfigError, match=r"data.mixture\[1\] \(.*missing.jsonl\): .*no such file"):
        check_source(compose_run_config(mixture_overrides(a, missing)).data)
    b.write_text(b.read_text() + "{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.mixture\[1\] \(.*\): .*products.jsonl, line 21"):
        check_source(compose_run_config(mixture_overrides(a, b)).data)
    with pytest.raises(ConfigError, match=r"continual.datasets and data.mixture cannot be"):
        compose_run_config(
            [
                "experiment.continual.datasets=[{dataset_name: addition}]",
                "data.mixture=[{dataset_name: addition}]",
            ]
        )
    # A misspelled component key is caught by the schema while composing (Hydra's message).
    with pytest.raises(Exception, match=r"data.mixture") as typo:
        compose_run_config([f"data.mixture=[{{dataset_name: '{a}', wieght: 2}}]"])
    assert "Key 'wieght' not in 'MixtureComponent'" in str(typo.value.__cause__)
