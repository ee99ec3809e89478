"""Experiment: launch, collect, conclude — from the CLI or from Python.

The CLI path is `python -m evsys.train +experiment=x -m`: Hydra composes the preset, the evsys
sweeper (evsys/sweep/sweeper.py) plans every job (evsys/sweep/plan.py) and calls `start_sweep`,
the launcher runs each job, and the conclusion callback calls `finish_sweep`.
`Experiment.from_yaml(path).run()` runs that same command on a standalone file (a preset, or
the concept page's format translated into one) and reads the results back from the sweep dir.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.errors import NOTHING_RUN, ConfigError, RegistryError
from evsys.records import (
    CONCLUSION_FILES,
    ExperimentResult,
    Plan,
    load_experiment_result,
    plan_exists,
)
from evsys.run.tensorboard import viewing_hint
from evsys.sweep import registry
from evsys.sweep.page_format import ExperimentConfig, Page, check_page, is_page_file, read_yaml
from evsys.sweep.page_preset import preset_yaml

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
    log.info(viewing_hint(sweep_dir))
    return conclusion


def conclude_sweep(sweep_dir: Path) -> dict:
    """Write the conclusion files and record the outcome in the experiment registry."""
    from evsys.conclusion.write import write_conclusion  # heavy: see finish_sweep

    conclusion = write_conclusion(sweep_dir)
    plan = Plan.load(sweep_dir)
    problems = conclusion.problems
    if not registry.registry_path(plan.outputs_root).is_file():
        log.warning("no experiment registry at %s; not updated", plan.outputs_root)
        return conclusion
    try:
        registry.update(
            plan.outputs_root,
            plan.id,
            status="failed" if problems else "completed",
            best_arm=conclusion.best_arm,
            verdict=conclusion.verdict,
            finished_at=_now(),
        )
    except RegistryError as error:
        # A sweep dir copied from elsewhere: its conclusion still stands on its own files.
        log.warning("registry not updated (%s); the conclusion files are written", error)
    return conclusion


class Experiment:
    """The experiment: a hypothesis, its arms (training runs) and the conclusion, run with the
    same expansion, launcher and conclusion as the CLI, with all of its bookkeeping.

    >>> result = Experiment.from_yaml("config.yaml").run()   # the concept page's file, or a preset
    >>> result = Experiment(ExperimentConfig(name="x", run={...})).run()
    >>> result.best_arm, result.verdict

    The concept page's file (one of run / runs / matrix, evsys/sweep/page_format.py) is written
    as its equivalent preset (evsys/sweep/page_preset.py); from there both forms run alike.
    """

    def __init__(self, config: str | Path | ExperimentConfig | dict, overrides=None) -> None:
        self.overrides = list(overrides or [])
        self.preset: Path | None = None  # the file, preset form or the page's
        self.page: Page | None = None  # the page's format, checked; None for a preset
        if isinstance(config, (str, Path)):
            self.preset = Path(config)
            if is_page_file(self.preset):
                self.page = check_page(read_yaml(self.preset))
        elif isinstance(config, (dict, ExperimentConfig)):
            self.page = check_page(config if isinstance(config, dict) else config.to_dict())
        else:
            raise TypeError(
                "Experiment takes the path of an experiment file, the concept page's "
                f"evsys.ExperimentConfig or its mapping, not {type(config).__name__}"
            )

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Experiment:
        """The experiment file at `path`, in the concept page's format or as a Hydra preset;
        a ConfigError names any bad key in the file before anything runs."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiment file {path} does not exist")
        OmegaConf.load(path)  # a YAML syntax error surfaces here, naming the file
        return cls(path, overrides)

    @property
    def stem(self) -> str:
        """The preset's name in its config dir: +experiment=<stem>."""
        if self.preset is not None:
            return self.preset.stem
        return re.sub(r"[^\w.-]", "_", str(self.page.experiment.get("name", "experiment")))

    def preset_text(self) -> str:
        """The experiment as a preset file: the file itself, or the page's translated."""
        if self.page is None:
            return self.preset.read_text(encoding="utf-8")
        return preset_yaml(self.page, str(self.preset or ""))

    @contextmanager
    def config_dir(self) -> Iterator[Path]:
        """A temporary Hydra config dir holding the preset as experiment/<stem>.yaml."""
        with tempfile.TemporaryDirectory(prefix="evsys-preset-") as directory:
            path = Path(directory) / "experiment" / f"{self.stem}.yaml"
            path.parent.mkdir()
            path.write_text(self.preset_text(), encoding="utf-8")
            yield Path(directory)

    def command(self, config_dir: Path, sweep_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "evsys.train", "--config-dir", str(config_dir),
            f"+experiment={self.stem}", f"hydra.sweep.dir={sweep_dir}",
            *self.overrides, "-m",
        ]  # fmt: skip

    def launch(self, sweep_dir: str | Path | None = None) -> int:
        """Run every arm in a child process (any Hydra state of the caller is untouched);
        returns its exit code: 0 when every arm completed."""
        sweep_dir = Path(sweep_dir or self.default_sweep_dir()).resolve()
        return self._launch(sweep_dir)[0]

    def _launch(self, sweep_dir: Path) -> tuple[int, str | None]:
        with self.config_dir() as config_dir:
            return _run_streamed(self.command(config_dir, sweep_dir))

    def run(self, sweep_dir: str | Path | None = None) -> ExperimentResult:
        """Run every arm, then read every ArmResult and the conclusion back from the sweep dir."""
        sweep_dir = Path(sweep_dir or self.default_sweep_dir()).resolve()
        code, refusal = self._launch(sweep_dir)
        if not plan_exists(sweep_dir):
            if refusal:  # the plan's own one-line reason, as a Python error
                raise ConfigError(f"experiment {self.preset or self.stem}: {refusal}")
            raise RuntimeError(
                f"experiment {self.preset or self.stem} did not start (exit code {code}); "
                "see the error above"
            )
        return load_experiment_result(sweep_dir)

    def default_sweep_dir(self) -> Path:
        """The file's output_dir (hydra.sweep.dir), else <outputs_root>/<name>/<timestamp>."""
        preset = OmegaConf.create(self.preset_text())
        chosen = OmegaConf.select(preset, "hydra.sweep.dir", default=None)
        if isinstance(chosen, str) and "${" not in chosen:
            return Path(chosen)
        root = OmegaConf.select(preset, "experiment.stores.outputs_root", default="outputs")
        name = OmegaConf.select(preset, "experiment.name", default=self.stem)
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        return Path(root or "outputs") / str(name) / stamp


def _run_streamed(command: list[str]) -> tuple[int, str | None]:
    """Run the sweep's process with its output in ours: its exit code, and the reason it gave
    when it refused to start ("... Nothing was run."), if seen. In a terminal it inherits the
    terminal (progress bars draw there); otherwise — a notebook, whose cells read sys.stdout
    and not the process's own stdout, or a pipe — each line is copied into sys.stdout, with
    colors and cursor tricks turned off, so no raw ANSI codes land in the captured output."""
    if sys.stdout.isatty():
        return subprocess.run(command, check=False).returncode, None
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
    env.pop("FORCE_COLOR", None)
    previous, refusal = "", None
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith(NOTHING_RUN) and previous:
                refusal = LOG_PREFIX.sub("", previous.strip())
            previous = line
    return process.returncode, refusal


LOG_PREFIX = re.compile(r"^(\[[^\]]*\])+ ?(- )?")  # "[time][HYDRA] ", "[time][evsys][ERROR] - "


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
