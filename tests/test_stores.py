"""Where a launch writes is checked before anything is made: a corrupt registry names its file
and the way out, a read-only outputs root or run dir is one line naming the path, and neither
leaves a sweep dir behind (docs/reliability.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import evsys
from evsys import registry
from evsys.cli import experiments
from evsys.errors import ConfigError, RegistryError
from tests.conftest import FAST, run_cli

PAGE = "name: stores\nrun: {algorithm: {kind: sft, max_steps: 2}}\nstores: {outputs_root: %s}\n"


def corrupt_registry(outputs_root: Path) -> Path:
    outputs_root.mkdir(parents=True)
    path = registry.registry_path(outputs_root)
    path.write_bytes(b"not a database, a file cut short " * 100)
    return path


def read_only_dir(tmp_path: Path) -> Path:
    """A dir this process cannot write to: chmod 0555, or for root (whom no mode stops) a
    kernel dir that takes no new files."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    try:
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return path
    return Path("/sys/kernel")


def test_a_corrupt_registry_names_its_file_and_the_way_out(tmp_path):
    path = corrupt_registry(tmp_path / "out")
    with pytest.raises(RegistryError) as error:
        registry.list_experiments(tmp_path / "out")
    message = str(error.value)
    assert f"experiment registry {path} is corrupt" in message
    assert f"mv {path} {path}.corrupt" in message and "\n" not in message


def test_evsys_experiments_says_the_registry_is_corrupt_in_one_line(tmp_path, capsys):
    path = corrupt_registry(tmp_path / "out")
    assert experiments.main(["--root", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"evsys.experiments: the experiment registry {path} is corrupt")
    assert error.count("\n") == 1


def test_a_corrupt_registry_is_refused_before_the_sweep_dir_is_made(tmp_path):
    corrupt_registry(tmp_path / "out")
    page = tmp_path / "page.yaml"
    page.write_text(PAGE % (tmp_path / "out"))
    with pytest.raises(RegistryError, match="is corrupt"):
        evsys.Experiment.from_yaml(page).run(tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_a_read_only_outputs_root_is_one_line_naming_it(tmp_path):
    outputs_root = read_only_dir(tmp_path) / "outputs"
    page = tmp_path / "page.yaml"
    page.write_text(PAGE % outputs_root)
    with pytest.raises(ConfigError) as error:
        evsys.Experiment.from_yaml(page).run(tmp_path / "sweep")
    assert str(error.value).startswith(
        f"experiment.stores.outputs_root={outputs_root} cannot be written"
    )
    assert not (tmp_path / "sweep").exists()


@pytest.mark.integration
def test_the_cli_refuses_a_corrupt_registry_before_making_the_sweep_dir(tmp_path):
    path = corrupt_registry(tmp_path / "out")
    done = run_cli(
        [*FAST, "hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out", "-m"], tmp_path
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in output
    assert f"experiment registry {path.relative_to(tmp_path)} is corrupt" in output
    assert not (tmp_path / "sweep").exists()


@pytest.mark.integration
@pytest.mark.parametrize("multirun", [True, False], ids=["sweep", "single_run"])
def test_the_cli_says_a_read_only_outputs_root_in_one_line(tmp_path, multirun):
    outputs_root = read_only_dir(tmp_path) / "outputs"
    args = [*FAST, f"experiment.stores.outputs_root={outputs_root}"]
    done = run_cli([*args, "-m"] if multirun else args, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in output
    key = "experiment.stores.outputs_root" if multirun else "hydra.run.dir"
    assert f"{key}={outputs_root}" in output and "cannot be written" in output
