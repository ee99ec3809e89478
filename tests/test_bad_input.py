"""Every bad input is refused before training, naming key, value and what is allowed; data
errors name file and line; faults leave a record and a way on (docs/reliability.md)."""

from __future__ import annotations

import errno
import json
import re
import resource
import signal
from pathlib import Path

import pytest
import torch

from evsys import ConfigError, compose_run_config, run_experiment
from evsys.data.sources import read_file
from evsys.errors import DataError
from evsys.evaluation.base import Benchmark
from evsys.lightning.checkpoint_io import AtomicCheckpointIO
from evsys.sweep.plan import expand_jobs
from evsys.validate import success_metric
from tests.conftest import FAST, run_cli
from tests.test_experiment import write_preset


# ------------------------------------------------------------------ 5. names stay inside
@pytest.mark.integration
@pytest.mark.parametrize(
    "override", ["experiment.name=../../etc/evil", "arm=../../x", "arm=a/b", "experiment.name=.."]
)
def test_names_that_would_escape_the_outputs_root_are_refused(override):
    with pytest.raises(ConfigError, match="not a valid name"):
        compose_run_config([override])


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden"])
def test_a_preset_arm_name_that_would_escape_is_refused_as_written(name):
    from omegaconf import OmegaConf

    experiment = OmegaConf.create({"arms": {name: {"algorithm.lr": 0.1}}, "n_repeats": 1})
    experiment.base_seed = 0
    with pytest.raises(ConfigError, match=f"arm name '{re.escape(name)}' is not a valid name"):
        expand_jobs(experiment, [])


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["", "-m"])
def test_cli_refuses_escaping_names_before_any_dir_exists(tmp_path, mode):
    args = ["arm=../../../x", "experiment.name=../../evil", "experiment.stores.outputs_root=a/b"]
    done = run_cli([*args, mode] if mode else args, cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "not a valid name" in done.stdout + done.stderr
    assert not list(tmp_path.parent.glob("x_seed0")) and not list(tmp_path.rglob("*"))


# ------------------------------------------------------------------ 6. refused at planning
@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.lr=-0.1", "algorithm.lr=-0.1 must be >= 0"),
        ("algorithm.batch_size=0", "algorithm.batch_size=0 must be >= 1"),
        ("algorithm.accumulate_grad_batches=0", "algorithm.accumulate_grad_batches=0 must be"),
        ("validation.every_n_steps=0", "validation.every_n_steps=0 must be >= 1"),
        ("algorithm.max_steps=0", "algorithm.max_steps=0 must be >= 1"),
        ("algorithm.warmup_steps=-1", "algorithm.warmup_steps=-1 must be >= 0"),
        ("eval.max_examples=0", "eval.max_examples=0 must be >= 1"),
        ("data.max_length=0", "data.max_length=0 must be >= 1"),
        ("data.max_length=4096", "exceeds model.max_position_embeddings=512"),
        ("experiment.success_metric.mode=min", "set without experiment.success_metric.name"),
        ("experiment.on_mismatch=ignore", "experiment.on_mismatch='ignore'"),
    ],
)
def test_out_of_range_values_name_key_value_and_range(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        compose_run_config([override])


def test_an_arm_that_sets_seed_is_refused():
    from omegaconf import OmegaConf

    experiment = OmegaConf.create({"arms": {"a": {"seed": 3}}, "n_repeats": 1, "base_seed": 0})
    with pytest.raises(ConfigError, match=r"experiment\.arms\.a sets seed=3.*base_seed"):
        expand_jobs(experiment, [])


def _plan(tmp_path: Path, *overrides: str, preset: str | None = None):
    args = ["--config-dir", str(tmp_path), f"+experiment={preset}"] if preset else []
    args += [*FAST, "hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out"]
    args += [*overrides, "experiment.dry_run=true", "-m"]
    done = run_cli(args, cwd=tmp_path, timeout=180)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.integration
def test_planning_refuses_bad_arms_before_any_training(tmp_path):
    arms = {"fine": {"algorithm.lr": 3e-3}, "nodata": {"data.dataset_name": "./missing.jsonl"}}
    write_preset(tmp_path, "bad_data", arms)
    code, output = _plan(tmp_path, preset="bad_data")
    assert code != 0 and "nodata" in output and "missing.jsonl" in output
    assert "Traceback" not in output and not (tmp_path / "sweep").exists()

    code, output = _plan(tmp_path, "experiment.success_metric.name=eval/nope/exact_match")
    assert code != 0 and "'eval/nope/exact_match' is not a metric this job produces" in output
    assert (
        "The job produces train/loss, val/loss, eval/reversal/loss, eval/reversal/exact" in output
    )

    code, output = _plan(tmp_path, "experiment.baseline=nobody")
    assert code != 0 and "experiment.baseline='nobody' names no arm" in output

    code, output = _plan(tmp_path, "experiment.success_metric.name=val/loss")  # no mode given
    assert code == 0 and "val/loss (min: lower is better)" in output, output[-2000:]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("val/loss", "min"),
        ("eval/corpus/perplexity", "min"),
        ("eval/wikitext/word_perplexity", "min"),
        ("eval/wikitext/bits_per_byte", "min"),
        ("continual/forgetting", "min"),
        ("eval/addition/exact_match", "max"),
        ("eval/gsm8k/exact_match_strict-match", "max"),
        ("eval/arc_easy/acc_norm", "max"),
        ("continual/avg_final", "max"),
    ],
)
def test_a_named_metric_without_a_mode_is_ranked_the_right_way_up(name, mode):
    cfg = compose_run_config([f"experiment.success_metric.name={name}"])
    assert success_metric(cfg)["mode"] == mode
    other = "max" if mode == "min" else "min"  # a mode the config states is kept as stated
    stated = compose_run_config(
        [f"experiment.success_metric.name={name}", f"experiment.success_metric.mode={other}"]
    )
    assert success_metric(stated)["mode"] == other


@pytest.mark.integration
def test_a_preset_with_arms_run_without_m_is_refused(tmp_path):
    done = run_cli(["+experiment=demo", "experiment.stores.outputs_root=out"], tmp_path, 120)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "add -m" in output and "lr_3e-3" in output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 7. data errors
def test_non_utf8_file_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"data\.jsonl, line 2: text that is not UTF-8"):
        read_file(path)
    binary = tmp_path / "data.txt"
    binary.write_bytes(b"ok\n\x00\x01\xff\xd8binary")
    with pytest.raises(DataError, match=r"data\.txt, line 2: binary content"):
        read_file(binary)


def test_utf8_with_a_bom_is_read(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "completion": "b"}\n')
    assert read_file(path) == [{"prompt": "a", "completion": "b"}]
    csv = tmp_path / "data.csv"
    csv.write_bytes(b"\xef\xbb\xbfprompt,completion\na,b\n")
    assert read_file(csv) == [{"prompt": "a", "completion": "b"}]


@pytest.mark.integration
def test_every_example_too_long_says_so(tmp_path):
    record = run_experiment(compose_run_config([*FAST, "data.max_length=2"]), tmp_path)
    assert record.status == "failed"
    assert "examples exceed data.max_length=2" in record.error
    assert "truncated" not in record.error.split(":")[0]


@pytest.mark.integration
def test_a_later_arms_data_too_long_is_refused_before_any_arm_trains(tmp_path):
    long_prompt = json.dumps({"prompt": "word " * 40, "completion": "done"})
    data = tmp_path / "long.jsonl"
    data.write_text((long_prompt + "\n") * 54)
    arms = {"fine": {"algorithm.lr": 3e-3}, "long": {"data.dataset_name": str(data)}}
    write_preset(tmp_path, "too_long", arms)
    args = ["--config-dir", str(tmp_path), "+experiment=too_long", *FAST, "data.max_length=128"]
    args += ["experiment.success_metric.name=val/loss", "experiment.success_metric.mode=min"]
    done = run_cli([*args, "hydra.sweep.dir=sweep", "-m"], tmp_path, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "arm 'long'" in output
    assert "examples exceed data.max_length=128" in output
    assert "parameters" not in output and not (tmp_path / "sweep").exists()  # nothing trained


# ------------------------------------------------------------------ 8. faults
def test_disk_full_while_checkpointing_leaves_no_partial_file(tmp_path):
    path = tmp_path / "last.ckpt"
    saver = AtomicCheckpointIO()
    saver.save_checkpoint({"global_step": 1, "weights": torch.zeros(1000)}, path)
    previous = path.read_bytes()
    # A real write that stops part-way: the file size limit fails it as a full disk would.
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(previous), limit[1]))
    try:
        with pytest.raises(OSError, match=r"cannot save the checkpoint .*last\.ckpt"):
            saver.save_checkpoint({"global_step": 2, "weights": torch.zeros(100_000)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert path.read_bytes() == previous  # the previous checkpoint, intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no last.ckpt.partial


@pytest.mark.integration
def test_disk_full_while_checkpointing_fails_the_arm_with_a_record(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)  # every checkpoint write hits a full disk
    record = run_experiment(compose_run_config(FAST), tmp_path)
    stored = json.loads((tmp_path / "result.json").read_text())
    assert record.status == stored["status"] == "failed"
    assert f"cannot save the checkpoint {tmp_path / 'checkpoints' / 'last.ckpt'}" in stored["error"]
    assert not [path for path in tmp_path.rglob("*") if path.name.endswith((".partial", ".tmp"))]


def test_checkpoints_are_readable_by_the_group(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO({"identity": "x", "config": {}}).save_checkpoint({"global_step": 1}, path)
    assert path.stat().st_mode & 0o777 == 0o644
    assert AtomicCheckpointIO().load_checkpoint(path)["evsys_identity"]["identity"] == "x"


@pytest.mark.integration
def test_every_output_of_a_run_is_readable_by_the_group(tmp_path):
    cfg = compose_run_config([*FAST, "algorithm.max_steps=2", "eval.benchmarks=[reversal]"])
    assert run_experiment(cfg, tmp_path).completed
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert tmp_path / "model" / "model.safetensors" in files  # saved by transformers
    unreadable = [str(path) for path in files if path.stat().st_mode & 0o044 != 0o044]
    assert unreadable == []


@pytest.mark.integration
def test_corrupt_checkpoint_names_the_file_and_the_choice(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"not a checkpoint")
    record = run_experiment(compose_run_config(FAST), tmp_path)
    assert record.status == "failed" and str(checkpoint) in record.error
    assert "Delete or move it" in record.error and "fresh directory" in record.error
    assert "experiment.on_mismatch=rerun" in record.error and "weights_only" not in record.error

    rerun = run_experiment(compose_run_config([*FAST, "experiment.on_mismatch=rerun"]), tmp_path)
    assert rerun.completed and rerun.resumed_from_step is None  # trained from step 0
    (moved,) = (tmp_path / ".superseded").glob("*/checkpoints/last.ckpt")
    assert moved.read_bytes() == b"not a checkpoint"  # moved aside, never deleted


@pytest.mark.integration
def test_a_corrupt_checkpoint_in_a_sweep_is_named_at_planning(tmp_path):
    sweep = [*FAST, "hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out", "-m"]
    assert run_cli(sweep, tmp_path, timeout=300).returncode == 0
    job_dir = tmp_path / "sweep" / "default_seed0"
    (job_dir / "result.json").unlink()  # killed after its last checkpoint, which then broke
    (job_dir / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    done = run_cli(sweep, tmp_path, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "jobs to run" not in output  # refused at planning
    assert "sweep/default_seed0/checkpoints/last.ckpt: unreadable (" in output
    assert "not a checkpoint evsys wrote" in output and "weights_only" not in output
    assert "hydra.sweep.dir=<new dir>" in output and "experiment.on_mismatch=rerun" in output


class BrokenBenchmark(Benchmark):
    """A benchmark that fails after training (a harness download, a bug in user code)."""

    name = "broken"

    def score(self, model, tokenizer):
        raise RuntimeError("the benchmark server is down")


@pytest.mark.integration
def test_a_failing_benchmark_keeps_the_model_and_the_other_metrics(tmp_path):
    benchmarks = "eval.benchmarks=[reversal,class:tests.test_bad_input.BrokenBenchmark]"
    record = run_experiment(compose_run_config([*FAST, benchmarks]), tmp_path)
    stored = json.loads((tmp_path / "result.json").read_text())
    assert record.status == stored["status"] == "failed"
    assert "the benchmark server is down" in stored["benchmark_errors"]["eval/broken"]
    assert "eval/broken" in stored["error"]
    assert "eval/reversal/exact_match" in stored["metrics"] and "val/loss" in stored["metrics"]
    assert (tmp_path / "model" / "config.json").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.integration
def test_duplicate_arm_names_name_file_and_line(tmp_path):
    preset = tmp_path / "experiment" / "dup.yaml"
    preset.parent.mkdir()
    preset.write_text(
        "# @package _global_\nexperiment:\n  name: dup\n  arms:\n"
        "    a: {algorithm.lr: 1e-3}\n    a: {algorithm.lr: 3e-3}\n"
    )
    done = run_cli(["--config-dir", str(tmp_path), "+experiment=dup", "-m"], tmp_path, 120)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output
    assert f"{preset}:6:5: found duplicate key a" in output


@pytest.mark.integration
def test_a_single_run_typo_gets_a_did_you_mean(tmp_path):
    done = run_cli(["algorithm.lerning_rate=1"], cwd=tmp_path, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "'algorithm.lerning_rate' is not a valid key" in output
    assert "Did you mean 'algorithm.lr'?" in output and "To append" not in output


@pytest.mark.integration
def test_a_record_that_cannot_be_written_says_where(tmp_path, monkeypatch, caplog):
    from evsys.records import ArmResult

    def full(self, job_dir):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ArmResult, "save", full)
    cfg = compose_run_config([*FAST, "algorithm.max_steps=1", "eval.benchmarks=[]"])
    record = run_experiment(cfg, tmp_path)  # returns: the sweep reports the arm missing
    assert record.completed
    assert f"cannot write the record {tmp_path / 'result.json'}" in caplog.text


class EscapingBenchmark(BrokenBenchmark):
    name = "../../escaped"


def test_a_benchmark_label_cannot_escape_the_run_dir():
    benchmarks = "eval.benchmarks=[class:tests.test_bad_input.EscapingBenchmark]"
    with pytest.raises(ConfigError, match=r"labelled '\.\./\.\./escaped'.*not a valid name"):
        compose_run_config([benchmarks])
