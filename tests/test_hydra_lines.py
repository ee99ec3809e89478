"""evsys on both Hydra lines it supports (hydra-core 1.3 and 1.4): the same sweeps run and
conclude, and evsys's own code makes Hydra print no warning. `.ci/run` runs the tests marked
`hydra_lines` once more in a second environment with the 1.4 release candidate."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import hydra
import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from evsys.cli.missing_plugin import missing_plugin
from evsys.compose import compose_run_config
from evsys.hydra_lines import HYDRA_1_4, hydra_line, initialize_options, main_options
from evsys.run.progress import jobs_share_terminal
from tests.conftest import FAST, run_cli

# A warning Hydra itself prints ("<...>/hydra/<file>.py:<line>: UserWarning: ..."), or 1.4's
# migration warning, wherever it comes from.
HYDRA_WARNING = re.compile(r"/hydra/\S+\.py:\d+: \w*Warning|Hydra15MigrationWarning")
JOBLIB = "hydra_plugins.hydra_joblib_launcher"


def hydra_warnings(output: str) -> list[str]:
    """Lines of a command's output where Hydra warned."""
    return [line for line in output.splitlines() if HYDRA_WARNING.search(line)]


def test_the_options_fit_the_installed_line():
    assert hydra_line("1.4.0rc3") == (1, 4) and hydra_line("1.3.8") == (1, 3)
    assert HYDRA_1_4 == (hydra_line(hydra.__version__) >= (1, 4))
    if HYDRA_1_4:  # version_base is deprecated; what configs may instantiate is declared
        assert "version_base" not in main_options() and initialize_options() == {}
        assert "evsys.*" in main_options()["execution_whitelist"]
    else:  # without it 1.3 falls back to 1.1's defaults
        assert main_options() == initialize_options() == {"version_base": "1.3"}


def test_composing_twice_makes_hydra_warn_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compose_run_config(["algorithm.max_steps=3"])
        compose_run_config(["algorithm.max_steps=4"])  # schemas are registered once
    assert [str(w.message) for w in caught if "hydra" in w.filename] == []


@pytest.mark.skipif(bool(missing_plugin(["hydra/launcher=joblib"])) is False, reason="installed")
def test_a_missing_hydra_plugin_says_what_to_install_and_evsys_own_option(tmp_path):
    done = run_cli(["+experiment=demo", "hydra/launcher=joblib", "-m"], tmp_path)
    assert done.returncode == 1
    assert "pip install hydra-joblib-launcher" in done.stderr
    assert "hydra/launcher=local" in done.stderr
    assert "Could not find" not in done.stderr + done.stdout  # not Hydra's list of options
    assert not (tmp_path / "multirun").exists()


JOBLIB_LAUNCHER = f"{JOBLIB}.joblib_launcher.JoblibLauncher"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def test_slurm_without_sbatch_on_path_is_refused_before_anything_is_registered(tmp_path):
    outputs = tmp_path / "out"
    args = ["+experiment=demo", "hydra/launcher=slurm", f"experiment.stores.outputs_root={outputs}"]
    done = run_cli([*args, "-m"], tmp_path, env={"PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 1
    assert "hydra/launcher=slurm submits through SLURM's `sbatch`" in done.stderr
    assert "hydra/launcher=local" in done.stderr and "Traceback" not in done.stderr
    assert not outputs.exists() and not (tmp_path / "multirun").exists()  # no registry row


@pytest.mark.parametrize(
    ("launcher", "parallel"),
    [
        ({"_target_": JOBLIB_LAUNCHER, "n_jobs": -1}, True),
        ({"_target_": JOBLIB_LAUNCHER, "n_jobs": 1}, False),
        ({"_target_": BASIC_LAUNCHER}, False),
    ],
)
def test_parallel_joblib_jobs_print_lines_not_bars(launcher, parallel):
    hydra_config = HydraConfig.instance()
    cfg = OmegaConf.create({"hydra": OmegaConf.structured(HydraConf)})
    cfg.hydra.launcher = launcher
    try:
        hydra_config.set_config(cfg)
        assert jobs_share_terminal() is parallel
    finally:
        hydra_config.cfg = None


def sweep(tmp_path, *extra: str) -> tuple[dict, str]:
    """A 2-arm demo sweep (one seed each) with `extra`; its conclusion and output."""
    args = ["+experiment=demo", "experiment.n_repeats=1", *FAST, *extra]
    args += [f"hydra.sweep.dir={tmp_path / 'sweep'}", f"experiment.stores.outputs_root={tmp_path}"]
    done = run_cli([*args, "-m"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert hydra_warnings(output) == [], hydra.__version__
    return json.loads((tmp_path / "sweep" / "conclusion.json").read_text()), output


@pytest.mark.integration
@pytest.mark.hydra_lines
def test_evsys_sweeper_runs_and_concludes(tmp_path):
    conclusion, _ = sweep(tmp_path)
    assert conclusion["counts"]["completed"] == 2 and conclusion["best_arm"]


@pytest.mark.integration
@pytest.mark.hydra_lines
def test_basic_sweeper_runs_and_concludes(tmp_path):
    conclusion, _ = sweep(tmp_path, "hydra/sweeper=basic", "algorithm.lr=1e-4,3e-3")
    assert conclusion["counts"]["completed"] == 2


@pytest.mark.integration
@pytest.mark.hydra_lines
def test_optuna_sweeper_runs_its_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    args = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.direction=maximize"]
    conclusion, _ = sweep(
        tmp_path, *args, "hydra.sweeper.sampler.seed=0", "algorithm.lr=interval(1e-4,3e-3)"
    )
    assert conclusion["counts"]["completed"] == 2


@pytest.mark.integration
@pytest.mark.hydra_lines
def test_joblib_launcher_runs_arms_in_parallel_with_line_progress(tmp_path):
    pytest.importorskip(JOBLIB)
    conclusion, output = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert conclusion["counts"]["completed"] == 2
    assert "\r" not in output  # no bar redrawn over another
