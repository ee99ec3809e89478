"""One arm end to end, in process: record, export, checkpoint, TensorBoard, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evsys import compose_run_config, run_experiment
from tests.conftest import FAST


@pytest.fixture(scope="module")
def finished_arm(tmp_path_factory):
    job_dir = tmp_path_factory.mktemp("arm")
    cfg = compose_run_config([*FAST, "data=addition", "seed=3", "tags=[smoke]"])
    return run_experiment(cfg, job_dir=job_dir), job_dir


def test_record_has_every_field(finished_arm):
    result, job_dir = finished_arm
    record = json.loads((job_dir / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert record["seed"] == 3 and record["arm"] == "default"
    for key in ("eval/addition/exact_match", "eval/addition/loss", "val/loss", "train/loss"):
        assert isinstance(record["metrics"][key], float), key
    assert 0.0 <= record["metrics"]["eval/addition/exact_match"] <= 1.0
    assert record["throughput"]["tokens_per_second"] > 0
    assert record["throughput"]["train_tokens"] > 0
    assert set(record["timings"]) >= {"setup", "train", "eval", "total"}
    assert len(record["group_id"]) == 12
    assert record["hparams"]["algorithm.lr"] == pytest.approx(3e-3)
    assert (job_dir / record["artifacts"]["checkpoint"]).is_file()
    assert result.metrics == record["metrics"]


@pytest.mark.integration
def test_export_loads_with_plain_transformers(finished_arm):
    _, job_dir = finished_arm
    script = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "d = sys.argv[1]\n"
        "tok = AutoTokenizer.from_pretrained(d)\n"
        "model = AutoModelForCausalLM.from_pretrained(d)\n"
        "ids = tok('12+34=', return_tensors='pt').input_ids\n"
        "out = model.generate(ids, max_new_tokens=3, do_sample=False)\n"
        "print(type(model).__name__, out.shape[1] > ids.shape[1])\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(job_dir / "model")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Qwen3ForCausalLM True" in done.stdout
    assert (job_dir / "model" / "model.safetensors").is_file()


def test_tensorboard_has_one_train_loss_point_per_logged_step(finished_arm):
    _, job_dir = finished_arm
    events = EventAccumulator(str(job_dir / "tensorboard"))
    events.Reload()
    steps = [event.step for event in events.Scalars("train/loss")]
    assert len(steps) == 4 and len(set(steps)) == 4  # max_steps=4, log_every_n_steps=1
    assert "train/lr" in events.Tags()["scalars"]
    assert "val/loss" in events.Tags()["scalars"]


def test_same_config_and_seed_give_same_metrics(tmp_path, finished_arm):
    first, _ = finished_arm
    cfg = compose_run_config([*FAST, "data=addition", "seed=3", "tags=[smoke]"])
    second = run_experiment(cfg, job_dir=tmp_path / "again")
    assert second.metrics == first.metrics
    assert second.group_id == first.group_id


@pytest.mark.integration
def test_other_seed_same_group(tmp_path, finished_arm):
    first, _ = finished_arm
    cfg = compose_run_config([*FAST, "data=addition", "seed=4"])
    other = run_experiment(cfg, job_dir=tmp_path / "other")
    assert other.group_id == first.group_id
    assert other.metrics["train/loss"] != first.metrics["train/loss"]


@pytest.mark.integration
def test_failure_is_recorded_not_raised(tmp_path):
    cfg = compose_run_config([*FAST, "data.dataset_name=no_such_dataset"])
    result = run_experiment(cfg, job_dir=tmp_path)
    record = json.loads((Path(tmp_path) / "result.json").read_text())
    assert result.status == record["status"] == "failed"
    assert "no_such_dataset" in record["error"]
    assert "Traceback" in record["traceback"]


@pytest.mark.integration
def test_killed_arm_resumes_to_the_same_metrics(tmp_path):
    from tests.conftest import assert_killed_run_resumes_exactly

    args = [*FAST, "algorithm.max_steps=40", "experiment.stores.outputs_root=out"]
    assert_killed_run_resumes_exactly(args, tmp_path)


@pytest.mark.integration
def test_dataloader_workers_shard_the_stream_instead_of_repeating_it(tmp_path):
    """Each worker yields every num_workers-th batch, so the batches (and metrics) are those of
    a run without workers; before, each worker replayed the whole stream ([b0, b0, b1, b1])."""
    metrics = {}
    for workers in (0, 2):
        cfg = compose_run_config([*FAST, f"data.num_workers={workers}", "seed=5"])
        record = run_experiment(cfg, job_dir=tmp_path / f"workers{workers}")
        assert record.completed, record.error
        metrics[workers] = record.metrics
    assert metrics[2] == metrics[0]


def test_stream_workers_take_alternate_batches():
    from evsys.lightning.datamodule import StepStream

    rows = [{"input_ids": [i]} for i in range(10)]
    stream = StepStream(
        rows, 2, seed=1, collate=lambda batch: {"ids": [r["input_ids"] for r in batch]}
    )
    alone = [b["ids"] for b, _ in zip(stream, range(6), strict=False)]
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    workers = [b["ids"] for b, _ in zip(loader, range(6), strict=False)]
    assert workers == alone


@pytest.mark.integration
def test_every_benchmark_writes_per_item_scores_whose_mean_is_the_metric(finished_arm):
    _, job_dir = finished_arm
    record = json.loads((job_dir / "result.json").read_text())
    lines = (job_dir / "scores" / "addition.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) == 8  # eval.max_examples in FAST
    assert len({item["item"] for item in items}) == len(items)
    assert all(isinstance(item["prediction"], str) for item in items)
    for metric in ("exact_match", "loss"):
        mean = sum(item[metric] for item in items) / len(items)
        assert mean == pytest.approx(record["metrics"][f"eval/addition/{metric}"], abs=1e-6)
