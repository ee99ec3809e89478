"""algorithm=grpo: the loss against TRL's, group advantages, real runs, bad input, determinism.

The oracle is TRL (a test-only dependency evsys shares no code with): its GRPOTrainer computes
the loss in the method `_compute_loss`, which tests/test_policy_loss.py calls on a minimal
stand-in trainer for every loss_type; here, the advantages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import evsys
from evsys import compose_run_config, run_experiment
from evsys.errors import ConfigError
from evsys.lightning.grpo import group_advantages, spread_groups
from evsys.ops.logprobs import token_logps
from evsys.rewards import exact_match, partial_credit
from tests.conftest import (
    FAST,
    REPO,
    arm_log_dir,
    kill_cli_once,
    run_cli,
    shrunk_follow_up,
)
from tests.test_policy_loss import fixed_batch

# Small groups and short completions: every part of a step runs, in well under a second.
GRPO = [
    "algorithm=grpo",
    "data=addition",
    "algorithm.num_generations=4",
    "algorithm.max_completion_length=4",
    "algorithm.lr=1e-3",
    "model.hidden_size=64",
    "model.num_layers=2",
    "model.intermediate_size=128",
]


# ------------------------------------------------------------------------------ the oracle: TRL
def trl_advantages(rewards: torch.Tensor, group: int, scale: bool) -> torch.Tensor:
    """TRL's advantages (GRPOTrainer._generate_and_score_completions, sum_then_normalize).

    They are computed inline in that long method, so its few lines are restated here, with
    TRL's own nanstd; evsys's version is written separately."""
    from trl.trainer.utils import nanstd

    mean = torch.nanmean(rewards.view(-1, group), dim=1).repeat_interleave(group)
    std = nanstd(rewards.view(-1, group), dim=1).repeat_interleave(group)
    advantages = rewards - mean
    return advantages / (std + 1e-4) if scale else advantages


@pytest.mark.parametrize("scale", [True, False])
def test_advantages_match_trl(scale):
    rewards = fixed_batch()["rewards"]
    expected = trl_advantages(rewards, 3, scale)
    torch.testing.assert_close(group_advantages(rewards, 3, scale), expected, rtol=0, atol=1e-5)


def test_token_logps_match_trl():
    from trl.trainer.utils import selective_log_softmax

    logits = torch.randn(3, 7, 50, generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(token_logps(logits, targets), selective_log_softmax(logits, targets))


# ------------------------------------------------------------------------------ the advantages
def test_advantages_are_zero_mean_unit_std_within_each_group():
    rewards = torch.tensor([3.0, 1.0, 0.0, 2.0, 5.0, 5.0, 5.0, 5.0, 0.0, 1.0, 0.0, 1.0])
    advantages = group_advantages(rewards, 4).view(3, 4)
    torch.testing.assert_close(advantages.mean(dim=1), torch.zeros(3), rtol=0, atol=1e-6)
    assert torch.equal(advantages[1], torch.zeros(4))  # all equal: no signal, no NaN
    assert torch.allclose(advantages[[0, 2]].std(dim=1), torch.ones(2), atol=1e-3)
    assert advantages[0].argmax() == 0 and advantages[0].argmin() == 2  # order kept


def test_spread_groups_are_those_whose_rewards_differ():
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.5, 0.0, 0.2, 0.2, 0.2])
    assert spread_groups(rewards, 3).tolist() == [False] * 3 + [True] * 3 + [False] * 3


# ---------------------------------------------------------------------------------- the rewards
def test_built_in_rewards():
    examples = [{"prompt": "40+42=", "completion": "82", "task": "addition"}] * 3
    assert exact_match(["82", " 82\n", "83"], examples) == [1.0, 1.0, 0.0]
    assert exact_match(["x"], [{"prompt": "p", "completion": " x "}]) == [1.0]  # no task
    assert partial_credit(["82", "83", "7"], examples) == [1.0, 0.5, 0.0]


def digit_share(completions: list[str], examples: list[dict]) -> list[float]:
    """A user reward (by dotted path in the tests below): the share of characters that are
    digits, a signal even a random model's samples carry."""
    return [sum(c.isdigit() for c in text) / max(len(text), 1) for text in completions]


# ---------------------------------------------------------------------------------- real runs
def scalars(job_dir: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(arm_log_dir(job_dir)))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def check_logged_and_checkpointed(job_dir: Path, steps: int) -> None:
    """Every GRPO scalar logged at every step, and a checkpoint without the reference."""
    tags = ["train/reward", "train/reward_std", "train/kl", "train/completion_length"]
    for tag in [*tags, "train/loss"]:
        assert sorted(scalars(job_dir, tag)) == list(range(steps)), tag
    kl = scalars(job_dir, "train/kl")
    assert kl[0] == pytest.approx(0, abs=1e-6) and all(value >= 0 for value in kl.values())
    checkpoint = torch.load(job_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any("reference" in key for key in checkpoint["state_dict"])


@pytest.mark.integration
def test_cli_lora_with_kl(tmp_path):
    """The CLI, offline, with LoRA: the reference is the policy with its adapters off."""
    outputs = tmp_path / "outputs"
    args = [*GRPO, *FAST, "algorithm.beta=0.05", "model.lora.r=4"]
    result = run_cli([*args, f"experiment.stores.outputs_root={outputs}"], cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = outputs.glob("runs/*/result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed", record.get("error")
    assert "eval/addition/exact_match" in record["metrics"]
    check_logged_and_checkpointed(path.parent, 4)


@pytest.mark.integration
def test_policy_learns_a_user_reward(tmp_path):
    """A reward by dotted path, beside exact match with a weight: the fresh model learns to
    write digits (its exact match stays 0, so only the user reward moves the policy)."""
    rewards = "algorithm.rewards=[exact_match,tests.test_grpo.digit_share]"
    overrides = [*GRPO, *FAST, rewards, "algorithm.reward_weights=[1.0,0.5]"]
    overrides += ["algorithm.max_steps=16", "algorithm.lr=1e-2", "algorithm.num_generations=8"]
    overrides += ["validation.enabled=false", "eval.benchmarks=[]"]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path)
    assert record.status == "completed", record.error
    digits = scalars(tmp_path, "train/rewards/digit_share")
    first, last = sum(digits[s] for s in range(4)), sum(digits[s] for s in range(12, 16))
    assert last > first + 0.5, digits


@pytest.mark.integration
def test_same_seed_same_metrics(tmp_path):
    """Full fine-tuning with a KL penalty (the reference a frozen copy), twice: same numbers."""
    overrides = [*GRPO, *FAST, "algorithm.rewards=[partial_credit]", "algorithm.beta=0.05"]
    first = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "a")
    second = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "b")
    assert first.status == second.status == "completed", (first.error, second.error)
    assert first.metrics == second.metrics
    check_logged_and_checkpointed(tmp_path / "a", 4)
    for tag in ("train/reward", "train/loss", "train/completion_length"):
        assert scalars(tmp_path / "a", tag) == scalars(tmp_path / "b", tag)
    other = run_experiment(compose_run_config([*overrides, "seed=1"]), job_dir=tmp_path / "c")
    assert other.status == "completed", other.error  # another seed samples other completions
    assert scalars(tmp_path / "c", "train/reward") != scalars(tmp_path / "a", "train/reward")


@pytest.mark.integration
def test_two_iterations_per_generation_with_dapo(tmp_path):
    """num_iterations=2, loss_type=dapo with clip-higher: each generation trains two steps
    (the same completions, so the same rewards), the second off policy (the ratio has left
    1, so the loss of the same completions moved), and every loss is finite."""
    variant = ["algorithm.num_iterations=2", "algorithm.loss_type=dapo"]
    variant += ["algorithm.epsilon_high=0.28", "algorithm.lr=1e-2"]
    rewards = "algorithm.rewards=[tests.test_grpo.digit_share]"  # a spread from the start
    overrides = [*GRPO, *FAST, rewards, "algorithm.num_generations=8", *variant]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path)
    assert record.status == "completed", record.error
    loss, reward = scalars(tmp_path, "train/loss"), scalars(tmp_path, "train/reward")
    length = scalars(tmp_path, "train/completion_length")
    assert sorted(loss) == [0, 1, 2, 3] and all(math.isfinite(v) for v in loss.values())
    for first, second in ((0, 1), (2, 3)):
        assert reward[first] == reward[second] and length[first] == length[second]
        assert loss[first] != loss[second]
    assert (reward[0], length[0]) != (reward[2], length[2])  # a new generation every 2 steps


def half_flat(completions: list[str], examples: list[dict]) -> list[float]:
    """digit_share for prompts that start with an even digit, 0 for the others: the groups of
    those others are flat (every reward equal)."""
    shares = digit_share(completions, examples)
    even = [int(example["prompt"][0]) % 2 == 0 for example in examples]
    return [share if keep else 0.0 for share, keep in zip(shares, even, strict=True)]


@pytest.mark.integration
def test_dynamic_sampling_drops_the_flat_groups(tmp_path):
    """dynamic_sampling=true samples the same completions (same rewards), but its flat groups
    leave the loss, so bnpo's token mean is over fewer tokens. Checked on the second update of
    a generation (num_iterations=2), where the ratio has left 1 and the loss is not 0: the
    loss is the plain run's over the share of groups kept (completions of equal length; Adam
    makes both runs' first updates alike), and train/flat_groups is logged."""
    rewards = "algorithm.rewards=[tests.test_grpo.half_flat]"
    overrides = [*GRPO, *FAST, rewards, "algorithm.num_generations=8", "algorithm.max_steps=2"]
    overrides += ["algorithm.num_iterations=2", "validation.enabled=false", "eval.benchmarks=[]"]
    plain = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "plain")
    dynamic = compose_run_config([*overrides, "algorithm.dynamic_sampling=true"])
    dropped = run_experiment(dynamic, job_dir=tmp_path / "dynamic")
    assert plain.status == dropped.status == "completed", (plain.error, dropped.error)
    flat = scalars(tmp_path / "dynamic", "train/flat_groups")
    assert 0 < flat[0] == flat[1] < 1, flat
    runs = ("plain", "dynamic")
    reward = {run: scalars(tmp_path / run, "train/reward") for run in runs}
    assert reward["plain"] == reward["dynamic"]
    loss = {run: scalars(tmp_path / run, "train/loss")[1] for run in runs}
    assert loss["plain"] != 0
    assert loss["dynamic"] == pytest.approx(loss["plain"] / (1 - flat[0]), rel=0.05), loss
    with pytest.raises(KeyError):
        scalars(tmp_path / "plain", "train/flat_groups")  # logged only when it drops groups


@pytest.mark.integration
@pytest.mark.parametrize("iterations", [1, 3])
def test_resumed_run_samples_what_the_uninterrupted_one_did(tmp_path, iterations):
    """Killed after a checkpoint and resumed from it: the later steps sample the same
    completions (same rewards, same loss) and end at the same model as an uninterrupted run.
    With 3 iterations per generation, checkpoints every 2 steps fall inside a generation's
    steps, which the resumed run finishes on the checkpoint's rollout.
    (CLI runs from the repo, so the test's own reward function imports.)"""
    rewards = "algorithm.rewards=[tests.test_grpo.digit_share]"
    args = [*GRPO, *FAST, rewards, "algorithm.lr=1e-2", "algorithm.num_generations=8"]
    args.append(f"algorithm.num_iterations={iterations}")
    args.append("algorithm.max_steps=24")  # room to be killed mid-run (checkpoints every 2)
    whole = run_cli([*args, f"hydra.run.dir={tmp_path / 'whole'}"], cwd=REPO)
    assert whole.returncode == 0, whole.stderr[-2000:]
    checkpoint = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    kill_cli_once([*args, f"hydra.run.dir={tmp_path / 'resumed'}"], REPO, checkpoint)
    assert not (tmp_path / "resumed" / "result.json").exists(), "killed too late to test resume"
    resumed = run_cli([*args, f"hydra.run.dir={tmp_path / 'resumed'}"], cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first = json.loads((tmp_path / "whole" / "result.json").read_text())
    second = json.loads((tmp_path / "resumed" / "result.json").read_text())
    assert 2 <= second["resumed_from_step"] < 24, second["resumed_from_step"]
    for tag in ("train/reward", "train/loss", "train/completion_length"):
        # Both parts log into the same TensorBoard run: the resumed steps overwrite, equal.
        assert scalars(tmp_path / "resumed", tag) == scalars(tmp_path / "whole", tag), tag
    assert len(set(scalars(tmp_path / "whole", "train/reward").values())) > 1  # not all equal
    assert second["metrics"]["eval/addition/loss"] == first["metrics"]["eval/addition/loss"]


@pytest.mark.slow
def test_grpo_addition_preset_end_to_end(sft_parent):
    """The documented two commands, the follow-up shrunk to a few updates on few prompts (the
    full size takes about 10 minutes on 2 CPU cores; its measured gain, which depends on the
    parent, is in docs/algorithms.md): both arms complete their 3 seeds, and arm `start` is
    the parent's model scored as is, whatever the seed."""
    shrunk = ["algorithm.max_steps=4", "algorithm.batch_size=8", "algorithm.warmup_steps=1"]
    concluded = shrunk_follow_up(
        sft_parent, "grpo_addition", shrunk, arms=("start", "grpo"), predicted=False
    )
    groups = {g["arm"]: g for g in concluded["groups"]}
    assert groups["start"]["std"] == 0  # the parent's model, scored as is, whatever the seed


def test_grpo_variants_preset_plans_three_losses_at_three_seeds():
    """+experiment=grpo_variants: grpo, dr_grpo and dapo, 3 seeds each, 2 updates per
    generation, and the prediction that dapo beats grpo (no parent here: the plan only)."""
    preset = REPO / "evsys/conf/experiment/grpo_variants.yaml"
    runs = evsys.expand_runs(preset, ["model.init_from=null"])
    arms = {(run.arm, run.seed): run.algorithm for run in runs}
    assert sorted(arms) == [(a, s) for a in ("dapo", "dr_grpo", "grpo") for s in (0, 1, 2)]
    assert {arm: algorithm.loss_type for (arm, _), algorithm in arms.items()} == {
        "grpo": "grpo", "dr_grpo": "dr_grpo", "dapo": "dapo",
    }  # fmt: skip
    assert arms["dapo", 0].epsilon_high == 0.28 and arms["grpo", 0].epsilon_high is None
    assert arms["dr_grpo", 0].scale_rewards is False
    assert all(algorithm.num_iterations == 2 for algorithm in arms.values())
    assert runs[0].experiment.prediction.better == "dapo"


@pytest.mark.slow
def test_grpo_variants_preset_end_to_end(sft_parent):
    """The preset from the SFT parent's best arm, shrunk to a few updates on few prompts (the
    full size takes about 20 minutes on 2 CPU cores; its measured verdict is in
    docs/algorithms.md): every arm and seed completes and the conclusion answers the
    prediction, whatever it finds."""
    shrunk = ["algorithm.max_steps=4", "algorithm.batch_size=8", "algorithm.warmup_steps=1"]
    shrunk_follow_up(sft_parent, "grpo_variants", shrunk, arms=("grpo", "dr_grpo", "dapo"))


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.rewards=[exact_match,no_such_pkg.reward]", "algorithm.rewards[1]='no_such_pkg"),
        ("algorithm.rewards=[evsys.rewards.no_such_reward]", "evsys.rewards.no_such_reward"),
        ("algorithm.rewards=[exactmatch]", "algorithm.rewards[0]='exactmatch'"),
        ("algorithm.num_generations=1", "algorithm.num_generations=1"),
        ("algorithm.reward_weights=[1,2]", "algorithm.reward_weights"),
        ("algorithm.loss_type=ppo", "algorithm.loss_type='ppo' is not one of bnpo, grpo"),
        ("algorithm.num_iterations=0", "algorithm.num_iterations"),
        ("algorithm.epsilon_high=0", "algorithm.epsilon_high"),
        ("algorithm.importance_sampling_level=seq", "algorithm.importance_sampling_level"),
    ],
)
def test_bad_settings_fail_before_training(override, message):
    """Rejected when the run config is validated, so a sweep fails before any job starts."""
    with pytest.raises(ConfigError) as error:
        compose_run_config([*GRPO, *FAST, override])
    assert message in str(error.value)


@pytest.mark.integration
@pytest.mark.parametrize("sweep", [False, True])
def test_bad_reward_path_fails_on_the_cli(tmp_path, sweep):
    """A single run and a sweep: the error names the reward, and no arm ever trains."""
    outputs = tmp_path / "outputs"
    args = [*GRPO, *FAST, "algorithm.rewards=[my_pkg.my_reward]", "seed=0,1" if sweep else "seed=0"]
    args += [f"experiment.stores.outputs_root={outputs}", *(["-m"] if sweep else [])]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "algorithm.rewards[0]='my_pkg.my_reward' could not be imported" in output
    assert not list(outputs.rglob("checkpoints"))
