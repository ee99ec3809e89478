"""algorithm=kto: the loss and its KL estimate against TRL 1.16's KTOTrainer, the mismatched
(KL) sequences against TRL's collator, labelled data from built-in tasks, the config's rules,
and a real run that completes, records and exports.

The oracle is TRL's own `KTOTrainer._compute_loss`, called on a minimal object that carries
the attributes it reads, with a stand-in model that returns the given log-probs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

import evsys
from evsys import compose_run_config, run_experiment
from evsys.data.formats import PREFERENCE, ExampleFormat
from evsys.data.sources import load_split
from evsys.data.tokenize import IGNORE_INDEX
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError, DataError
from evsys.lightning.kto import (
    LABELLED,
    collate_labelled,
    kl_estimate,
    kto_losses,
    tokenize_labelled,
)
from evsys.lightning.kto_config import KTOConfig
from tests.conftest import FAST, REPO, run_cli, shrunk_follow_up

ROWS = [
    {"prompt": "12+5=", "completion": "17", "label": True},
    {"prompt": "reverse abc=", "completion": "cab", "label": False},
    {"prompt": "sort dcba=", "completion": "abcd", "label": True},
    {"prompt": "3+4=", "completion": "8", "label": False},
]


class LogpModel(torch.nn.Module):
    """Stands in for TRL's fused-LM-head model: the per-token log-probs of the matched
    sequences (width 2) or of the mismatched KL ones (width 3), one scored token each."""

    def __init__(self, logps: torch.Tensor, kl_logps: torch.Tensor) -> None:
        super().__init__()
        self.logps, self.kl_logps = logps, kl_logps

    def forward(self, input_ids, **_):
        logps = self.logps if input_ids.shape[1] == 2 else self.kl_logps
        per_token = logps[:, None]
        zeros = torch.zeros_like(per_token)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros)


def trl_kto_loss(
    algorithm: KTOConfig, logps, kl_logps, ref_logps, ref_kl_logps, labels, other_kl=None
):
    """TRL 1.16's KTOTrainer._compute_loss on a batch whose log-probs are given; `other_kl`:
    a second process's KL estimate, which the first gather (the KL's) returns beside ours."""
    from trl.trainer.kto_trainer import KTOTrainer

    gathers = []

    def gather_for_metrics(value):
        gathers.append(value)
        if other_kl is not None and len(gathers) == 1:
            return torch.stack([value, torch.tensor(other_kl)])
        return value

    trainer = SimpleNamespace(
        loss_type=algorithm.loss_type,
        beta=algorithm.beta,
        desirable_weight=algorithm.desirable_weight,
        undesirable_weight=algorithm.undesirable_weight,
        calculate_KL=algorithm.loss_type == "kto",
        precompute_ref_logps=True,
        aux_loss_enabled=False,
        _tp_size=1,
        _total_train_tokens=0,
        _metrics=defaultdict(lambda: defaultdict(list)),
        accelerator=SimpleNamespace(
            device=torch.device("cpu"), gather_for_metrics=gather_for_metrics
        ),
    )
    trainer.model = LogpModel(logps, kl_logps)
    trainer._compute_kl_logps = KTOTrainer._compute_kl_logps.__get__(trainer)
    rows = len(labels)
    batch = {
        "input_ids": torch.zeros(rows, 2, dtype=torch.long),
        "attention_mask": torch.ones(rows, 2, dtype=torch.long),
        "completion_mask": torch.ones(rows, 2, dtype=torch.long),
        "KL_input_ids": torch.zeros(rows, 3, dtype=torch.long),
        "KL_attention_mask": torch.ones(rows, 3, dtype=torch.long),
        "KL_completion_mask": torch.ones(rows, 3, dtype=torch.long),
        "label": labels,
        "ref_logps": ref_logps,
        "ref_KL_logps": ref_kl_logps,
    }
    loss = KTOTrainer._compute_loss(trainer, trainer.model, batch, return_outputs=False)
    return loss, trainer._metrics["train"]["kl"][-1]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"beta": 0.5, "desirable_weight": 1.33, "undesirable_weight": 0.7},
        {"loss_type": "apo_zero_unpaired", "beta": 0.3, "undesirable_weight": 2.0},
    ],
)
@pytest.mark.parametrize("labels", [[True, False, True, False, False], [True, True, True]])
def test_kto_loss_and_gradient_equal_trls(settings, labels):
    algorithm = KTOConfig(**settings)
    labels = torch.tensor(labels)
    generator = torch.Generator().manual_seed(len(labels))
    # Log-ratios far from 0 (several nats), and a KL estimate that is positive.
    logps, ref_logps = (-20 * torch.rand(len(labels), generator=generator) for _ in range(2))
    kl_logps = -10 * torch.rand(len(labels), generator=generator)
    ref_kl_logps = kl_logps - 3 * torch.rand(len(labels), generator=generator)
    ours_in = logps.clone().requires_grad_()
    theirs_in = logps.clone().requires_grad_()

    kl = kl_estimate(kl_logps, ref_kl_logps) if algorithm.loss_type == "kto" else torch.tensor(0)
    losses, _ = kto_losses(algorithm, ours_in, ref_logps, labels, kl)
    ours = losses.mean()
    theirs, their_kl = trl_kto_loss(algorithm, theirs_in, kl_logps, ref_logps, ref_kl_logps, labels)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    assert kl.item() == pytest.approx(their_kl, abs=1e-5)
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=1e-5, rtol=0)
    assert ours_in.grad.abs().sum() > 0  # a loss that reaches the policy


@pytest.mark.parametrize("other_kl", [0.5, -3.0])
def test_with_two_processes_the_kl_estimate_averages_then_clamps_as_trls(other_kl):
    algorithm, labels = KTOConfig(), torch.tensor([True, False, False])
    logps, ref_logps = torch.tensor([-3.0, -5.0, -2.0]), torch.tensor([-4.0, -4.0, -4.0])
    kl_logps, ref_kl_logps = torch.tensor([-2.0, -3.0, -4.0]), torch.tensor([-3.0, -4.0, -5.0])

    def gather(mean):
        return torch.stack([mean, torch.tensor(other_kl)])

    kl = kl_estimate(kl_logps, ref_kl_logps, gather)  # this process's own estimate is 1
    ours = kto_losses(algorithm, logps, ref_logps, labels, kl)[0].mean()
    theirs, their_kl = trl_kto_loss(
        algorithm, logps, kl_logps, ref_logps, ref_kl_logps, labels, other_kl
    )
    assert kl.item() == pytest.approx(their_kl) == pytest.approx(max(0, (1 + other_kl) / 2))
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)


def test_the_kl_estimate_is_clamped_at_zero_and_detached():
    logps = torch.tensor([-3.0, -4.0], requires_grad=True)
    kl = kl_estimate(logps, torch.tensor([-1.0, -1.0]))  # the policy below the reference
    assert kl.item() == 0 and not kl.requires_grad


def test_the_mismatched_sequences_equal_trls():
    """Row i's KL sequence is its prompt with row i-1's completion, cyclically: TRL's rotation
    (kto_trainer.py, add_kl_completion_ids), padded by TRL's own collator."""
    from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

    tokenizer = byte_tokenizer()
    rows = tokenize_labelled(ROWS, tokenizer)
    completions = [row["completion_ids"] for row in rows]
    kl_completions = [completions[-1]] + completions[:-1]  # TRL's add_kl_completion_ids
    theirs = DataCollatorForUnpairedPreference(pad_token_id=tokenizer.pad_token_id)(
        [{**row, "KL_completion_ids": kl} for row, kl in zip(rows, kl_completions, strict=True)]
    )
    ours = collate_labelled(rows, tokenizer.pad_token_id, max_length=128)
    assert torch.equal(ours["kl_input_ids"], theirs["KL_input_ids"])
    assert torch.equal(ours["kl_attention_mask"], theirs["KL_attention_mask"])
    assert torch.equal(ours["kl_labels"] != IGNORE_INDEX, theirs["KL_completion_mask"].bool())
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["label"], theirs["label"])


def test_built_in_tasks_emit_labelled_rows_of_right_and_near_miss_answers():
    data = compose_run_config(["data=addition", "data.num_train=200"]).data
    rows = load_split(data, "train", None, LABELLED)
    assert len(rows) == 200 and 60 < sum(row["label"] for row in rows) < 140
    for row in rows:
        a, b = row["prompt"].rstrip("=").split("+")
        assert (int(row["completion"]) == int(a) + int(b)) == row["label"], row
    assert len({row["prompt"] for row in rows}) == 200  # unpaired: each problem once
    assert load_split(data, "train", None, LABELLED) == rows  # seeded


def test_the_data_cache_keeps_task_rows_of_formats_apart():
    plain = ExampleFormat("labelled", ("prompt", "completion", "label"), LABELLED.to_example)
    assert str(plain) == "labelled(prompt,completion,label)"
    assert str(LABELLED) == f"{plain} from evsys.lightning.kto.task_labelled_examples"


def test_labelled_data_without_a_boolean_label_is_refused_naming_the_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [ROWS[0], {**ROWS[1], "label": "ok"}]))
    data = compose_run_config([f"data.dataset_name={path}"]).data
    with pytest.raises(DataError, match="row 1: ValueError: label 'ok' is not a boolean"):
        load_split(data, "train", None, LABELLED)


def test_kto_config_rules():
    with pytest.raises(ConfigError, match="algorithm.batch_size=1 with algorithm.loss_type=kto"):
        compose_run_config(["algorithm=kto", "algorithm.batch_size=1"])
    cfg = compose_run_config(
        ["algorithm=kto", "algorithm.batch_size=1", "algorithm.loss_type=apo_zero_unpaired"]
    )
    assert cfg.algorithm.batch_size == 1
    with pytest.raises(ConfigError, match="algorithm.desirable_weight"):
        compose_run_config(["algorithm=kto", "algorithm.desirable_weight=0"])
    with pytest.raises(ConfigError, match="algorithm.loss_type"):
        compose_run_config(["algorithm=kto", "algorithm.loss_type=sigmoid"])


@pytest.mark.integration
def test_kto_trains_on_addition_records_and_exports(tmp_path):
    overrides = [*FAST, "algorithm=kto", "data=addition", "algorithm.batch_size=8"]
    record = run_experiment(compose_run_config(overrides), job_dir=tmp_path / "arm")
    assert record.status == "completed", record.error
    assert record.hparams["algorithm.kind"] == "kto"
    assert {"val/loss", "val/kl"} <= set(record.metrics)
    assert 0 < record.metrics["val/loss"] < 1  # each row's loss is 1 - sigmoid(...)
    assert (tmp_path / "arm" / "model" / "config.json").exists()
    assert json.loads((tmp_path / "arm" / "result.json").read_text())["status"] == "completed"


@pytest.mark.integration
def test_kto_trains_on_a_labelled_file_through_the_cli(tmp_path):
    """As the plugin test (tests/test_algorithm_plugin.py) trains its toy algorithm: KTO's own
    data shape, declared by its module, read from a user's file, end to end by the CLI."""
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1 + (i % 2)), "label": i % 2 == 0}
            for i in range(60)]  # fmt: skip
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["algorithm=kto", f"data.dataset_name={data}", *FAST, "hydra.run.dir=run"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert "eval/labelled/loss" in record["metrics"] and "val/kl" in record["metrics"]
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    args = ["algorithm=kto", f"data.dataset_name={unlabelled}", *FAST, "hydra.run.dir=bad"]
    assert run_cli(args, cwd=tmp_path).returncode != 0
    record = json.loads((tmp_path / "bad" / "result.json").read_text())
    assert "column 'label'" in record["error"] and "'labelled'" in record["error"]


# --------------------------------------------------------------------- preset: kto_vs_dpo
def test_kto_vs_dpo_preset_plans_a_fair_comparison_at_three_seeds():
    """+experiment=kto_vs_dpo: kto and dpo, 3 seeds each, the same optimizer settings and
    beta, and the same training prompts in one pass: one KTO row or one DPO pair per problem
    (no parent here: the plan only)."""
    preset = REPO / "evsys/conf/experiment/kto_vs_dpo.yaml"
    runs = {(run.arm, run.seed): run for run in evsys.expand_runs(preset, ["model.init_from=null"])}
    assert sorted(runs) == [(a, s) for a in ("dpo", "kto") for s in (0, 1, 2)]
    dpo, kto = runs["dpo", 0], runs["kto", 0]
    assert (dpo.algorithm.kind, kto.algorithm.kind) == ("dpo", "kto")
    for key in ("lr", "beta", "max_steps", "batch_size", "warmup_steps"):
        assert getattr(dpo.algorithm, key) == getattr(kto.algorithm, key), key
    assert dpo.data == kto.data
    assert kto.data.num_train == kto.algorithm.max_steps * kto.algorithm.batch_size  # one pass
    pairs = load_split(dpo.data, "train", None, PREFERENCE)
    rows = load_split(kto.data, "train", None, LABELLED)
    assert [pair["prompt"] for pair in pairs] == [row["prompt"] for row in rows]
    assert dpo.experiment.prediction.better == "kto" and dpo.experiment.baseline == "dpo"


@pytest.mark.slow
def test_kto_vs_dpo_preset_end_to_end(sft_parent):
    """Both commands of the preset, with 4 steps on 64 problems instead of 200 on 3200 (the
    measured full size is in docs/algorithms.md)."""
    shrunk = ["algorithm.max_steps=4", "algorithm.warmup_steps=1", "data.num_train=64"]
    shrunk_follow_up(sft_parent, "kto_vs_dpo", shrunk, arms=("dpo", "kto"))
