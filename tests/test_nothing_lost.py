"""Nothing trained is lost: a run killed (or out of disk) during its final validation, or after
training while it scores or exports, keeps what training measured; its re-run's record equals
an uninterrupted run's. A completed arm whose model is gone runs again rather than being
skipped; a failed export keeps the metrics; every file error names its file."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evsys import compose_run_config, run_experiment
from evsys.data.cache import CachedExamples
from evsys.data.tokenizer import byte_tokenizer
from evsys.evaluation.base import Benchmark
from evsys.models import export_model
from evsys.records import write_atomic
from tests.conftest import FAST, interrupt_cli, kill_cli_once, run_cli
from tests.tiny import tiny_qwen3

# The success metric is train/loss: a record that lost it fails the arm. Scoring 64 examples
# leaves time to kill the run between the end of training and its record. Validation at step 3
# only: trained.json first appears as training ends (not as a final validation starts).
ARGS = [
    *FAST, "data.num_eval=64", "eval.max_examples=64", "validation.every_n_steps=3",
    "experiment.success_metric.name=train/loss", "experiment.success_metric.mode=min",
]  # fmt: skip


def record_of(job_dir: Path) -> dict:
    return json.loads((job_dir / "result.json").read_text())


def same_results(resumed: dict, straight: dict) -> None:
    assert resumed["status"] == straight["status"] == "completed"
    assert resumed["metrics"] == straight["metrics"]
    assert "train/loss" in resumed["metrics"] and "val/loss" in resumed["metrics"]
    assert resumed["throughput"]["train_tokens"] == straight["throughput"]["train_tokens"]


def straight_record(args: list[str], root: Path) -> dict:
    """The record of an uninterrupted run of `args` (a CLI run, as the others)."""
    done = run_cli([*args, "hydra.run.dir=straight"], cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    return record_of(root / "straight")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    return straight_record(ARGS, tmp_path_factory.mktemp("straight"))


@pytest.mark.integration
def test_a_run_killed_after_training_resumes_with_every_metric(tmp_path, straight):
    job_dir = tmp_path / "killed"
    # SIGKILL once training has ended: the run dies while it scores or exports.
    kill_cli_once([*ARGS, "hydra.run.dir=killed"], tmp_path, job_dir / "trained.json")
    assert not (job_dir / "result.json").exists(), "killed too late: the record was written"
    assert json.loads((job_dir / "trained.json").read_text())["validated"] is True
    resumed = run_cli([*ARGS, "hydra.run.dir=killed"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = record_of(job_dir)
    assert record["resumed_from_step"] == 4  # nothing left to train: the measures were kept
    same_results(record, straight)
    assert (job_dir / "model" / "model.safetensors").is_file()


# One validation, at the last step (4), of 40 batches: time to kill the run during it.
LONG_VALIDATION = [
    *FAST, "data.num_eval=160", "validation.every_n_steps=4", "validation.num_batches=40",
]  # fmt: skip


@pytest.fixture(scope="module")
def straight_long_validation(tmp_path_factory) -> dict:
    return straight_record(LONG_VALIDATION, tmp_path_factory.mktemp("long_validation"))


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_run_killed_during_its_final_validation_validates_again_and_trains_nothing(
    tmp_path, straight_long_validation, signum
):
    job_dir, straight = tmp_path / "killed", straight_long_validation
    # trained.json appears as the final validation starts: the signal lands during it.
    run = [*LONG_VALIDATION, "hydra.run.dir=killed"]
    killed = interrupt_cli(run, tmp_path, job_dir / "trained.json", signum)
    assert killed.returncode in (-signal.SIGKILL, 143), killed.stdout[-2000:]
    kept = json.loads((job_dir / "trained.json").read_text())
    assert kept["validated"] is False, "killed too late: the final validation had ended"
    assert not (job_dir / "result.json").exists()
    assert kept["step"] == 4 and kept["tokens"] == straight["throughput"]["train_tokens"]
    assert kept["metrics"]["train/loss"] == straight["metrics"]["train/loss"]
    resumed = run_cli(run, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "step 4's validation was cut short" in resumed.stdout + resumed.stderr
    record = record_of(job_dir)
    assert record["resumed_from_step"] == 4  # validated again, trained nothing
    same_results(record, straight)
    assert json.loads((job_dir / "trained.json").read_text())["validated"] is True


@pytest.mark.integration
def test_a_half_written_export_is_redone_with_every_metric(tmp_path, straight):
    job_dir = tmp_path / "run"
    assert run_cli([*ARGS, "hydra.run.dir=run"], cwd=tmp_path).returncode == 0
    # As a kill -9 in the middle of the export leaves it: no record, the model half there.
    (job_dir / "result.json").unlink()
    (job_dir / "model").rename(job_dir / ".model.partial")
    weights = job_dir / ".model.partial" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    resumed = run_cli([*ARGS, "hydra.run.dir=run"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    same_results(record_of(job_dir), straight)
    assert (job_dir / "model" / "model.safetensors").stat().st_size > 1000
    assert not (job_dir / ".model.partial").exists()


@pytest.mark.integration
def test_a_completed_arm_whose_model_was_deleted_is_exported_again(tmp_path):
    sweep = [*ARGS, "hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out", "-m"]
    assert run_cli(sweep, tmp_path).returncode == 0
    job_dir = tmp_path / "sweep" / "default_seed0"
    first = record_of(job_dir)
    shutil.rmtree(job_dir / "model")
    again = run_cli(sweep, tmp_path)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-2000:]
    assert "its model sweep/default_seed0/model is missing" in output
    assert "1 of 1 job to run" in output and "completed (skipped)" not in output
    same_results(record_of(job_dir), first)
    assert (job_dir / "model" / "model.safetensors").is_file()
    # exported again: from now on it is skipped as any completed arm
    assert "0 of 1 job to run" in run_cli(sweep, tmp_path).stdout


class DiskFillsUp(Benchmark):
    """Scores, then (while DISK_FULL is set) leaves no room for a file over 200 kB, as the
    export's weights are: a full disk that strikes after scoring, met by real writes. (An
    environment variable: evsys imports this class under another module name than pytest.)"""

    name = "fills_up"

    def score(self, model, tokenizer):
        if os.environ.get(DISK_FULL):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
        return {"score": 1.0}


DISK_FULL = "EVSYS_TEST_DISK_FULL"


@pytest.fixture
def disk_full_after_scoring(monkeypatch):
    """DiskFillsUp fills the disk; `free()` (and the test's end) gives the room back."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.getsignal(signal.SIGXFSZ)

    def free() -> None:
        monkeypatch.delenv(DISK_FULL, raising=False)
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)

    monkeypatch.setenv(DISK_FULL, "1")
    yield free
    free()


@pytest.mark.integration
def test_a_failed_export_keeps_the_metrics_and_names_the_model_dir(
    tmp_path, disk_full_after_scoring
):
    benchmarks = "eval.benchmarks=[reversal,class:tests.test_nothing_lost.DiskFillsUp]"
    cfg = compose_run_config([*FAST, benchmarks])
    record = run_experiment(cfg, tmp_path)
    disk_full_after_scoring()
    stored = record_of(tmp_path)
    assert record.status == stored["status"] == "failed"
    assert f"cannot export the model to {tmp_path / 'model'}" in stored["error"]
    assert "File too large" in stored["error"]
    for metric in ("train/loss", "val/loss", "eval/reversal/exact_match", "eval/fills_up/score"):
        assert metric in stored["metrics"]
    assert "model" not in stored["artifacts"]
    assert not (tmp_path / "model").exists() and not (tmp_path / ".model.partial").exists()

    rerun = run_experiment(cfg, tmp_path)  # room again: scored and exported from last.ckpt
    assert rerun.completed and rerun.metrics == stored["metrics"]
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_a_full_disk_during_export_names_the_dir_and_keeps_the_last_export(tmp_path):
    tokenizer = byte_tokenizer()
    model, out_dir = tiny_qwen3(tokenizer), tmp_path / "model"
    export_model(model, tokenizer, out_dir, "merged")
    before = (out_dir / "model.safetensors").read_bytes()
    with file_size_limit(200_000):
        with pytest.raises(OSError, match=rf"cannot export the model to {out_dir}: .*too large"):
            export_model(model, tokenizer, out_dir, "merged")
    assert (out_dir / "model.safetensors").read_bytes() == before  # the last export, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .model.partial


def test_a_full_disk_names_the_file_being_written(tmp_path):
    path = tmp_path / "scores" / "reversal.jsonl"
    with file_size_limit(1000):
        with pytest.raises(OSError, match=rf"cannot write {path}: File too large"):
            write_atomic(path, lambda out: out.write(b"x" * 5000))
    assert list((tmp_path / "scores").iterdir()) == []  # no temp file left


EXAMPLES = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(12)]


@pytest.mark.parametrize("name", ["examples-train.jsonl", "tokens-train-64.offsets.npy"])
def test_an_unreadable_cache_entry_is_named_and_rebuilt(tmp_path, caplog, name):
    tokenizer = byte_tokenizer()
    first = CachedExamples(tmp_path, "train", lambda: EXAMPLES).tokenized(tokenizer, 64)
    entry = tmp_path / name
    entry.write_bytes(entry.read_bytes()[:30])  # broken outside evsys (a disk error)
    again = CachedExamples(tmp_path, "train", lambda: EXAMPLES)
    if name.startswith("tokens"):
        assert np.array_equal(again.tokenized(tokenizer, 64).offsets, first.offsets)
    else:
        assert again.examples() == EXAMPLES
    assert f"the data cache entry {entry} cannot be read" in caplog.text
    assert entry.stat().st_size > 30  # rebuilt


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """No file written inside may grow over `size` bytes: a real write stops part-way, as on a
    full disk (EFBIG rather than ENOSPC)."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
