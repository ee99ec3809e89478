"""Progress that reads right: steps out of the run's steps (never `Epoch 0/-2`), arm and seed,
loss and tokens/s; lines and the arm's summary outside a terminal (notebooks, pipes) with no
ANSI codes; a sweep says which job of how many runs, with an ETA."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evsys import Experiment
from evsys.records import ArmResult, Plan, PlannedJob
from evsys.run.context import job_context
from evsys.run.progress import sweep_position
from tests.conftest import FAST, REPO, cli_env
from tests.test_experiment import write_preset

ANSI = "\x1b["
# A notebook cell: run_experiment with no logging configured, stdout not a terminal.
NOTEBOOK = """
from evsys import compose_run_config, run_experiment
record = run_experiment(compose_run_config({fast!r}), {job!r})
print("STATUS", record.status)
"""


@pytest.mark.integration
def test_outside_a_terminal_progress_lines_and_the_summary_show(tmp_path):
    code = NOTEBOOK.format(fast=FAST, job=str(tmp_path / "arm"))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert "STATUS completed" in proc.stdout, proc.stderr[-3000:]
    assert "[default seed 0] step 4/4" in proc.stdout
    assert "loss=" in proc.stdout and "tok/s=" in proc.stdout
    assert "arm default seed 0 completed in" in proc.stdout  # the summary, by default
    assert ANSI not in proc.stdout + proc.stderr
    assert "Epoch" not in proc.stdout + proc.stderr


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_in_a_terminal_one_bar_counts_steps(tmp_path):
    train = " ".join([sys.executable, "-m", "evsys.train", *FAST, "hydra.run.dir=run"])
    command = f"stty cols 120 rows 40; {train}"
    env = cli_env({"PYTHONPATH": str(REPO)})
    proc = subprocess.run(
        ["script", "-qec", command, "/dev/null"], cwd=tmp_path, env=env, capture_output=True
    )
    screen = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, screen[-3000:]
    assert "default seed 0 step 4/4 |" in screen and "step/s" in screen
    assert "loss=" in screen and "Epoch" not in screen
    assert "Training" not in screen  # no frame of Lightning's own bar before the total is known


def test_sweep_position_names_the_job_and_an_eta(tmp_path):
    jobs = [PlannedJob(arm, 0, [f"arm={arm}"], f"{arm}_seed0") for arm in ("a", "b", "c")]
    Plan(id="x", name="x", success_metric={"name": "m"}, planned=jobs).save(tmp_path)
    (tmp_path / "a_seed0").mkdir()
    done = ArmResult(arm="a", seed=0, status="completed", started_at="2026-01-01T10:00:00")
    done.finished_at = "2026-01-01T10:02:00"
    done.save(tmp_path / "a_seed0")
    text = sweep_position(job_context(tmp_path, tmp_path / "b_seed0"))
    assert text.startswith("job 2/3 (1 done, ETA 4 min")
    assert sweep_position(job_context(tmp_path, tmp_path / "elsewhere")) is None


@pytest.mark.integration
def test_experiment_run_streams_clean_lines_into_sys_stdout(tmp_path, capsys):
    preset = write_preset(tmp_path, "progress", {"slow": {"algorithm.lr": 1e-4}, "fast": {}})
    overrides = [*FAST, f"experiment.stores.outputs_root={tmp_path / 'out'}"]
    env = {"FORCE_COLOR": "1"}  # what a notebook may set: the sweep's child must not obey it
    os.environ.update(env)
    try:
        result = Experiment.from_yaml(preset, overrides=overrides).run(tmp_path / "sweep")
    finally:
        os.environ.pop("FORCE_COLOR")
    out = capsys.readouterr().out  # the child's output went through sys.stdout
    assert result.best_arm in ("slow", "fast")
    assert "job 1/2 (0 done)" in out and "job 2/2 (1 done, ETA" in out
    assert "arm fast seed 0 completed in" in out
    assert ANSI not in out
    record = json.loads((Path(result.sweep_dir) / "fast_seed0" / "result.json").read_text())
    assert record["status"] == "completed"
