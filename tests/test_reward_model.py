"""algorithm=reward_model: the Bradley-Terry loss (margin, center_rewards_coefficient) and its
gradients against TRL 1.16's RewardTrainer, a real run that records and exports, and the
exported model as a GRPO reward by path (`model:<dir>`).

The oracle is TRL's own `RewardTrainer.compute_loss`, called on a minimal object that carries
the attributes it reads, with the same classifier and the same batch as evsys.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from evsys import compose_run_config, run_experiment
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError
from evsys.lightning.dpo import collate_pairs, tokenize_pairs
from evsys.lightning.reward_model import RewardModelModule
from evsys.lightning.reward_model_config import RewardModelConfig
from evsys.rewards import Rewards, resolve_reward
from tests.conftest import FAST
from tests.tiny import tiny_qwen3

PAIRS = [
    {"prompt": "12+5=", "completion": "17", "rejected": "18"},
    {"prompt": "reverse abc=", "completion": "cba", "rejected": "cab"},
    {"prompt": "sort dcba=", "completion": "abcd", "rejected": "abdcx"},  # lengths differ
]


def trl_reward_loss(model, batch: dict, center_rewards_coefficient, margin=None):
    """TRL 1.16's RewardTrainer.compute_loss on the batch (chosen rows, then rejected)."""
    from trl.trainer.reward_trainer import RewardTrainer

    trainer = SimpleNamespace(
        model=model,
        args=SimpleNamespace(center_rewards_coefficient=center_rewards_coefficient),
        accelerator=SimpleNamespace(gather_for_metrics=lambda x: x, gather=lambda x: x),
        _total_train_tokens=0,
        _tp_size=1,
        _metrics=defaultdict(lambda: defaultdict(list)),
    )
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if margin is not None:
        inputs["margin"] = margin

    def classifier(input_ids, attention_mask, **_):  # TRL passes the margin on to the model
        return model(input_ids=input_ids, attention_mask=attention_mask)

    return RewardTrainer.compute_loss(trainer, classifier, inputs)


@pytest.mark.parametrize(
    "coefficient, margin", [(None, None), (0.01, None), (None, [0.5, -1.0, 2.0]), (0.1, [1, 0, 3])]
)
def test_reward_model_loss_and_gradients_equal_trls(coefficient, margin):
    tokenizer = byte_tokenizer()
    algorithm = RewardModelConfig(center_rewards_coefficient=coefficient)
    module = RewardModelModule(tiny_qwen3(tokenizer, seed=1), tokenizer, algorithm)
    torch.nn.init.normal_(module.model.score.weight, std=1.0)  # rewards far from 0
    batch = collate_pairs(tokenize_pairs(PAIRS, tokenizer, 128), tokenizer.pad_token_id)
    if margin is not None:
        batch["margin"] = torch.tensor(margin, dtype=torch.float32)

    ours = module.pair_stats(batch)["loss"]
    ours.backward()
    our_grads = [p.grad.clone() for p in module.model.parameters()]
    module.model.zero_grad()
    theirs = trl_reward_loss(module.model, batch, coefficient, batch.get("margin"))
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    assert ours.item() > 0.1  # not a trivial batch
    for ours_grad, parameter in zip(our_grads, module.model.parameters(), strict=True):
        torch.testing.assert_close(ours_grad, parameter.grad, atol=1e-5, rtol=0)
    assert module.model.score.weight.grad.abs().sum() > 0


def test_the_classifier_shares_the_policy_body():
    tokenizer = byte_tokenizer()
    policy = tiny_qwen3(tokenizer)
    module = RewardModelModule(policy, tokenizer, RewardModelConfig())
    assert module.model.model is policy.model
    assert module.model.score.out_features == 1


@pytest.mark.integration
def test_a_lora_reward_model_is_refused_naming_the_key(tmp_path):
    overrides = [*FAST, "algorithm=reward_model", "eval.benchmarks=[]", "model.lora.r=4"]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "arm")
    assert record.status == "failed"
    assert "model.lora.r > 0" in record.error and "not supported" in record.error


def test_a_reward_model_run_with_benchmarks_is_refused_before_training():
    with pytest.raises(
        ConfigError, match=r"eval.benchmarks=\['addition'\]: algorithm=reward_model"
    ):
        compose_run_config(["algorithm=reward_model", "data=addition"])
    assert (
        compose_run_config(["algorithm=reward_model", "eval.benchmarks=[]"]).eval.benchmarks == []
    )


def test_a_reward_model_path_without_a_model_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"algorithm.rewards\[0\]=model:.*holds no saved model"):
        resolve_reward(f"model:{tmp_path}", "algorithm.rewards[0]")


@pytest.mark.integration
def test_reward_model_trains_exports_and_scores_as_a_grpo_reward(tmp_path):
    overrides = [*FAST, "algorithm=reward_model", "data=addition", "eval.benchmarks=[]"]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "arm")
    assert record.status == "completed", record.error
    assert record.hparams["algorithm.kind"] == "reward_model"
    assert {"val/loss", "val/accuracy", "val/margin"} <= set(record.metrics)
    assert json.loads((tmp_path / "arm" / "result.json").read_text())["status"] == "completed"

    model_dir = tmp_path / "arm" / "model"
    grpo = compose_run_config(["algorithm=grpo", f"algorithm.rewards=[model:{model_dir}]"])
    rewards = Rewards.of(grpo.algorithm)
    examples = [{"prompt": "12+5=", "completion": "17"}] * 2
    scores = rewards.item_scores(["17", "18"], examples)
    assert rewards.labels == ("reward_model",)
    assert all(math.isfinite(item["reward"]) for item in scores)
    assert scores[0]["reward"] != scores[1]["reward"]
    again = resolve_reward(f"model:{model_dir}", "k")(["17", "18"], examples)
    assert again == [item["reward"] for item in scores]

    # A GRPO run trained and scored with it, by path.
    grpo = [*FAST, "algorithm=grpo", "data=addition", "algorithm.num_generations=2"]
    grpo += ["algorithm.max_completion_length=4", f"algorithm.rewards=[model:{model_dir}]"]
    record = run_experiment(compose_run_config(grpo), job_dir=tmp_path / "grpo")
    assert record.status == "completed", record.error
    assert math.isfinite(record.metrics["train/rewards/reward_model"])
    assert math.isfinite(record.metrics["eval/addition/rewards/reward_model"])
