"""backend=fsdp: two CPU processes (gloo) sharding the tiny model with FSDP2 train exactly as one
process taking the same global batch; sharded checkpoints resume after a kill; the export is
the full model, with the sharded model's logits. Refused combinations name themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM

from evsys import compose_run_config
from evsys.errors import ConfigError
from evsys.lightning.sharding import _swap_in, restore_interrupted_save
from evsys.validate import validate_run_config
from tests.conftest import (
    FAST,
    REPO,
    arm_log_dir,
    assert_killed_run_resumes_exactly,
    cli_env,
    run_cli,
)

# Each of the 2 processes takes 4 rows a step: the global batch of one process taking 8.
STEPS = [*FAST, "algorithm.max_steps=6", "algorithm.warmup_steps=2"]
PER_PROCESS = [*STEPS, "algorithm.batch_size=4"]
SHARDED = [*PER_PROCESS, "backend=fsdp"]
SINGLE = [*STEPS, "algorithm.batch_size=8"]
SMALL = ["model.hidden_size=64", "model.num_layers=2"]
DPO = ["algorithm=dpo", "data=addition", *SMALL]
GRPO = ["algorithm=grpo", "data=addition", "algorithm.num_generations=4", *SMALL]
GRPO += ["algorithm.max_completion_length=4", "algorithm.lr=1e-3"]


def scalars(job_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(arm_log_dir(job_dir)))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(model_dir).state_dict()


def train_both(tmp_path: Path, extra: list[str], backend: str = "fsdp") -> tuple[Path, Path]:
    sharded = [*PER_PROCESS, f"backend={backend}"]
    for name, args in (("sharded", sharded), ("single", SINGLE)):
        done = run_cli([*args, *extra, f"hydra.run.dir={name}"], cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "sharded" / "result.json").read_text())
    assert record["hparams"]["backend.strategy"] == backend
    assert record["hparams"]["backend.devices"] == 2
    return tmp_path / "sharded", tmp_path / "single"


def assert_same_training(sharded: Path, single: Path, tag: str) -> None:
    curve, expected = scalars(sharded, tag), scalars(single, tag)
    assert len(curve) == len(expected) == 6
    assert curve == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert len(set(expected)) > 1  # the model changed: the curves are not flat
    mine, theirs = weights(sharded / "model"), weights(single / "model")
    assert mine.keys() == theirs.keys()
    for name, value in mine.items():
        torch.testing.assert_close(value, theirs[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["fsdp", pytest.param("ddp", marks=pytest.mark.slow)])
def test_two_processes_train_sft_as_one_process_with_the_global_batch(tmp_path, backend):
    """The SFT loss is the token mean over both processes' rows (global_mean_loss), so even
    with different token counts per process every step equals the one-process step."""
    sharded, single = train_both(tmp_path, [], backend)
    assert_same_training(sharded, single, "train/loss")
    if backend == "fsdp":  # a sharded checkpoint: one file per process and meta.pt
        assert (sharded / "checkpoints" / "last.ckpt" / "meta.pt").is_file()
        assert len(list((sharded / "checkpoints" / "last.ckpt").glob("*.distcp"))) == 2


@pytest.mark.slow
def test_two_sharded_processes_train_dpo_as_one_process_with_the_global_batch(tmp_path):
    sharded, single = train_both(tmp_path, DPO)
    assert_same_training(sharded, single, "train/loss")


@pytest.mark.slow
def test_export_is_the_full_model_with_the_sharded_models_logits(tmp_path):
    """Untied embeddings here (the LM head a parameter of its own in the root unit); the
    equality tests above export tied ones."""
    job_dir = tmp_path / "arm"
    job_dir.mkdir()
    args = [*SHARDED, "model.tie_word_embeddings=false"]
    command = [sys.executable, str(REPO / "tests" / "fsdp_worker.py"), str(job_dir), *args]
    done = subprocess.run(command, cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    from tests.fsdp_worker import PROBE

    exported = AutoModelForCausalLM.from_pretrained(job_dir / "model").eval()
    with torch.no_grad():
        logits = exported(input_ids=PROBE).logits
    assert not exported.config.tie_word_embeddings
    torch.testing.assert_close(logits, torch.load(job_dir / "sharded_logits.pt"))


@pytest.mark.slow
def test_a_killed_sharded_run_resumes_exactly(tmp_path):
    assert_killed_run_resumes_exactly([*SHARDED, "algorithm.max_steps=10"], tmp_path)


def test_a_save_killed_between_its_renames_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    (path / "old").mkdir(parents=True)
    (partial := tmp_path / "last.ckpt.partial").mkdir()
    (partial / "new").touch()
    _swap_in(partial, path)
    assert (path / "new").exists() and not partial.exists()
    path.rename(tmp_path / "last.ckpt.old")  # killed after the first rename
    restore_interrupted_save(path)
    assert (path / "new").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.lora.r=4", "model.lora.r > 0"),
        ("backend.compile=true", "backend.compile=true"),
        ("validation.benchmarks_every_n_steps=2", "validation.benchmarks_every_n_steps"),
    ],
)
def test_unsupported_combinations_are_refused_by_name(override, named):
    with pytest.raises(ConfigError, match=named.replace("+", r"\+")):
        validate_run_config(compose_run_config(["backend=fsdp", override]))


@pytest.mark.slow
def test_a_killed_sharded_grpo_run_resumes_exactly(tmp_path):
    """GRPO's rollouts end after different numbers of tokens on the two processes; sampling
    goes on until both are done (every forward of the sharded model is a collective). Each
    process samples from its own generator, so GRPO is not compared with one process."""
    args = [*SHARDED, *GRPO, "algorithm.batch_size=2", "algorithm.max_steps=10"]
    assert_killed_run_resumes_exactly(args, tmp_path)
