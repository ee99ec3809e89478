"""algorithm=dpo: losses against TRL, learning on pairs the model prefers, margins, real runs,
preference data and its errors, precomputed reference log-probs.

The oracle is TRL (a test-only dependency evsys shares no code with): its DPOTrainer
(sigmoid, ipo, and the "sft" term of RPO) and CPOTrainer (simpo) compute the loss of a batch
with the same policy and reference weights as evsys, on the same token ids.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evsys import compose_run_config, registry, run_experiment
from evsys.data.packing import collate_padded
from evsys.data.sources import load_split
from evsys.data.tasks import TASKS, get_task
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError
from evsys.lightning.dpo import DPOModule, collate_pairs, tokenize_pairs
from evsys.lightning.dpo_config import DPOConfig
from evsys.models import load_model
from tests.conftest import FAST, REPO, arm_log_dir, assert_killed_run_resumes_exactly, run_cli

SMALL = ["model.hidden_size=64", "model.num_layers=2", "model.intermediate_size=128"]
DPO = ["algorithm=dpo", "data=addition", *SMALL]
PAIRS = [
    {"prompt": "12+5=", "completion": "17", "rejected": "18"},
    {"prompt": "reverse abc=", "completion": "cba", "rejected": "cab"},
    {"prompt": "sort dcba=", "completion": "abcd", "rejected": "abdcx"},  # lengths differ
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def dpo_module(algorithm: DPOConfig, seed: int = 0, lora: bool = False) -> DPOModule:
    """A small policy whose weights moved away from its frozen reference (the start)."""
    overrides = [*SMALL, "model.lora.r=4"] if lora else SMALL
    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    module = DPOModule(
        load_model(compose_run_config(overrides).model, tokenizer), tokenizer, algorithm
    )
    with torch.no_grad():
        for parameter in module.model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    return module


# ------------------------------------------------------------------------------ the oracle: TRL
@pytest.fixture(scope="module")
def trl():
    return pytest.importorskip("trl")


def trl_dpo_loss(trl, module: DPOModule, rows: list[dict], tmp: Path, **config) -> torch.Tensor:
    """TRL's DPO loss of the pairs, on fresh copies of the policy and reference (TRL patches
    the models it is given), in float32 (TRL's configs default to bf16 autocast)."""
    from datasets import Dataset
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    texts = [
        {"prompt": p["prompt"], "chosen": p["completion"], "rejected": p["rejected"]} for p in PAIRS
    ]
    args = trl.DPOConfig(output_dir=str(tmp), report_to="none", use_cpu=True, bf16=False, **config)
    trainer = trl.DPOTrainer(
        model=copy.deepcopy(module.model),
        ref_model=copy.deepcopy(module.reference.copy),
        args=args,
        train_dataset=Dataset.from_list(texts),
        processing_class=module.tokenizer,
    )
    batch = DataCollatorForPreference(pad_token_id=module.tokenizer.pad_token_id)(
        [_trl_ids(row) for row in rows]
    )
    return trainer.compute_loss(trainer.model, batch)


def _trl_ids(row: dict) -> dict:
    prompt = sum(label == -100 for label in row["chosen_labels"])
    return {
        "prompt_ids": row["chosen_input_ids"][:prompt],
        "chosen_ids": row["chosen_input_ids"][prompt:],
        "rejected_ids": row["rejected_input_ids"][prompt:],
    }


def trl_simpo_loss(trl, module: DPOModule, rows: list[dict], tmp: Path, **config) -> torch.Tensor:
    from datasets import Dataset
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    texts = [
        {"prompt": p["prompt"], "chosen": p["completion"], "rejected": p["rejected"]} for p in PAIRS
    ]
    args = CPOConfig(
        output_dir=str(tmp), report_to="none", use_cpu=True, bf16=False, loss_type="simpo", **config
    )
    trainer = CPOTrainer(
        model=copy.deepcopy(module.model),
        args=args,
        train_dataset=Dataset.from_list(texts),
        processing_class=module.tokenizer,
    )
    batch = {}
    for side in ("chosen", "rejected"):
        sequences = [
            {"input_ids": r[f"{side}_input_ids"], "labels": r[f"{side}_labels"]} for r in rows
        ]
        padded = collate_padded(sequences, module.tokenizer.pad_token_id)
        batch[f"{side}_input_ids"] = padded["input_ids"]
        batch[f"{side}_attention_mask"] = padded["attention_mask"]
        batch[f"{side}_labels"] = padded["labels"]
    loss, _ = trainer.get_batch_loss_metrics(trainer.model, batch)
    return loss


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"loss_type": "sigmoid", "beta": 0.3}, {"beta": 0.3, "loss_type": ["sigmoid"]}),
        ({"loss_type": "ipo", "beta": 0.3}, {"beta": 0.3, "loss_type": ["ipo"]}),
        (
            {"loss_type": "sigmoid", "beta": 0.5, "sft_weight": 0.7},
            {"beta": 0.5, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.7]},
        ),
    ],
)
@pytest.mark.integration
def test_dpo_and_ipo_losses_equal_trls(trl, tmp_path, ours, theirs):
    module = dpo_module(DPOConfig(**ours))
    rows = tokenize_pairs(PAIRS, module.tokenizer, 128)
    loss = module.pair_stats(collate_pairs(rows, module.tokenizer.pad_token_id))["loss"]
    expected = trl_dpo_loss(trl, module, rows, tmp_path, **theirs)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_simpo_loss_equals_trls(trl, tmp_path, smoothing):
    ours = DPOConfig(loss_type="simpo", beta=2.0, simpo_gamma=1.0, label_smoothing=smoothing)
    module = dpo_module(ours)
    assert module.reference is None  # reference-free: no copy is made
    rows = tokenize_pairs(PAIRS, module.tokenizer, 128)
    loss = module.pair_stats(collate_pairs(rows, module.tokenizer.pad_token_id))["loss"]
    theirs = {"beta": 2.0, "simpo_gamma": 1.0, "label_smoothing": smoothing, "cpo_alpha": 0.0}
    expected = trl_simpo_loss(trl, module, rows, tmp_path, **theirs)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


# --------------------------------------------------------------------------------- properties
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "simpo"])
def test_swapping_chosen_and_rejected_flips_the_margins(loss_type):
    module = dpo_module(DPOConfig(loss_type=loss_type, beta=0.5))
    rows = tokenize_pairs(PAIRS, module.tokenizer, 128)
    swapped = [
        {
            "chosen_input_ids": r["rejected_input_ids"],
            "chosen_labels": r["rejected_labels"],
            "rejected_input_ids": r["chosen_input_ids"],
            "rejected_labels": r["chosen_labels"],
        }
        for r in rows
    ]
    pad = module.tokenizer.pad_token_id
    with torch.no_grad():
        stats = module.pair_stats(collate_pairs(rows, pad))
        flipped = module.pair_stats(collate_pairs(swapped, pad))
    assert stats["rewards/margins"].abs() > 1e-4
    assert flipped["rewards/margins"].item() == pytest.approx(
        -stats["rewards/margins"].item(), abs=1e-6
    )
    assert flipped["rewards/chosen"].item() == pytest.approx(
        stats["rewards/rejected"].item(), abs=1e-6
    )
    assert flipped["rewards/accuracy"].item() == pytest.approx(1 - stats["rewards/accuracy"].item())


def test_lora_reference_is_the_policy_with_adapters_off():
    module = dpo_module(DPOConfig(), lora=True)
    assert module.reference.copy is None  # no second model in memory
    rows = tokenize_pairs(PAIRS, module.tokenizer, 128)
    batch = collate_pairs(rows, module.tokenizer.pad_token_id)
    with torch.no_grad():
        policy, _ = module.sequence_logps(module.model, batch)
        reference, _ = module.sequence_logps(module.reference, batch)
        with module.model.disable_adapter():
            base, _ = module.sequence_logps(module.model, batch)
    assert not torch.allclose(policy, reference)  # the adapters moved
    assert torch.equal(reference, base)
    assert module.model.training  # the reference pass does not leave the policy in eval mode


def test_bad_algorithm_values_are_config_errors():
    with pytest.raises(
        ConfigError, match="algorithm.loss_type='kto' is not one of sigmoid, ipo, simpo"
    ):
        compose_run_config(["algorithm=dpo", "algorithm.loss_type=kto"])
    with pytest.raises(ConfigError, match="algorithm.beta=0.0 must be positive"):
        compose_run_config(["algorithm=dpo", "algorithm.beta=0"])
    with pytest.raises(
        ConfigError, match="label_smoothing=0.1 has no meaning for algorithm.loss_type=ipo"
    ):
        compose_run_config(
            ["algorithm=dpo", "algorithm.loss_type=ipo", "algorithm.label_smoothing=0.1"]
        )


# --------------------------------------------------------------------------------------- data
@pytest.mark.parametrize("name", sorted(TASKS))
def test_tasks_give_seeded_near_miss_pairs(name):
    task = get_task(name)
    pairs = task.preference_examples("train", 300, seed=3)
    plain = task.examples("train", 300, seed=3)
    assert [p["prompt"] for p in pairs] == [ex["prompt"] for ex in plain]
    assert [p["chosen"] for p in pairs] == [ex["completion"] for ex in plain]
    assert all(p["rejected"] != p["chosen"] for p in pairs)
    assert all(len(p["rejected"]) == len(p["chosen"]) for p in pairs if name != "addition")
    assert pairs == task.preference_examples("train", 300, seed=3)  # deterministic
    if name == "addition":
        assert all(abs(int(p["rejected"]) - int(p["chosen"])) in (1, 10) for p in pairs)
    else:  # one swap of neighbours, or one letter changed where all letters are equal
        assert all(
            sorted(p["rejected"]) == sorted(p["chosen"]) for p in pairs if len(set(p["chosen"])) > 1
        )


def test_preference_files_load_as_text_messages_or_mapped_columns(tmp_path):
    text = write_jsonl(
        tmp_path / "text.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}] * 4
    )
    chat = [
        {
            "prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        }
    ] * 4
    messages = write_jsonl(tmp_path / "chat.jsonl", chat)
    mapped = write_jsonl(
        tmp_path / "mapped.jsonl", [{"question": "q", "good": "a", "bad": "b"}] * 4
    )

    def train(path: Path, *overrides: str) -> list[dict]:
        cfg = compose_run_config([f"data.dataset_name={path}", *overrides])
        return load_split(cfg.data, "train", byte_tokenizer(), "preference")

    assert train(text)[0] == {"prompt": "q", "completion": "a", "rejected": "b"}
    assert train(messages)[0] == {
        "prompt": "<|user|>\nq\n<|assistant|>\n",
        "completion": "a",
        "rejected": "b",
    }
    columns = [
        "data.columns.prompt=question",
        "data.columns.chosen=good",
        "data.columns.rejected=bad",
    ]
    assert train(mapped, *columns)[0] == {"prompt": "q", "completion": "a", "rejected": "b"}
    # SFT detects the format by itself and learns the chosen answers.
    sft = load_split(compose_run_config([f"data.dataset_name={text}"]).data, "train")
    assert sft[0]["completion"] == "a"


@pytest.mark.integration
def test_preference_data_without_rejected_fails_before_training(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "q", "chosen": "a"}] * 8)
    cfg = compose_run_config([*FAST, "algorithm=dpo", f"data.dataset_name={path}"])
    record = run_experiment(cfg, job_dir=tmp_path / "arm")
    assert record.status == "failed"
    assert "DataError" in record.error
    assert "column 'rejected'" in record.error and "['chosen', 'prompt']" in record.error
    assert not (tmp_path / "arm" / "checkpoints").exists()  # nothing trained
    with pytest.raises(ConfigError, match="set data.format=preference or auto"):
        load_split(
            compose_run_config([f"data.dataset_name={path}", "data.format=chat"]).data,
            "train",
            None,
            "preference",
        )


def test_eval_examples_keep_the_chosen_answer_as_reference():
    cfg = compose_run_config(["data=addition", "data.num_eval=8"])
    held_out = load_split(cfg.data, "eval", None, "preference")
    plain = load_split(cfg.data, "eval")
    assert [(ex["prompt"], ex["completion"]) for ex in held_out] == [
        (ex["prompt"], ex["completion"]) for ex in plain
    ]
    assert all(ex["rejected"] != ex["completion"] for ex in held_out)


# -------------------------------------------------------------------------------------- runs
def scalars(job_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(arm_log_dir(job_dir)))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


@pytest.mark.integration
def test_a_model_that_prefers_chosen_learns_to_accuracy_one(tmp_path):
    """SFT on the chosen answers first, so the model prefers them; DPO from there."""
    rows = [{"prompt": f"q{i}=", "chosen": "yes", "rejected": "no"} for i in range(64)]
    data = [f"data.dataset_name={write_jsonl(tmp_path / 'prefs.jsonl', rows)}", *SMALL, *FAST]
    sft = compose_run_config([*data, "algorithm.max_steps=15", "algorithm.lr=3e-3"])
    assert run_experiment(sft, job_dir=tmp_path / "sft").status == "completed"
    start = f"model.init_from={tmp_path / 'sft' / 'model'}"

    # Reference-free SimPO sees the preference at once: every pair is ranked right.
    simpo = DPOConfig(loss_type="simpo", beta=2.0)
    tokenizer = byte_tokenizer()
    model = load_model(compose_run_config([*data, start]).model, tokenizer)
    module = DPOModule(model, tokenizer, simpo)
    batch = collate_pairs(
        tokenize_pairs(
            load_split(compose_run_config(data).data, "eval", None, "preference"), tokenizer, 32
        ),
        tokenizer.pad_token_id,
    )
    with torch.no_grad():
        assert module.pair_stats(batch)["rewards/accuracy"].item() == 1.0

    dpo = compose_run_config(
        [
            *data,
            start,
            "algorithm=dpo",
            "algorithm.max_steps=12",
            "algorithm.lr=1e-3",
            "algorithm.beta=0.5",
            "validation.every_n_steps=12",
        ]
    )
    record = run_experiment(dpo, job_dir=tmp_path / "dpo")
    assert record.status == "completed", record.error
    assert record.metrics["val/rewards/accuracy"] >= 0.95
    assert record.metrics["val/rewards/margins"] > 0
    losses = scalars(tmp_path / "dpo", "train/loss")
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start
    assert losses[-1] < losses[0] - 0.05
    assert scalars(tmp_path / "dpo", "train/rewards/accuracy")[-1] >= 0.95


@pytest.mark.integration
def test_precomputed_reference_logps_give_the_same_run(tmp_path):
    records = {}
    for precompute in ("false", "true"):
        cfg = compose_run_config([*FAST, *DPO, f"algorithm.precompute_ref_logps={precompute}"])
        records[precompute] = run_experiment(cfg, job_dir=tmp_path / precompute)
        assert records[precompute].status == "completed", records[precompute].error
    same, fresh = records["true"].metrics, records["false"].metrics
    assert same.keys() == fresh.keys()
    for key in same:
        assert same[key] == pytest.approx(fresh[key], abs=1e-5), key
    # The checkpoint holds the policy only: no reference weights ride along.
    state = torch.load(tmp_path / "true" / "checkpoints" / "last.ckpt", weights_only=False)[
        "state_dict"
    ]
    assert all(key.startswith("model.") for key in state)


@pytest.mark.integration
def test_cli_trains_dpo_offline(tmp_path):
    done = run_cli([*FAST, *DPO, f"hydra.run.dir={tmp_path / 'arm'}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "arm" / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    metrics = record["metrics"]
    for key in (
        "val/loss",
        "val/rewards/accuracy",
        "val/rewards/margins",
        "eval/addition/exact_match",
    ):
        assert key in metrics, key
    for tag in (
        "train/loss",
        "train/rewards/chosen",
        "train/rewards/rejected",
        "train/rewards/margins",
        "train/rewards/accuracy",
    ):
        assert len(scalars(tmp_path / "arm", tag)) == 4, tag


@pytest.mark.integration
def test_cli_trains_dpo_with_lora(tmp_path):
    args = [
        *FAST,
        *DPO,
        "model.lora.r=4",
        "model.lora.export=adapter",
        f"hydra.run.dir={tmp_path / 'arm'}",
    ]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "arm" / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert (tmp_path / "arm" / "model" / "adapter_config.json").is_file()


@pytest.mark.integration
def test_dpo_sweep_completes_and_concludes(tmp_path):
    preset = tmp_path / "presets" / "experiment" / "dpo_losses.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text(
        "# @package _global_\n"
        "defaults:\n  - override /algorithm: dpo\n  - override /data: addition\n"
        "experiment:\n  name: dpo_losses\n  hypothesis: IPO beats DPO on held-out pairs\n"
        "  success_metric: {name: val/rewards/accuracy, mode: max}\n"
        "  arms:\n    dpo: {algorithm.loss_type: sigmoid}\n    ipo: {algorithm.loss_type: ipo}\n"
    )
    sweep = tmp_path / "sweep"
    args = ["--config-dir", str(tmp_path / "presets"), "+experiment=dpo_losses", *FAST, *SMALL]
    args += [f"hydra.sweep.dir={sweep}", f"experiment.stores.outputs_root={tmp_path / 'out'}", "-m"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    conclusion = json.loads((sweep / "conclusion.json").read_text())
    assert {group["arm"] for group in conclusion["groups"]} == {"dpo", "ipo"}
    assert conclusion["verdict"] in ("supported", "refuted", "inconclusive")


@pytest.mark.slow  # three CLI runs: about a minute on a quiet 2-core machine
def test_killed_dpo_arm_resumes_to_the_same_metrics(tmp_path):
    """The resumed run rebuilds its reference from the starting weights, not the checkpoint's
    (with precomputed log-probs, the case where getting it wrong would show)."""
    args = [*FAST, *DPO, "algorithm.max_steps=12", "algorithm.precompute_ref_logps=true"]
    assert_killed_run_resumes_exactly(args, tmp_path)


@pytest.mark.slow
def test_sft_then_dpo_preset_runs_end_to_end(tmp_path):
    """The documented two-step workflow (docs/algorithms.md), shortened."""
    outputs = tmp_path / "outputs"
    short = ["algorithm.max_steps=40", "data.num_eval=64", "eval.max_examples=64"]
    parent = run_cli(
        ["+experiment=sft_addition", *short, f"experiment.stores.outputs_root={outputs}", "-m"],
        cwd=tmp_path,
    )
    assert parent.returncode == 0, parent.stderr[-3000:]
    (parent_experiment,) = registry.list_experiments(outputs)
    child = run_cli(
        [
            "+experiment=sft_then_dpo",
            f"experiment.parent_experiment_id={parent_experiment['id']}",
            *short,
            "experiment.n_repeats=1",
            f"experiment.stores.outputs_root={outputs}",
            "-m",
        ],
        cwd=tmp_path,
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    sweep = next((outputs / "sft_then_dpo").iterdir())
    conclusion = json.loads((sweep / "conclusion.json").read_text())
    assert {group["arm"] for group in conclusion["groups"]} == {"sft", "dpo"}
    assert REPO.joinpath("docs", "algorithms.md").read_text().count("sft_then_dpo") >= 2
