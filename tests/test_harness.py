"""lm-evaluation-harness tasks and custom classes as benchmarks, offline.

The harness task is defined by a local YAML over a local JSONL file (dataset_path: json), so
nothing touches the network. The oracle for the in-memory scores is the harness's own CLI run
on the arm's exported model.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from evsys import ConfigError, compose_run_config
from evsys.config import HarnessConfig
from evsys.data.tokenizer import byte_tokenizer
from evsys.evaluation import evaluate_benchmarks, generate_greedy
from evsys.evaluation.base import BenchmarkSettings
from tests.conftest import FAST, arm_log_dir, cli_env, run_cli
from tests.tiny import tiny_qwen3

pytest.importorskip("lm_eval", reason='needs the harness extra: pip install -e ".[harness]"')

TASK = "evsys_sums"
LIMIT, BATCH = 12, 4

TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: choices
doc_to_target: label
target_delimiter: ""
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
"""

# A custom benchmark: how often the model answers an addition prompt with a digit.
CUSTOM_BENCHMARK = """
from evsys.evaluation import Benchmark, generate_greedy


class DigitAnswers(Benchmark):
    name = "digits"

    def score(self, model, tokenizer):
        s = self.settings
        prompts = [f"{a}+{a + 3}=" for a in range(s.max_examples)]
        answers = generate_greedy(model, tokenizer, prompts, s.batch_size, s.max_new_tokens)
        return {"digit_rate": sum(a[:1].isdigit() for a in answers) / len(answers)}
"""


def write_task(directory: Path) -> Path:
    """The harness task: pick the sum of a+b= among it and three non-numbers."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "sums.jsonl"
    rows = []
    for i in range(16):
        a, b = 7 * i % 50, 13 * i % 40
        choices = ["ab", "zz", "q?", "xy"]
        choices[i % 4] = str(a + b)
        rows.append({"question": f"{a}+{b}=", "choices": choices, "label": i % 4})
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (directory / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, data=data))
    return directory


def harness_env(root: Path) -> dict:
    # The json builder's cache goes under the test's directory, not the user's.
    # root on the path for the custom benchmark class, before whatever evsys is imported from
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {"HF_DATASETS_CACHE": str(root / "hf_datasets"), "PYTHONPATH": path}


def harness_overrides(tasks_dir: Path) -> list[str]:
    return [
        f"eval.benchmarks=[harness:{TASK},class:my_benchmarks.DigitAnswers]",
        f"eval.harness.include_path={tasks_dir}",
        f"eval.harness.limit={LIMIT}",
        f"eval.harness.batch_size={BATCH}",
    ]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two arms (a tiny and a real learning rate) ranked on the harness task's accuracy,
    also scored on it every 2 steps during training."""
    root = tmp_path_factory.mktemp("harness")
    tasks_dir = write_task(root / "tasks")
    (root / "my_benchmarks.py").write_text(CUSTOM_BENCHMARK)
    preset = root / "presets" / "experiment" / "harness_sweep.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text(
        "# @package _global_\n"
        "experiment:\n"
        "  name: harness_sweep\n"
        "  hypothesis: training on addition makes the model pick sums in the harness task\n"
        f"  success_metric: {{name: eval/{TASK}/acc, mode: max}}\n"
        "  arms:\n"
        "    lr_1e-6: {algorithm.lr: 1e-6}\n"
        "    lr_3e-3: {algorithm.lr: 3e-3}\n"
    )
    sweep_dir = root / "sweep"
    args = [
        "--config-dir", str(root / "presets"), "+experiment=harness_sweep",
        "data=addition", *FAST, *harness_overrides(tasks_dir),
        "validation.benchmarks_every_n_steps=2", f"validation.benchmarks=[harness:{TASK}]",
        f"hydra.sweep.dir={sweep_dir}", f"experiment.stores.outputs_root={root / 'outputs'}",
        "-m",
    ]  # fmt: skip
    done = run_cli(args, cwd=root, env=harness_env(root))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, tasks_dir, sweep_dir


def record(sweep_dir: Path, arm: str) -> dict:
    return json.loads((sweep_dir / f"{arm}_seed0" / "result.json").read_text())


@pytest.mark.integration
def test_in_memory_score_equals_the_harness_cli(sweep):
    root, tasks_dir, sweep_dir = sweep
    # The barely trained arm: its scores are not the saturated 1.0 of the other one.
    metrics = record(sweep_dir, "lr_1e-6")["metrics"]
    out = root / "cli_results"
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={sweep_dir / 'lr_1e-6_seed0' / 'model'}",
        "--tasks", TASK, "--include_path", str(tasks_dir), "--device", "cpu",
        "--limit", str(LIMIT), "--batch_size", str(BATCH), "--output_path", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=root, env=cli_env(harness_env(root)), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cli = json.loads(next(out.rglob("results_*.json")).read_text())["results"][TASK]
    assert cli["sample_len"] == LIMIT
    assert metrics[f"eval/{TASK}/acc"] == round(cli["acc,none"], 6)
    assert metrics[f"eval/{TASK}/acc_norm"] == round(cli["acc_norm,none"], 6)


@pytest.mark.integration
def test_an_adapter_export_scores_the_same_through_conclusion_mds_command(tmp_path):
    """model.lora.export=adapter: the command conclusion.md prints for the arm
    (pretrained=<arm>/model/base,peft=<arm>/model), run as written from the sweep dir, gives
    the harness numbers evsys recorded in memory."""
    tasks_dir = write_task(tmp_path / "tasks")
    sweep_dir = tmp_path / "sweep"
    args = [
        "model.lora.r=4", "model.lora.export=adapter", "data=addition", *FAST,
        f"eval.benchmarks=[harness:{TASK}]", f"eval.harness.include_path={tasks_dir}",
        f"eval.harness.limit={LIMIT}", f"eval.harness.batch_size={BATCH}",
        f"experiment.success_metric.name=eval/{TASK}/acc", f"hydra.sweep.dir={sweep_dir}",
        f"experiment.stores.outputs_root={tmp_path / 'outputs'}", "-m",
    ]  # fmt: skip
    done = run_cli(args, cwd=tmp_path, env=harness_env(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = re.search(r"`(lm_eval --model hf [^`]*)`", (sweep_dir / "conclusion.md").read_text())
    assert printed, "conclusion.md names no lm_eval command"
    command = printed.group(1).split()
    assert "pretrained=default_seed0/model/base,peft=default_seed0/model" in command
    out = tmp_path / "cli_results"
    command[0:1] = [sys.executable, "-m", "lm_eval"]
    command += [
        "--include_path", str(tasks_dir), "--device", "cpu", "--limit", str(LIMIT),
        "--batch_size", str(BATCH), "--output_path", str(out),
    ]  # fmt: skip
    ran = subprocess.run(
        command, cwd=sweep_dir, env=cli_env(harness_env(tmp_path)), capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    cli = json.loads(next(out.rglob("results_*.json")).read_text())["results"][TASK]
    metrics = record(sweep_dir, "default")["metrics"]
    assert metrics[f"eval/{TASK}/acc"] == round(cli["acc,none"], 6)
    assert metrics[f"eval/{TASK}/acc_norm"] == round(cli["acc_norm,none"], 6)


@pytest.mark.integration
def test_sweep_is_ranked_on_the_harness_metric(sweep):
    _, _, sweep_dir = sweep
    scores = {
        arm: record(sweep_dir, arm)["metrics"][f"eval/{TASK}/acc"] for arm in ("lr_1e-6", "lr_3e-3")
    }
    assert scores["lr_1e-6"] != scores["lr_3e-3"], scores  # the ranking is not a tie-break
    conclusion = json.loads((sweep_dir / "conclusion.json").read_text())
    assert conclusion["success_metric"]["name"] == f"eval/{TASK}/acc"
    assert conclusion["ranking"] == sorted(scores, key=scores.get, reverse=True)
    assert conclusion["best_arm"] == max(scores, key=scores.get) == "lr_3e-3"  # it learned
    assert {g["arm"]: g["mean"] for g in conclusion["groups"]} == scores
    assert f"eval/{TASK}/acc" in (sweep_dir / "conclusion.md").read_text()


def item_rows(job_dir: Path, label: str) -> list[dict]:
    lines = (job_dir / "scores" / f"{label}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.integration
def test_harness_items_average_to_the_recorded_metrics(sweep):
    _, _, sweep_dir = sweep
    for arm in ("lr_1e-6", "lr_3e-3"):
        metrics = record(sweep_dir, arm)["metrics"]
        rows = item_rows(sweep_dir / f"{arm}_seed0", TASK)
        assert [row["item"] for row in rows] == list(range(LIMIT))  # the harness's doc_ids
        for metric in ("acc", "acc_norm"):
            mean = sum(row[metric] for row in rows) / len(rows)
            assert mean == pytest.approx(metrics[f"eval/{TASK}/{metric}"], abs=1e-6)


@pytest.mark.integration
def test_harness_metric_is_compared_item_by_item(sweep):
    _, _, sweep_dir = sweep
    conclusion = json.loads((sweep_dir / "conclusion.json").read_text())
    (comparison,) = conclusion["comparisons"]
    assert comparison["method"] == "paired_seeds_items"
    assert comparison["n_items"] == LIMIT
    assert not any("item sampling not accounted for" in note for note in conclusion["notes"])


@pytest.mark.integration
def test_harness_scores_are_logged_during_and_after_training(sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, sweep_dir = sweep
    events = EventAccumulator(str(arm_log_dir(sweep_dir / "lr_3e-3_seed0"))).Reload()
    steps = [event.step for event in events.Scalars(f"eval/{TASK}/acc")]
    assert steps == [2, 4]  # validation-time scoring at step 2, post-training at the last step
    assert [event.step for event in events.Scalars("eval/digits/digit_rate")] == [4]


@pytest.mark.integration
def test_custom_benchmark_class_scores_the_arm(sweep):
    _, _, sweep_dir = sweep
    arm_dir = sweep_dir / "lr_3e-3_seed0"
    value = record(sweep_dir, "lr_3e-3")["metrics"]["eval/digits/digit_rate"]
    # The same class on the exported model, outside evsys's runner, gives the same number.
    sys.path.insert(0, str(arm_dir.parents[1]))
    try:
        from my_benchmarks import DigitAnswers
    finally:
        sys.path.pop(0)
    model = AutoModelForCausalLM.from_pretrained(arm_dir / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(arm_dir / "model")
    settings = BenchmarkSettings(max_examples=8, batch_size=64, max_new_tokens=8)
    with torch.no_grad():
        expected = DigitAnswers(settings).score(model, tokenizer)["digit_rate"]
    assert value == round(expected, 6)


GENERATE_YAML = """\
task: evsys_echo
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
target_delimiter: ""
generation_kwargs: {{until: ["<|endoftext|>"], max_gen_toks: 8, do_sample: false}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
"""


def untied_tiny_model(tokenizer) -> transformers.PreTrainedModel:
    """A random model whose greedy answers differ from prompt to prompt (a tied one repeats
    the prompt's last byte), so matching them is not a coincidence."""
    return tiny_qwen3(tokenizer, tie_word_embeddings=False)


@pytest.mark.integration
def test_in_memory_scoring_of_both_request_kinds_keeps_the_random_streams(tmp_path, monkeypatch):
    """Multiple choice (loglikelihood) and generation (generate_until) through the byte
    tokenizer; the generation task's targets are evsys's own greedy answers for half of the
    prompts, so the harness must generate exactly what evsys does to score 0.5."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    tasks_dir = write_task(tmp_path / "tasks")
    tokenizer = byte_tokenizer()
    model = untied_tiny_model(tokenizer)
    prompts = [f"{a}+{a}=" for a in range(8)]
    answers = generate_greedy(model, tokenizer, prompts, batch_size=8, max_new_tokens=8)
    rows = [
        {"prompt": p, "target": a if i % 2 == 0 else "none of these"}
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True))
    ]
    data = tasks_dir / "echo.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tasks_dir / "evsys_echo.yaml").write_text(GENERATE_YAML.format(data=data))
    harness = HarnessConfig(include_path=str(tasks_dir), limit=8, batch_size=BATCH)

    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    untouched = torch.rand(2).tolist(), random.random(), np.random.rand()
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    scores = evaluate_benchmarks(
        model, tokenizer, [f"harness:{TASK}", "harness:evsys_echo"], data_seed=0, num_eval=8,
        max_examples=8, batch_size=8, max_new_tokens=8, max_length=64, harness=harness,
    )  # fmt: skip
    scores, items = scores.metrics, scores.items
    assert (torch.rand(2).tolist(), random.random(), np.random.rand()) == untouched
    assert [row["exact_match"] for row in items["evsys_echo"]] == [1.0, 0.0] * 4

    assert len(set(answers)) > 1  # the answers depend on the prompt
    assert scores["eval/evsys_echo/exact_match"] == 0.5
    assert set(scores) == {
        f"eval/{TASK}/acc",
        f"eval/{TASK}/acc_norm",
        "eval/evsys_echo/exact_match",
    }
    assert 0.0 <= scores[f"eval/{TASK}/acc"] <= 1.0


GROUP_YAML = """\
group: evsys_pair
task: [{task}, evsys_few]
aggregate_metric_list:
  - {{metric: acc, weight_by_size: {weighted}}}
"""


@pytest.mark.integration
@pytest.mark.parametrize("weighted", [True, False])
def test_a_group_writes_items_per_subtask(tmp_path, monkeypatch, weighted):
    """Each subtask under its own label; the group's own items only where its number is
    their mean (weighted by size), never a number they do not average to."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    tasks_dir = write_task(tmp_path / "tasks")
    few = tasks_dir / "few.jsonl"
    few.write_text("".join((tasks_dir / "sums.jsonl").read_text().splitlines(True)[:5]))
    few_yaml = (
        (tasks_dir / f"{TASK}.yaml").read_text().replace(str(tasks_dir / "sums.jsonl"), str(few))
    )
    (tasks_dir / "evsys_few.yaml").write_text(few_yaml.replace(f"task: {TASK}", "task: evsys_few"))
    (tasks_dir / "evsys_pair.yaml").write_text(GROUP_YAML.format(task=TASK, weighted=weighted))
    tokenizer = byte_tokenizer()
    harness = HarnessConfig(include_path=str(tasks_dir), limit=8, batch_size=BATCH)
    scores = evaluate_benchmarks(
        untied_tiny_model(tokenizer), tokenizer, ["harness:evsys_pair"], data_seed=0,
        num_eval=8, max_examples=8, batch_size=8, max_new_tokens=8, max_length=64,
        harness=harness,
    )  # fmt: skip
    scores, items = scores.metrics, scores.items
    for label, rows in items.items():
        for metric in set(rows[0]) - {"item"}:
            mean = sum(row[metric] for row in rows) / len(rows)
            assert mean == pytest.approx(scores[f"eval/{label}/{metric}"], abs=1e-9)
    assert [row["item"] for row in items[f"evsys_pair/{TASK}"]] == list(range(8))
    assert [row["item"] for row in items["evsys_pair/evsys_few"]] == list(range(5))
    if weighted:
        assert len(items["evsys_pair"]) == 13
        assert items["evsys_pair"][8]["item"] == "evsys_few/0"
    else:  # the mean of 2/8 and 2/5 (0.325) is not the mean of the 13 items (4/13)
        assert "evsys_pair" not in items
        assert scores["eval/evsys_pair/acc"] == pytest.approx(0.325)


# ------------------------------------------------------------------------ errors before training
@pytest.mark.integration
def test_missing_lm_eval_is_named_before_training(tmp_path):
    hidden = tmp_path / "hide" / "lm_eval"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'lm_eval'\")\n")
    args = [
        *FAST,
        f"eval.benchmarks=[addition,harness:{TASK}]",
        f"hydra.run.dir={tmp_path / 'arm'}",
    ]
    done = run_cli(args, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "hide")})
    assert done.returncode != 0
    assert 'pip install -e ".[harness]"' in done.stdout + done.stderr
    assert not (tmp_path / "arm" / "checkpoints").exists()  # nothing was trained


@pytest.mark.integration
def test_unknown_harness_task_is_named(tmp_path):
    tasks_dir = write_task(tmp_path / "tasks")
    overrides = [f"eval.benchmarks=[harness:{TASK}x]", f"eval.harness.include_path={tasks_dir}"]
    with pytest.raises(ConfigError, match=rf"harness:{TASK}x is not .*did you mean {TASK}"):
        compose_run_config(overrides)


def test_missing_include_path_is_named(tmp_path):
    overrides = [f"eval.benchmarks=[harness:{TASK}]", f"eval.harness.include_path={tmp_path}/no"]
    with pytest.raises(ConfigError, match=r"eval\.harness\.include_path=.*no such file"):
        compose_run_config(overrides)


@pytest.mark.parametrize(
    "path, problem",
    [
        ("class:no_such_module.Bench", "cannot import module 'no_such_module'"),
        ("class:evsys.evaluation.NoSuchBench", "has no attribute 'NoSuchBench'"),
        (
            "class:evsys.evaluation.generate_greedy",
            "is not a subclass of evsys.evaluation.Benchmark",
        ),
        ("class:Bench", r"write the class as class:<module>\.<Class>"),
    ],
)
def test_bad_custom_benchmark_path_is_named(path, problem):
    with pytest.raises(ConfigError, match=rf"eval\.benchmarks: {re.escape(path)}: .*{problem}"):
        compose_run_config([f"eval.benchmarks=[{path}]"])


def test_validation_benchmarks_must_be_eval_benchmarks():
    with pytest.raises(ConfigError, match=r"validation\.benchmarks: \['sorting'\] are not in"):
        compose_run_config(["eval.benchmarks=[addition]", "validation.benchmarks=[sorting]"])


def test_a_sweep_ranked_by_a_harness_tasks_guessed_metric_is_refused(tmp_path):
    """Exact match, the default metric, is a guess for a harness task: a sweep must name one."""
    from evsys.validate import check_success_metric, success_metric

    tasks_dir = write_task(tmp_path / "tasks")
    overrides = [f"eval.benchmarks=[harness:{TASK}]", f"eval.harness.include_path={tasks_dir}"]
    cfg = compose_run_config(overrides)
    with pytest.raises(ConfigError, match=rf"success_metric\.name=eval/{TASK}/acc"):
        check_success_metric(cfg, success_metric(cfg)["name"])
    named = compose_run_config([*overrides, f"experiment.success_metric.name=eval/{TASK}/acc"])
    check_success_metric(named, success_metric(named)["name"])  # named: accepted
    assert success_metric(named)["mode"] == "max"
