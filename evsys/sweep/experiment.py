"""Experiment: launch, collect, conclude — from the CLI or from Python.

The CLI path is `python -m evsys.train +experiment=x -m`: Hydra composes the preset, the evsys
sweeper (evsys/sweep/sweeper.py) plans every job (evsys/sweep/plan.py) and calls `start_sweep`,
the launcher runs each job, and the conclusion callback calls `finish_sweep`.
`Experiment.from_yaml(path).run()` runs that same command on a standalone preset file and
reads the results back from the sweep dir.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.errors import RegistryError
from evsys.records import (
    CONCLUSION_FILES,
    ExperimentResult,
    Plan,
    load_experiment_result,
    plan_exists,
)
from evsys.sweep import registry

log = logging.getLogger("evsys")


def start_sweep(plan: Plan, sweep_dir: Path, config: DictConfig) -> None:
    """Write the plan into the sweep dir and register the experiment, before any job runs."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    plan.save(sweep_dir)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    registry.register(
        plan.outputs_root,
        {
            "id": plan.id,
            "name": plan.name,
            "hypothesis": plan.hypothesis,
            "status": "running",
            "sweep_dir": str(sweep_dir.resolve()),
            "parent_experiment_id": plan.parent_experiment_id,
            "created_at": plan.created_at,
        },
    )


def finish_sweep(sweep_dir: Path) -> dict | None:
    """Conclude from the files in the sweep dir, print the summary, update the registry."""
    # Imported here: the conclusion pulls in scipy and matplotlib, which a sweep's start-up
    # (and `--help`) should not pay for.
    from evsys.conclusion.render import print_summary

    if not plan_exists(sweep_dir):
        log.error("%s was never planned: nothing to conclude", sweep_dir)
        return None
    conclusion = conclude_sweep(sweep_dir)
    print_summary(conclusion)
    log.info("conclusion written to %s", sweep_dir / CONCLUSION_FILES[1])
    return conclusion


def conclude_sweep(sweep_dir: Path) -> dict:
    """Write the conclusion files and record the outcome in the experiment registry."""
    from evsys.conclusion.write import write_conclusion  # heavy: see finish_sweep

    conclusion = write_conclusion(sweep_dir)
    plan = Plan.load(sweep_dir)
    problems = conclusion.get("failed") or conclusion.get("missing")
    if not registry.registry_path(plan.outputs_root).is_file():
        log.warning("no experiment registry at %s; not updated", plan.outputs_root)
        return conclusion
    try:
        registry.update(
            plan.outputs_root,
            plan.id,
            status="failed" if problems else "completed",
            best_arm=conclusion.get("best_arm"),
            verdict=conclusion.get("verdict"),
            finished_at=_now(),
        )
    except RegistryError as error:
        # A sweep dir copied from elsewhere: its conclusion still stands on its own files.
        log.warning("registry not updated (%s); the conclusion files are written", error)
    return conclusion


class Experiment:
    """An experiment preset file, run with the same expansion, launcher and conclusion as the CLI.

    >>> result = Experiment.from_yaml("my_experiment.yaml").run()
    >>> result.best_arm, result.verdict
    """

    def __init__(self, preset: Path, overrides: list[str] | None = None) -> None:
        self.preset = Path(preset)
        self.overrides = list(overrides or [])

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Experiment:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiment file {path} does not exist")
        OmegaConf.load(path)  # a YAML syntax error surfaces here, naming the file
        return cls(path, overrides)

    def command(self, config_dir: Path, sweep_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "evsys.train", "--config-dir", str(config_dir),
            f"+experiment={self.preset.stem}", f"hydra.sweep.dir={sweep_dir}",
            *self.overrides, "-m",
        ]  # fmt: skip

    def run(self, sweep_dir: str | Path | None = None) -> ExperimentResult:
        """Run every arm (in a child process, so any Hydra state of the caller is untouched)."""
        sweep_dir = Path(sweep_dir or self._default_sweep_dir()).resolve()
        with tempfile.TemporaryDirectory(prefix="evsys-preset-") as config_dir:
            (Path(config_dir) / "experiment").mkdir()
            shutil.copy(self.preset, Path(config_dir) / "experiment" / self.preset.name)
            returncode = _run_streamed(self.command(Path(config_dir), sweep_dir))
        if not plan_exists(sweep_dir):
            raise RuntimeError(
                f"experiment {self.preset} did not start (exit code {returncode}); "
                "see the error above"
            )
        return load_experiment_result(sweep_dir)

    def _default_sweep_dir(self) -> Path:
        preset = OmegaConf.load(self.preset)
        experiment = preset.get("experiment") or {}
        root = OmegaConf.select(preset, "experiment.stores.outputs_root", default="outputs")
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        return Path(root) / str(experiment.get("name", self.preset.stem)) / stamp


def _run_streamed(command: list[str]) -> int:
    """Run the sweep's process with its output in ours. In a terminal it inherits the terminal
    (progress bars draw there); otherwise — a notebook, whose cells read sys.stdout and not the
    process's own stdout, or a pipe — each line is copied into sys.stdout, with colors and
    cursor tricks turned off, so no raw ANSI codes land in the captured output."""
    if sys.stdout.isatty():
        return subprocess.run(command, check=False).returncode
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
    env.pop("FORCE_COLOR", None)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
    return process.returncode


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
