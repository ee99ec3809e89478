"""Results you can trust: config identity on records and checkpoints, locked dirs, any Hydra
sweeper, no code run from files on disk (docs/reliability.md lists what each test covers)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from evsys import compose_run_config, registry, run_experiment
from evsys.errors import DirInUse
from evsys.identity import config_identity, identity_config
from evsys.lightning.checkpoint_io import AtomicCheckpointIO
from evsys.locks import acquire_lock, release_lock
from evsys.records import ArmResult
from tests.conftest import FAST, OPTUNA_SEARCH, cli_env, interrupt_cli, run_cli


def sweep(tmp_path: Path, *extra: str, sweep_dir: str = "sweep") -> subprocess.CompletedProcess:
    """A one-arm sweep (no preset: a plain -m) into tmp_path/<sweep_dir>."""
    args = [*FAST, f"hydra.sweep.dir={sweep_dir}", "experiment.stores.outputs_root=out"]
    return run_cli([*args, *extra, "-m"], cwd=tmp_path)


# ----------------------------------------------------------------------------- 1. identity
def test_identity_ignores_how_a_job_runs_but_not_what_it_trains():
    base = identity_config(compose_run_config(FAST))
    assert base["algorithm.max_steps"] == 4 and base["seed"] == 0
    same = identity_config(compose_run_config([*FAST, "log_every_n_steps=3", "arm=other"]))
    assert config_identity(same) == config_identity(base)
    for change in ("algorithm.max_steps=5", "seed=1", "eval.max_examples=4"):
        changed = identity_config(compose_run_config([*FAST, change]))
        assert config_identity(changed) != config_identity(base), change


@pytest.mark.integration
def test_changed_overrides_never_reuse_old_records(tmp_path):
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    record_file = tmp_path / "sweep" / "default_seed0" / "result.json"
    old = json.loads(record_file.read_text())
    assert old["identity"] and old["identity_config"]["algorithm.max_steps"] == 4

    same = sweep(tmp_path)  # the same config: the completed arm is skipped
    assert "0 of 1 job to run" in same.stdout, same.stderr[-2000:]

    changed = sweep(tmp_path, "algorithm.max_steps=5")
    output = changed.stdout + changed.stderr
    assert changed.returncode != 0
    assert "sweep" in output and "algorithm.max_steps: 4 -> 5" in output
    assert "experiment.on_mismatch=rerun" in output and "new sweep dir" in output
    assert json.loads(record_file.read_text()) == old  # untouched, and not presented as new

    rerun = sweep(tmp_path, "algorithm.max_steps=5", "experiment.on_mismatch=rerun")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    new = json.loads(record_file.read_text())
    assert new["identity"] != old["identity"] and new["resumed_from_step"] is None
    assert new["identity_config"]["algorithm.max_steps"] == 5
    moved = list((tmp_path / "sweep" / ".superseded").glob("*/default_seed0/result.json"))
    assert [json.loads(p.read_text()) for p in moved] == [old]  # moved aside, never deleted


@pytest.mark.integration
def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    cfg = compose_run_config(FAST)
    assert run_experiment(cfg, job_dir=tmp_path).completed
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["evsys_identity"]["identity"] == config_identity(identity_config(cfg))

    old_record = (tmp_path / "result.json").read_bytes()
    refused = run_experiment(compose_run_config([*FAST, "algorithm.max_steps=6"]), tmp_path)
    assert refused.status == "failed"
    assert str(tmp_path / "result.json") in refused.error
    assert "algorithm.max_steps: 4 -> 6" in refused.error
    assert (tmp_path / "result.json").read_bytes() == old_record  # not written over

    (tmp_path / "result.json").rename(tmp_path / "kept.json")  # as if killed after the save
    refused = run_experiment(compose_run_config([*FAST, "algorithm.max_steps=6"]), tmp_path)
    assert str(tmp_path / "checkpoints" / "last.ckpt") in refused.error
    assert (
        "algorithm.max_steps: 4 -> 6" in refused.error and not (tmp_path / "result.json").exists()
    )
    (tmp_path / "kept.json").rename(tmp_path / "result.json")

    overrides = [*FAST, "algorithm.max_steps=6", "experiment.on_mismatch=rerun"]
    rerun = run_experiment(compose_run_config(overrides), tmp_path)
    assert rerun.completed and rerun.resumed_from_step is None  # trained from step 0
    (moved,) = (tmp_path / ".superseded").glob("*/result.json")  # moved aside, never deleted
    assert moved.read_bytes() == old_record
    assert (moved.parent / "checkpoints" / "last.ckpt").is_file()


def test_record_is_float_castable_to_its_success_metric(tmp_path):
    record = ArmResult("a", 0, "completed", success_metric="val/loss", metrics={"val/loss": 2.5})
    assert float(record) == 2.5
    assert math.isnan(float(ArmResult("a", 0, "failed", success_metric="val/loss")))


# ---------------------------------------------------------------------------- 2. dir locks
@pytest.mark.integration
def test_a_second_sweep_into_a_dir_in_use_is_refused(tmp_path):
    held = acquire_lock(tmp_path / "sweep", "sweep")
    try:
        started = time.time()
        refused = sweep(tmp_path)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "is in use by another sweep" in output
        assert time.time() - started < 60 and not list(tmp_path.rglob("result.json"))
        with pytest.raises(DirInUse):
            acquire_lock(tmp_path / "sweep", "sweep")
    finally:
        release_lock(held)


@pytest.mark.integration
def test_a_second_run_into_a_dir_in_use_is_refused(tmp_path):
    held = acquire_lock(tmp_path / "run", "run")
    try:
        record = run_experiment(compose_run_config(FAST), tmp_path / "run")
    finally:
        release_lock(held)
    assert record.status == "failed" and "in use by another run" in record.error
    assert not (tmp_path / "run" / "result.json").exists()  # the other run's dir: not ours


@pytest.mark.integration
def test_same_second_launches_keep_both_results(tmp_path):
    """Two sweeps of the same experiment started together, both into the default sweep dir."""
    command = [sys.executable, "-m", "evsys.train", *FAST, "experiment.stores.outputs_root=out"]
    processes = [
        subprocess.Popen([*command, "-m"], cwd=tmp_path, env=cli_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs[0][-2000:] + outputs[1][-2000:]
    records = list((tmp_path / "out" / "default").glob("*/default_seed0/result.json"))
    assert len(records) == 2  # two sweep dirs, each with its own record


# ---------------------------------------------------------------------- 3. other sweepers
@pytest.mark.integration
def test_basic_sweeper_gets_one_dir_per_job_and_a_conclusion(tmp_path):
    done = sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=1e-3,3e-3")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = sorted((tmp_path / "sweep").glob("*/result.json"))
    assert [p.parent.name for p in records] == ["0", "1"]
    assert {json.loads(p.read_text())["hparams"]["algorithm.lr"] for p in records} == {
        1e-3,
        3e-3,
    }
    conclusion = json.loads((tmp_path / "sweep" / "conclusion.json").read_text())
    assert {g["arm"] for g in conclusion["groups"]} == {"lr=0.001", "lr=0.003"}


@pytest.mark.integration
def test_another_sweeper_never_reuses_an_earlier_sweeps_results(tmp_path):
    assert sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=1e-3,3e-3").returncode == 0
    old = {p: p.read_bytes() for p in (tmp_path / "sweep").glob("*/result.json")}

    changed = sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=2e-3,4e-3")
    output = changed.stdout + changed.stderr
    assert changed.returncode != 0 and "already holds an earlier sweep's results" in output
    assert "parameters" not in output  # refused before any job
    assert {p: p.read_bytes() for p in old} == old  # untouched, and not presented as new

    rerun = sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=2e-3,4e-3",
                  "experiment.on_mismatch=rerun")  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    conclusion = json.loads((tmp_path / "sweep" / "conclusion.json").read_text())
    assert {g["arm"] for g in conclusion["groups"]} == {"lr=0.002", "lr=0.004"}
    moved = sorted((tmp_path / "sweep" / ".superseded").glob("*/*/result.json"))
    assert sorted(p.read_bytes() for p in moved) == sorted(old.values())  # never deleted


@pytest.mark.integration
def test_another_sweepers_bad_shared_value_is_refused_before_any_job(tmp_path):
    done = sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=1e-3,3e-3", "algorithm.max_steps=0")
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "every job of this sweep shares" in output
    assert "algorithm.max_steps=0 must be >= 1" in output
    assert "parameters" not in output and not (tmp_path / "sweep").exists()  # nothing trained


@pytest.mark.integration
def test_an_optuna_direction_against_the_metric_is_refused(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    search = [
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "algorithm.lr=interval(1e-4,1e-2)",
    ]
    done = sweep(tmp_path, *search)  # Optuna minimizes by default; exact match is best at max
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "set hydra.sweeper.direction=maximize" in output
    assert "eval/reversal/exact_match" in output and not (tmp_path / "sweep").exists()


optuna = pytest.importorskip  # hydra-optuna-sweeper is the `optuna` extra


@pytest.mark.integration
def test_optuna_trials_train_from_scratch_in_their_own_dirs(tmp_path):
    optuna("hydra_plugins.hydra_optuna_sweeper")
    done = sweep(tmp_path, *OPTUNA_SEARCH)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/result.json")]
    assert len(records) == 3
    assert len({r["hparams"]["algorithm.lr"] for r in records}) == 3
    assert all(r["status"] == "completed" and r["resumed_from_step"] is None for r in records)
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()
    assert (tmp_path / "sweep" / "conclusion.json").is_file()


# ------------------------------------------------------------------- 4. no code from disk
class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling it creates the marker file


@pytest.mark.integration
def test_a_planted_pickle_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"global_step": 1, "payload": _WritesMarker(marker)}, checkpoint)
    record = run_experiment(compose_run_config(FAST), tmp_path / "run")
    assert not marker.exists()
    assert record.status == "failed" and str(checkpoint) in record.error
    with pytest.raises(Exception):  # noqa: B017 - Lightning's own resume load is safe too
        AtomicCheckpointIO().load_checkpoint(checkpoint)
    assert not marker.exists()


# ------------------------------------------------------------------- 8. Ctrl-C in a sweep
@pytest.mark.integration
def test_ctrl_c_says_what_was_interrupted_and_how_to_resume(tmp_path):
    args = [*FAST, "algorithm.max_steps=400", "checkpoint_every_n_steps=5"]
    args += ["hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out", "-m"]
    checkpoint = tmp_path / "sweep" / "default_seed0" / "checkpoints" / "last.ckpt"
    done = interrupt_cli(args, tmp_path, checkpoint, signal.SIGINT)
    output = done.stdout
    assert done.returncode != 0
    assert (
        "interrupted" in output and f"hydra.sweep.dir={tmp_path.resolve() / 'sweep'} -m" in output
    )
    (row,) = registry.list_experiments(tmp_path / "out")
    assert row["status"] == "interrupted"


@pytest.mark.integration
def test_ctrl_c_in_a_single_run_prints_the_resume_command(tmp_path):
    args = [*FAST, "algorithm.max_steps=400", "checkpoint_every_n_steps=5", "hydra.run.dir=run"]
    done = interrupt_cli(
        args, tmp_path, tmp_path / "run" / "checkpoints" / "last.ckpt", signal.SIGINT
    )
    output = done.stdout
    assert done.returncode != 0 and "interrupted: arm default (seed 0)" in output
    assert "algorithm.max_steps=400" in output and f"hydra.run.dir={tmp_path / 'run'}" in output
    assert not (tmp_path / "run" / "result.json").exists()  # no record: a re-run resumes it


@pytest.mark.integration
def test_a_killed_jobs_checkpoint_of_another_config_is_refused_at_planning(tmp_path):
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    job_dir = tmp_path / "sweep" / "default_seed0"
    (job_dir / "result.json").unlink()  # as if killed after its last checkpoint
    changed = sweep(tmp_path, "algorithm.lr=1e-3")
    output = changed.stdout + changed.stderr
    assert changed.returncode != 0 and "jobs to run" not in output  # refused at planning
    assert "sweep/default_seed0/checkpoints/last.ckpt: algorithm.lr: 0.003 -> 0.001" in output
    assert not (job_dir / "result.json").exists()
