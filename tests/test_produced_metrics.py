"""The plan knows the metrics each job's record will hold (evsys/metric_names.py): a success
metric, baseline, prediction or min_effect that cannot be evaluated is refused before anything
trains, and a finished record is checked against the same list."""

from __future__ import annotations

import subprocess
import sys

import pytest

import evsys
from evsys import compose_run_config, run_experiment
from evsys.errors import ConfigError
from evsys.metric_names import checked_record, produced_metrics
from evsys.records import ArmResult
from evsys.validate import check_success_metric
from tests.conftest import FAST, REPO, cli_env, run_cli

STAGES = "experiment.continual.datasets"
TINY = ["model.hidden_size=64", "model.num_layers=2", "model.intermediate_size=128"]
GRPO = ["algorithm=grpo", "data=addition", "algorithm.num_generations=2"]
GRPO += ["algorithm.max_completion_length=4", "algorithm.rewards=[exact_match,partial_credit]"]


# ------------------------------------------------------------------------------ what is produced
def test_validation_metrics_only_when_validation_runs_at_least_once():
    assert "val/loss" in produced_metrics(compose_run_config(["algorithm.max_steps=50"])).names
    short = produced_metrics(compose_run_config(["algorithm.max_steps=49"]))
    assert "val/loss" not in short.names
    assert "validation.every_n_steps=50 > algorithm.max_steps=49" in short.absent["val/loss"]
    off = produced_metrics(compose_run_config(["validation.enabled=false"]))
    assert "validation.enabled=false" in off.absent["val/loss"]


def test_each_algorithm_and_benchmark_kind_names_its_metrics():
    dpo = produced_metrics(compose_run_config(["algorithm=dpo", "data=addition"]))
    assert "val/rewards/accuracy" in dpo.names and "eval/addition/exact_match" in dpo.names
    pretrain = produced_metrics(compose_run_config(["algorithm=pretrain"]))
    assert pretrain.names == [
        "train/loss", "val/loss", "eval/reversal/loss", "eval/reversal/perplexity"
    ]  # fmt: skip
    grpo = produced_metrics(compose_run_config(GRPO))
    for name in ("train/reward", "train/rewards/partial_credit", "eval/addition/reward"):
        assert name in grpo.names
    assert "eval/addition/rewards/exact_match" in grpo.names and "train/kl" in grpo.absent
    custom = ["eval.benchmarks=[addition,class:tests.test_bad_input.BrokenBenchmark]"]
    produced = produced_metrics(compose_run_config(custom))
    assert produced.holds("eval/broken/any") and not produced.holds("eval/other/any")


def test_a_continual_chain_produces_its_continual_metrics():
    cfg = compose_run_config(["+experiment=continual_demo"])
    names = produced_metrics(cfg).names
    for name in ("continual/avg_final", "continual/bwt", "continual/loss/forgetting/reversal"):
        assert name in names
    assert "continual/forgetting/addition" not in names  # the last stage's: nothing after it


# --------------------------------------------------------------------------- refused at planning
@pytest.mark.parametrize(
    ("overrides", "metric", "named"),
    [
        (["algorithm.max_steps=10"], "val/loss", "validation never runs"),
        ([], "val/losss", "Did you mean 'val/loss'?"),
        (GRPO, "train/kl", "logs train/kl to TensorBoard each step, but a record keeps"),
        ([], "eval/reversal/exact_matc", "eval/reversal produces eval/reversal/loss, eval/rev"),
    ],
)
def test_a_metric_no_record_will_hold_is_refused(overrides, metric, named):
    """check_success_metric, as the plan calls it on every job's composed config (a single
    RunConfig may name any metric: tests/test_bad_input.py ranks names it does not produce)."""
    cfg = compose_run_config([*overrides, f"experiment.success_metric.name={metric}"])
    with pytest.raises(ConfigError) as error:
        check_success_metric(cfg, metric)
    message = str(error.value)
    assert f"experiment.success_metric.name='{metric}' is not a metric this job produces" in message
    assert named in message and "The job produces train/loss" in message


def _page(tmp_path, body: str):
    path = tmp_path / "experiment.yaml"
    path.write_text(body)
    return path


RUNS = (
    "runs:\n  - {name: a, algorithm: {max_steps: 10}}\n  - {name: b, algorithm: {max_steps: 10}}\n"
)


@pytest.mark.parametrize(
    ("head", "named"),
    [
        ("success_metric: val/loss\n", "arm 'a'"),
        ("success_metric: val/losss\n", "Did you mean 'val/loss'? It is not produced either"),
        (
            "success_metric: {name: eval/reversal/exact_match, min_effect: 1}\n",
            "min_effect=1.0 cannot be reached",
        ),
    ],
)
def test_the_plan_refuses_what_cannot_be_evaluated(tmp_path, head, named):
    """evsys.expand_runs plans exactly as the sweeper does: nothing is built or trained."""
    with pytest.raises(ConfigError) as error:
        evsys.expand_runs(_page(tmp_path, f"name: x\n{head}{RUNS}"))
    assert named in str(error.value)


def test_a_baseline_or_prediction_naming_no_arm_is_refused_by_the_plan(tmp_path):
    preset = tmp_path / "preset.yaml"
    arms = "  arms: {a: {algorithm.lr: 1e-3}, b: {algorithm.lr: 3e-3}}\n"
    for line, named in [
        ("  baseline: aa\n", "experiment.baseline='aa' names no arm of this sweep"),
        ("  prediction: {better: bb, than: a}\n", "experiment.prediction.better='bb' names no"),
    ]:
        preset.write_text(f"# @package _global_\nexperiment:\n  name: x\n{arms}{line}")
        with pytest.raises(ConfigError) as error:
            evsys.expand_runs(preset)
        assert named in str(error.value) and "its arms are a, b" in str(error.value)


def test_grpo_rewards_pass_the_plan_and_its_other_curves_are_refused_with_the_reason():
    preset = REPO / "evsys/conf/experiment/grpo_addition.yaml"
    for metric in ("train/reward", "eval/addition/reward", "eval/addition/rewards/exact_match"):
        # no parent: the plan's other check of this preset
        evsys.expand_runs(
            preset, [f"experiment.success_metric.name={metric}", "model.init_from=null"]
        )
    with pytest.raises(ConfigError) as error:
        evsys.expand_runs(preset, ["experiment.success_metric.name=train/reward_std"])
    message = str(error.value)
    assert "arm 'start'" in message and "logs train/reward_std to TensorBoard" in message
    assert "a record keeps train/loss, train/reward, train/rewards/exact_match only" in message


def test_a_user_reward_is_named_by_its_function_in_the_record():
    cfg = compose_run_config([*GRPO[:-1], "algorithm.rewards=[tests.test_grpo.digit_share]"])
    names = produced_metrics(cfg).names
    assert "train/rewards/digit_share" in names and "eval/addition/rewards/digit_share" in names


def test_the_reported_typos_are_refused_by_the_plan(tmp_path):
    for key, value in [("algorithm.schedule", "cosin"), ("backend.precision", "bf17")]:
        group, leaf = key.split(".")
        page = f"name: x\nruns:\n  - {{name: a, {group}: {{{leaf}: {value}}}}}\n"
        with pytest.raises(ConfigError, match=rf"runs\[0\]\.{key}='{value}' is not one of"):
            evsys.expand_runs(_page(tmp_path, page))


# ------------------------------------------------------------------------------------ the CLIs
def test_the_train_cli_refuses_before_training(tmp_path):
    """`evsys train ... -m`: one bad value, one metric no record holds; nothing trains."""
    done = run_cli(["model.attn_implementation=sdpaa", "hydra.sweep.dir=sweep", "-m"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "model.attn_implementation='sdpaa' is not one of" in output
    assert "sdpa, eager, flex_attention, flash_attention_2" in output
    args = ["algorithm.max_steps=10", "experiment.success_metric.name=val/loss"]
    done = run_cli([*args, "hydra.sweep.dir=sweep", "-m"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "'val/loss' is not a metric this job produces" in output
    assert "validation never runs" in output and not list(tmp_path.rglob("result.json"))


def test_evsys_run_dry_run_refuses_before_the_plan_prints(tmp_path):
    page = "name: x\nsuccess_metric: val/loss\nruns:\n"
    page += "  - {name: a, algorithm: {max_steps: 10, schedule: cosin}}\n"
    path = _page(tmp_path, page)
    command = [sys.executable, "-m", "evsys.cli.main", "run", str(path), "--dry-run"]
    done = subprocess.run(command, cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "jobs to run" not in output, output[-2000:]
    assert "runs[0].algorithm.schedule='cosin' is not one of cosine, linear, constant" in output
    path.write_text(page.replace(", schedule: cosin", ""))
    done = subprocess.run(command, cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "jobs to run" not in output, output[-2000:]
    assert "'val/loss' is not a metric this job produces" in output


# ------------------------------------------------------------------------- the records, checked
@pytest.mark.integration
@pytest.mark.parametrize(
    "overrides",
    [
        [*FAST, *TINY],
        [*FAST, *TINY, "algorithm=dpo", "data=addition", "algorithm.max_steps=2"],
        [*FAST, *TINY, *GRPO, "algorithm.max_steps=2"],
        [*FAST, *TINY, "algorithm.max_steps=1"],  # validation never runs
        [*FAST, *TINY, f"{STAGES}=[{{dataset_name:addition}},{{dataset_name:sorting}}]"],
        [*FAST, *TINY, "algorithm=kto", "data=addition", "algorithm.max_steps=2"],
        [*FAST, *TINY, "algorithm=reward_model", "data=addition", "eval.benchmarks=[]"],
        [*FAST, *TINY, "algorithm=rloo", *GRPO[1:], "algorithm.max_steps=2"],
    ],
    ids=["sft", "dpo", "grpo", "no-validation", "continual", "kto", "reward_model", "rloo"],
)
def test_a_real_record_holds_exactly_the_produced_metrics(tmp_path, overrides):
    cfg = compose_run_config(overrides)
    record = run_experiment(cfg, tmp_path)
    assert record.completed, record.error
    assert sorted(record.metrics) == sorted(produced_metrics(cfg).names)


def test_a_record_missing_an_expected_success_metric_is_failed():
    cfg = compose_run_config(FAST)
    record = ArmResult("a", 0, "completed", success_metric="val/loss", metrics={"train/loss": 1})
    record = checked_record(cfg, record)
    assert record.status == "failed"
    assert "metric 'val/loss' missing from the record" in record.error
    assert "the plan expected train/loss, val/loss" in record.error
    # A single run whose default metric the plan knew it would not produce stays completed.
    short = compose_run_config([*FAST, "algorithm.max_steps=1", "eval.benchmarks=[]"])
    record = ArmResult("a", 0, "completed", success_metric="val/loss", metrics={"train/loss": 1})
    record = checked_record(short, record)
    assert record.completed
