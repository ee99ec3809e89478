"""Valid or loudly not (#22): a run that diverged is no result, values that cannot train are
refused at planning, and an interrupted run or sweep exits non-zero (130 / 143)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evsys import Experiment, compose_run_config
from evsys.errors import ConfigError, Interrupted
from evsys.interrupts import interrupt_exit_code
from tests.conftest import FAST, interrupt_cli, run_cli

# A finite lr that still blows the weights up after one step: lr=inf is refused at planning.
EXPLODING = "algorithm.lr=1e30"


# ------------------------------------------------------------------------- a diverged run
@pytest.mark.integration
def test_a_diverged_run_is_recorded_diverged_with_its_step_and_value(tmp_path):
    result = run_cli([*FAST, EXPLODING, "hydra.run.dir=run"], cwd=tmp_path)
    assert result.returncode != 0
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "diverged"
    assert record["error"].startswith("diverged: ") and "became nan at step 2" in record["error"]
    assert record["divergence"]["step"] == 2 and record["divergence"]["value"] == "nan"
    assert record["metrics"] == {}  # nothing scored: nan weights are no model
    assert not (tmp_path / "run" / "model").exists()  # nor exported
    assert "became nan at step 2" in result.stdout + result.stderr


@pytest.mark.integration
def test_a_diverged_arm_is_not_ranked_and_is_named_in_the_conclusion(tmp_path):
    args = [*FAST, "algorithm.lr=3e-3,1e30", "hydra.sweep.dir=sweep"]
    result = run_cli([*args, "experiment.stores.outputs_root=out", "-m"], cwd=tmp_path)
    assert result.returncode != 0
    conclusion = json.loads((tmp_path / "sweep" / "conclusion.json").read_text())
    (diverged,) = conclusion["failed"]
    assert "1e+30" in diverged["arm"] or "1e30" in diverged["arm"], diverged
    assert diverged["error"].startswith("diverged: ") and "at step 2" in diverged["error"]
    assert len(conclusion["ranking"]) == 1 and diverged["arm"] not in conclusion["ranking"]
    markdown = (tmp_path / "sweep" / "conclusion.md").read_text()
    assert f"{diverged['arm']} seed 0" in markdown and "diverged: " in markdown


# ---------------------------------------------------------------- refused at planning
@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["algorithm.lr=inf"], "algorithm.lr=inf must be a finite number"),
        (["algorithm.lr=nan"], "algorithm.lr=nan must be a finite number"),
        (["algorithm.grad_clip=nan"], "algorithm.grad_clip=nan must be a finite number"),
        (["algorithm.weight_decay=-0.1"], "algorithm.weight_decay=-0.1 must be >= 0"),
        (["algorithm.min_lr_ratio=1.5"], "algorithm.min_lr_ratio=1.5 must be <= 1"),
        (["algorithm.betas=[0.9,1.0]"], "algorithm.betas=[0.9, 1.0] must be two numbers in [0, 1)"),
        (["algorithm.betas=[-0.1,0.9]"], "algorithm.betas=[-0.1, 0.9] must be two numbers in"),
        (["algorithm.betas=[0.9]"], "algorithm.betas=[0.9] must be two numbers in [0, 1)"),
        (["algorithm=dpo", "algorithm.betas=[nan,0.9]"], "algorithm.betas=[nan, 0.9] must be"),
        (["algorithm=grpo", "algorithm.lr=inf"], "algorithm.lr=inf must be a finite number"),
        (
            ["algorithm.max_steps=4", "algorithm.warmup_steps=5"],
            "algorithm.warmup_steps=5 is more than algorithm.max_steps=4",
        ),
    ],
)
def test_values_that_cannot_train_are_refused_at_planning(overrides, named):
    with pytest.raises(ConfigError) as error:
        compose_run_config(overrides)
    assert named in str(error.value)


def test_the_edges_of_the_optimizer_rules_are_allowed():
    compose_run_config(["algorithm.min_lr_ratio=1.0", "algorithm.betas=[0.0,0.999]"])
    compose_run_config(["algorithm.max_steps=4", "algorithm.warmup_steps=4"])
    # the algorithm's default warm-up (20) in a short run: not chosen, so not refused
    compose_run_config(["algorithm.max_steps=10"])
    # lr=0 trains nothing (an arm that scores its starting model): its warm-up is moot
    compose_run_config(["algorithm.lr=0", "algorithm.max_steps=1"])


# ---------------------------------------------------------------------- exit codes
def test_an_interrupt_never_exits_0():
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    assert interrupt_exit_code(KeyboardInterrupt()) == 130
    assert interrupt_exit_code(SIGTERMException()) == 143
    try:  # Lightning's Ctrl-C: sys.exit(1) while handling the KeyboardInterrupt
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit(1)
    except SystemExit as lightnings:
        assert interrupt_exit_code(lightnings) == 130
    assert interrupt_exit_code(SystemExit()) == 1


def _interrupted_single_run(tmp_path: Path, signum: int) -> subprocess.CompletedProcess:
    args = [*FAST, "algorithm.max_steps=400", "checkpoint_every_n_steps=5", "hydra.run.dir=run"]
    return interrupt_cli(args, tmp_path, tmp_path / "run" / "checkpoints" / "last.ckpt", signum)


@pytest.mark.integration
def test_sigterm_to_a_single_run_exits_143(tmp_path):
    result = _interrupted_single_run(tmp_path, signal.SIGTERM)
    assert result.returncode == 143, result.stdout[-3000:]
    assert "interrupted: arm default (seed 0)" in result.stdout and "resume it" in result.stdout
    assert not (tmp_path / "run" / "result.json").exists()  # no record: a re-run resumes it


@pytest.mark.integration
def test_ctrl_c_to_a_single_run_exits_130(tmp_path):
    result = _interrupted_single_run(tmp_path, signal.SIGINT)
    assert result.returncode == 130, result.stdout[-3000:]
    assert "interrupted: arm default (seed 0)" in result.stdout


@pytest.mark.integration
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_sweep_exits_143_or_130(tmp_path, signum, code):
    args = [*FAST, "algorithm.max_steps=400", "checkpoint_every_n_steps=5"]
    args += ["hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out", "-m"]
    checkpoint = tmp_path / "sweep" / "default_seed0" / "checkpoints" / "last.ckpt"
    # the sweep's process alone: its arm is stopped by it
    done = interrupt_cli(args, tmp_path, checkpoint, signum, whole_group=False)
    output = done.stdout
    assert done.returncode == code, output[-3000:]
    resume = f"hydra.sweep.dir={tmp_path.resolve() / 'sweep'} -m"
    assert "interrupted: experiment" in output and resume in output
    assert not (tmp_path / "sweep" / "default_seed0" / "result.json").exists()


def _terminate_child_when(path: Path, parent: int) -> None:
    """SIGTERM to `parent`'s `evsys.train` child once `path` exists."""
    deadline = time.time() + 300
    while not path.exists() and time.time() < deadline:
        time.sleep(0.1)
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"evsys.train" in command:
            os.kill(int(proc.name), signal.SIGTERM)


@pytest.mark.integration
def test_experiment_run_raises_when_its_child_was_interrupted(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    preset = tmp_path / "interrupted.yaml"
    preset.write_text(
        "# @package _global_\nexperiment:\n  name: interrupted\n"
        "  success_metric: {name: eval/reversal/exact_match, mode: max}\n"
    )
    overrides = [*FAST, "algorithm.max_steps=400", "checkpoint_every_n_steps=5"]
    overrides += [f"experiment.stores.outputs_root={tmp_path / 'out'}"]
    sweep_dir = tmp_path / "sweep"
    checkpoint = sweep_dir / "default_seed0" / "checkpoints" / "last.ckpt"
    killer = threading.Thread(
        target=_terminate_child_when, args=(checkpoint, os.getpid()), daemon=True
    )
    killer.start()
    with pytest.raises(Interrupted, match=r"was interrupted \(exit code 143\)"):
        Experiment.from_yaml(preset, overrides=overrides).run(sweep_dir)
    killer.join()
