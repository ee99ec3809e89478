"""Resume that works: the command printed after Ctrl-C of a sweep, pasted, finishes it;
`evsys resume ID_OR_PREFIX` does the same from the registry; experiments are found by a
unique id prefix or `latest`, in the registry $EVSYS_OUTPUTS_ROOT names."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evsys import registry
from evsys.cli import experiments
from tests.conftest import FAST, cli_env, interrupt_cli

RESUME_LINE = "resume from their last checkpoint with:\n"


def _register(root: Path, *ids: str) -> None:
    for number, experiment_id in enumerate(ids):
        created = f"2026-01-0{number + 1}T00:00:00"
        registry.register(root, {"id": experiment_id, "name": "demo", "created_at": created})


def test_show_accepts_a_unique_prefix_or_latest(tmp_path, capsys):
    _register(tmp_path, "demo-20260101-aaaa", "demo-20260102-bbbb", "other-1")
    assert experiments.main(["show", "demo-20260102", "--root", str(tmp_path)]) == 0
    assert "lineage of demo-20260102-bbbb" in capsys.readouterr().out
    assert experiments.main(["show", "latest", "--root", str(tmp_path)]) == 0
    assert "lineage of other-1" in capsys.readouterr().out  # the most recently created

    assert experiments.main(["show", "demo-2026", "--root", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "matches 2 experiments" in error
    assert "demo-20260101-aaaa" in error and "demo-20260102-bbbb" in error


def test_the_registry_is_found_through_the_environment_not_the_cwd(tmp_path, monkeypatch, capsys):
    _register(tmp_path / "store", "demo-1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVSYS_OUTPUTS_ROOT", str(tmp_path / "store"))
    assert experiments.main(["show", "demo"]) == 0
    assert "lineage of demo-1" in capsys.readouterr().out

    monkeypatch.delenv("EVSYS_OUTPUTS_ROOT")
    assert experiments.main(["show", "demo"]) == 1
    where = tmp_path.resolve() / "outputs" / registry.DB_NAME
    assert f"in {where}" in capsys.readouterr().err  # says where it looked


def test_outputs_root_defaults_to_the_environment(monkeypatch):
    from evsys import compose_run_config

    monkeypatch.setenv("EVSYS_OUTPUTS_ROOT", "/data/experiments")
    assert compose_run_config(FAST).experiment.stores.outputs_root == "/data/experiments"


def _interrupted_sweep(tmp_path: Path, sweep_dir: str) -> str:
    """A one-arm sweep stopped by Ctrl-C at its first checkpoint; its output."""
    args = [*FAST, "algorithm.max_steps=30", "checkpoint_every_n_steps=2"]
    args += [f"hydra.sweep.dir={sweep_dir}", "experiment.stores.outputs_root=out", "-m"]
    checkpoint = tmp_path / sweep_dir / "default_seed0" / "checkpoints" / "last.ckpt"
    done = interrupt_cli(args, tmp_path, checkpoint, signal.SIGINT)
    assert done.returncode != 0, done.stdout[-2000:]
    assert not (tmp_path / sweep_dir / "default_seed0" / "result.json").exists(), "too late"
    return done.stdout


def _assert_finished(tmp_path: Path, sweep_dir: str, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    record = (tmp_path / sweep_dir / "default_seed0" / "result.json").read_text()
    assert '"status": "completed"' in record and '"resumed_from_step": null' not in record
    assert registry.find(tmp_path / "out", "latest")["status"] == "completed"


@pytest.mark.integration
def test_the_printed_resume_command_and_evsys_resume_finish_an_interrupted_sweep(tmp_path):
    output = _interrupted_sweep(tmp_path, "first")
    assert RESUME_LINE in output, output[-3000:]
    printed = output.split(RESUME_LINE)[1].splitlines()[0].strip()
    words = shlex.split(printed)
    assert words[:3] == ["python", "-m", "evsys.train"] and words[-1] == "-m"
    pasted = shlex.join([sys.executable, *words[1:]])
    done = subprocess.run(
        pasted, shell=True, cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    _assert_finished(tmp_path, "first", done)

    output = _interrupted_sweep(tmp_path, "second")
    second = registry.find(tmp_path / "out", "latest")
    assert second["status"] == "interrupted" and f"evsys resume {second['id']}" in output
    elsewhere = tmp_path / "elsewhere"  # resume runs where the sweep was launched
    elsewhere.mkdir()
    code = "import sys; from evsys.cli.main import main; sys.exit(main(sys.argv[1:]))"
    root = str(tmp_path / "out")
    done = subprocess.run(
        [sys.executable, "-c", code, "resume", second["id"][:-1], "--root", root],
        cwd=elsewhere, env=cli_env(), capture_output=True, text=True,
    )  # fmt: skip
    _assert_finished(tmp_path, "second", done)
    assert not (elsewhere / "out").exists()


def test_the_resume_message_reaches_stderr_when_stdout_is_piped_elsewhere(tmp_path, monkeypatch):
    import logging

    from evsys.interrupts import tell

    log = logging.getLogger("test_resume")
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        tell(log, "resume with: X")  # stdout into `tee`, stderr on the terminal
    assert (tmp_path / "err").read_text() == "resume with: X\n"
    with open(tmp_path / "both", "w") as both:
        monkeypatch.setattr(sys, "stdout", both)
        monkeypatch.setattr(sys, "stderr", both)
        tell(log, "resume with: X")  # one terminal: logged once, not said twice
    assert (tmp_path / "both").read_text() == ""  # the log's handlers write elsewhere here


def test_the_resume_command_puts_every_override_before_dash_m_and_quotes_paths(tmp_path):
    from omegaconf import OmegaConf

    from evsys.sweep.resume_command import missing_config_dirs, resume_command

    presets = tmp_path / "my presets"
    presets.mkdir()
    source = {"path": str(presets), "schema": "file", "provider": "command-line"}
    hydra = {
        "runtime": {"config_sources": [source], "cwd": str(tmp_path)},
        "job": {"config_name": "train"},
        "overrides": {
            "task": ["+experiment=demo", "experiment.hypothesis='a b'"],
            "hydra": ["hydra.sweep.dir=old", "hydra.mode=MULTIRUN", "hydra/launcher=local"],
        },
    }
    config = OmegaConf.create({"hydra": hydra})
    sweep_dir = tmp_path / "a sweep"
    words = shlex.split(resume_command(config, sweep_dir))
    assert words == [
        "python", "-m", "evsys.train", "--config-dir", str(presets), "+experiment=demo",
        "experiment.hypothesis='a b'", "hydra/launcher=local",
        f"hydra.sweep.dir='{sweep_dir.resolve()}'", "-m",
    ]  # fmt: skip
    assert missing_config_dirs(config) == []
    presets.rmdir()  # Experiment.run()'s temporary config dir, gone after the run
    assert missing_config_dirs(config) == [str(presets)]
