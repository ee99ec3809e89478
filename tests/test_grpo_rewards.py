"""GRPO's rewards reach the record (issue #23 item 2): train/reward and train/rewards/<fn> as
the mean of the last logging window, and held-out prompts scored with the same reward
functions (eval/<label>/reward, eval/<label>/rewards/<fn>), per item like every benchmark, so
the conclusion ranks arms on a reward with seeds x items statistics."""

from __future__ import annotations

import json
import math

import pytest

from evsys import compose_run_config, run_experiment
from evsys.conclusion.write import write_conclusion
from evsys.evaluation.scoring import evaluate_configured
from evsys.jsonl import numbered_rows
from evsys.metric_kinds import REWARD, benchmark_metric, metric_kind, metric_mode
from evsys.metric_names import produced_metrics
from evsys.records import item_scores_path, write_item_scores
from evsys.rewards import Rewards
from tests.conftest import FAST, REPO, assert_killed_run_resumes_exactly, run_cli
from tests.test_grpo import GRPO, scalars
from tests.tiny import tiny_qwen3

OWN_REWARDS = "algorithm.rewards=[exact_match,tests.test_grpo_rewards.answer_length,"
OWN_REWARDS += "tests.test_grpo_rewards.task_named]"


def answer_length(completions: list[str], examples: list[dict]) -> list[float]:
    """A user reward that shows what it scored: the answer's length in characters."""
    return [float(len(text)) for text in completions]


def task_named(completions: list[str], examples: list[dict]) -> list[float]:
    """1 when the example names its built-in task, as GRPO's training examples do."""
    return [float(example["task"] == "addition") for example in examples]


# ------------------------------------------------------------------------------- the scoring
def test_rewards_score_each_completion_weighted_as_training_weights_them():
    algorithm = compose_run_config(
        [
            *GRPO,
            "algorithm.rewards=[exact_match,partial_credit]",
            "algorithm.reward_weights=[1,0.5]",
        ]
    ).algorithm
    rewards = Rewards.of(algorithm)
    examples = [{"prompt": "40+42=", "completion": "82", "task": "addition"}] * 2
    assert rewards.item_scores(["82", "83"], examples) == [
        {"reward": 1.5, "rewards/exact_match": 1.0, "rewards/partial_credit": 1.0},
        {"reward": 0.25, "rewards/exact_match": 0.0, "rewards/partial_credit": 0.5},
    ]
    assert rewards.metrics == ["reward", "rewards/exact_match", "rewards/partial_credit"]
    assert Rewards.of(compose_run_config(["data=addition"]).algorithm) is None  # sft: none
    broken = Rewards(("short",), (lambda completions, examples: [1.0],), (1.0,))
    with pytest.raises(ValueError, match="reward 'short' returned 1 values for 2 completions"):
        broken.item_scores(["a", "b"], examples)


def test_held_out_greedy_answers_are_scored_with_the_arms_rewards_item_by_item(tokenizer):
    """A real model's greedy answers (eval.max_new_tokens) on the addition task: each item
    carries reward and rewards/<fn> beside exact match, and the metrics are their means."""
    cfg = compose_run_config([*GRPO, *FAST, OWN_REWARDS, "algorithm.reward_weights=[1,0.5,2]"])
    model = tiny_qwen3(tokenizer)
    scores = evaluate_configured(model, tokenizer, ["addition"], cfg)
    items = scores.items["addition"]
    assert len(items) == cfg.eval.max_examples
    for item in items:
        assert item["rewards/answer_length"] == len(item["prediction"])  # what it scored
        assert item["rewards/task_named"] == 1.0  # the example names its task
        assert item["rewards/exact_match"] == item["exact_match"]  # the task's own rule
        expected = item["exact_match"] + 0.5 * item["rewards/answer_length"] + 2.0
        assert item["reward"] == pytest.approx(expected)
    for metric in ("reward", "rewards/answer_length", "rewards/task_named", "exact_match"):
        mean = math.fsum(item[metric] for item in items) / len(items)
        assert scores.metrics[f"eval/addition/{metric}"] == pytest.approx(mean, abs=1e-6)
    assert sorted(scores.metrics) == sorted(
        name for name in produced_metrics(cfg).names if name.startswith("eval/")
    )
    plain = evaluate_configured(model, tokenizer, ["addition"], compose_run_config(FAST))
    assert not [key for key in plain.items["addition"][0] if key.startswith("reward")]


# -------------------------------------------------------------------- kinds and the conclusion
def test_a_reward_is_higher_is_better_and_unbounded_whatever_its_name():
    for name in ("train/reward", "train/rewards/f1", "eval/addition/reward"):
        assert metric_kind(name) == REWARD and metric_mode(name) == "max"
    # a user reward named like a share or a loss is still a reward: no bounds, higher better
    assert metric_kind("eval/addition/rewards/exact_match") == REWARD
    assert metric_mode("eval/addition/rewards/loss_penalty") == "max"
    assert benchmark_metric("eval/addition/rewards/f1") == ("addition", "rewards/f1")
    assert benchmark_metric("eval/mmlu/mmlu_anatomy/acc") == ("mmlu/mmlu_anatomy", "acc")


def test_the_conclusion_ranks_arms_on_a_per_function_reward_with_item_scores(tmp_path):
    """Fabricated records with per-item scores/addition.jsonl: the conclusion pairs by seed
    and item on eval/addition/rewards/answer_length (values above 1: nothing clips them)."""
    metric = "eval/addition/rewards/answer_length"
    lengths = {"long": [[3.0, 4.0, 6.0], [3.0, 5.0, 6.0]], "short": [[1.0, 2.0, 1.0]] * 2}
    planned = []
    for arm, seeds in lengths.items():
        for seed, values in enumerate(seeds):
            job = {"arm": arm, "seed": seed, "dir": f"{arm}_seed{seed}"}
            planned.append({**job, "overrides": [f"seed={seed}"]})
            record = {"arm": arm, "seed": seed, "group_id": arm, "status": "completed"}
            record |= {"overrides": [f"seed={seed}"], "metrics": {metric: sum(values) / 3}}
            rows = [{"item": f"{i}-x", "rewards/answer_length": v} for i, v in enumerate(values)]
            write_item_scores(tmp_path / job["dir"], {"addition": rows})
            (tmp_path / job["dir"] / "result.json").write_text(json.dumps(record))
    success = {"name": metric, "mode": metric_mode(metric), "min_effect": 0.0}
    plan = {"id": "rewards-20261207-010000-1a2b", "name": "rewards", "hypothesis": ""}
    plan |= {"success_metric": success, "baseline": None, "n_repeats": 2, "planned": planned}
    (tmp_path / "experiment.json").write_text(json.dumps(plan))
    conclusion = write_conclusion(tmp_path)
    assert conclusion.ranking == ["long", "short"], conclusion.reason
    assert [group.n_items for group in conclusion.groups] == [3, 3]
    assert conclusion.groups[0].ci95[1] > 5  # unbounded: not clipped to a share's 1


# ---------------------------------------------------------------------------------- real runs
@pytest.mark.integration
def test_the_record_keeps_the_last_logging_windows_mean_reward(tmp_path):
    """The same run twice, logged every step and every 3rd: the second's record holds the
    mean of the first's rewards at steps 3, 4 and 5 (equal batches: the mean of their means)."""
    overrides = [*GRPO, *FAST, "algorithm.max_steps=6", "validation.enabled=false"]
    overrides += ["algorithm.rewards=[partial_credit]", "eval.benchmarks=[]"]
    every = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "every")
    window = run_experiment(
        compose_run_config([*overrides, "log_every_n_steps=3"]), job_dir=tmp_path / "window"
    )
    assert every.completed and window.completed, (every.error, window.error)
    rewards = scalars(tmp_path / "every", "train/reward")
    assert len(set(rewards.values())) > 1  # the steps differ: a window mean is not any one
    assert every.metrics["train/reward"] == pytest.approx(rewards[5], abs=1e-6)
    expected = (rewards[3] + rewards[4] + rewards[5]) / 3
    assert window.metrics["train/reward"] == pytest.approx(expected, abs=1e-6)
    assert window.metrics["train/rewards/partial_credit"] == window.metrics["train/reward"]


@pytest.mark.integration
def test_a_resumed_run_keeps_the_rewards_of_its_window_before_the_kill(tmp_path):
    """Killed mid-run and resumed: the window (every step here) spans the kill, and the
    record's rewards equal the uninterrupted run's (the window is in the checkpoint)."""
    args = [*GRPO, *FAST, "algorithm.rewards=[partial_credit]", "algorithm.max_steps=24"]
    assert_killed_run_resumes_exactly([*args, "log_every_n_steps=24"], tmp_path)


@pytest.mark.integration
def test_a_grpo_sweep_is_ranked_on_held_out_reward_with_item_scores(tmp_path):
    """Two GRPO arms x 2 seeds through the CLI, success metric eval/addition/reward: every
    record holds train/reward, every arm its per-item reward scores, and the conclusion
    ranks both arms on seeds x items."""
    preset = tmp_path / "experiment" / "grpo_reward.yaml"
    preset.parent.mkdir()
    preset.write_text(
        "# @package _global_\n"
        "defaults:\n  - override /data: addition\n  - override /algorithm: grpo\n"
        "experiment:\n  name: grpo_reward\n"
        "  hypothesis: training on partial credit raises the held-out reward\n"
        "  success_metric: {name: eval/addition/reward}\n"
        "  n_repeats: 2\n"
        "  arms:\n    start: {algorithm.lr: 0.0}\n    trained: {algorithm.lr: 1e-2}\n"
        "algorithm:\n  rewards: [exact_match, partial_credit]\n  num_generations: 4\n"
        "  max_completion_length: 4\n"
    )
    sweep = tmp_path / "sweep"
    args = ["--config-dir", str(tmp_path), "+experiment=grpo_reward", *FAST, *GRPO[5:]]
    args += [f"hydra.sweep.dir={sweep}", f"experiment.stores.outputs_root={tmp_path}", "-m"]
    done = run_cli(args, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    paths = sorted(sweep.glob("*/result.json"))
    assert len(paths) == 4
    for path in paths:
        record = json.loads(path.read_text())
        assert record["status"] == "completed", record["error"]
        for name in ("train/reward", "train/rewards/partial_credit", "eval/addition/reward"):
            assert name in record["metrics"], name
        rows = [row for _, row in numbered_rows(item_scores_path(path.parent, "addition"))]
        mean = math.fsum(row["reward"] for row in rows) / len(rows)
        assert mean == pytest.approx(record["metrics"]["eval/addition/reward"], abs=1e-5)
    conclusion = json.loads((sweep / "conclusion.json").read_text())
    assert conclusion["success_metric"]["name"] == "eval/addition/reward"
    assert sorted(conclusion["ranking"]) == ["start", "trained"]
    for group in conclusion["groups"]:
        assert group["n"] == 2 and group["n_items"] == 8, group
        assert group["ci_method"] != "welch", group
