"""Experiment: plan, launch, collect, conclude — from the CLI or from Python.

The CLI path is `python -m evsys.train +experiment=x -m`: Hydra composes the preset, the evsys
sweeper (evsys/sweep/sweeper.py) plans every job (evsys/sweep/plan.py) and calls `start_sweep`,
the launcher runs each job, and the conclusion callback calls `finish_sweep`.
`Experiment.from_yaml(path).run()` plans a standalone file (a preset, or the concept page's
format translated into one) in-process with the same arguments, raising the plan's ConfigError,
then runs that same command in a child process; the child says through the sweep dir's launch
report (evsys/sweep/launch_report.py) if it refused or crashed, and the results are read back
from the sweep dir.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys import provenance, registry
from evsys.compose import quoted, search_path
from evsys.conclusion.model import Conclusion
from evsys.cost import sweep_device_hours
from evsys.errors import Interrupted, NotASweepDir, RegistryError
from evsys.interrupts import INTERRUPTED_CODES
from evsys.records import CONCLUSION_FILES, MULTIRUN_FILE, Plan, plan_exists, write_atomic
from evsys.results import ExperimentResult, load_experiment_result
from evsys.run.tensorboard import viewing_hint
from evsys.stores import check_sweep_stores
from evsys.sweep import launch_report
from evsys.sweep.page_format import ExperimentConfig, Page, check_page, is_page_file, read_yaml
from evsys.sweep.page_preset import preset_yaml
from evsys.sweep.plan import plan_arguments
from evsys.yaml_file import load_preset, load_yaml

log = logging.getLogger("evsys")


def start_sweep(plan: Plan, sweep_dir: Path, config: DictConfig) -> None:
    """Write the plan into the sweep dir and register the experiment, before any job runs."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    launch_report.clear(sweep_dir)  # this launch started: an earlier one's refusal is history
    plan.provenance = code_provenance(sweep_dir)
    plan.save(sweep_dir)
    OmegaConf.save(config, sweep_dir / MULTIRUN_FILE)
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
            "metadata": plan.metadata,
        },
    )


def code_provenance(sweep_dir: Path) -> dict:
    """This process's provenance, its uncommitted diff saved beside the plan. A re-run into
    the dir with other code is said, not refused: each record carries the code that made it."""
    now = provenance.collect()
    before = _planned_provenance(sweep_dir)
    if provenance.code_changed(before, now):
        log.warning(
            "%s was planned with other code: %s then, %s now; each record names its own",
            sweep_dir, provenance.code_label(before), provenance.code_label(now),
        )  # fmt: skip
    old_hash = ((before or {}).get("code") or {}).get("diff_sha256")
    save_code_diff(sweep_dir, provenance.code_diff(), old_hash)
    return now


def save_code_diff(sweep_dir: Path, diff: str, old_hash: str | None) -> None:
    """`diff` as <sweep dir>/code.diff (none when the code is committed); an earlier run's
    other diff is kept as code.<its hash>.diff."""
    path = sweep_dir / provenance.DIFF_FILE
    if path.is_file() and path.read_text(encoding="utf-8") != diff:
        path.rename(sweep_dir / f"code.{old_hash or 'earlier'}.diff")
    if diff:
        write_atomic(path, lambda out: out.write(diff.encode("utf-8")))


def _planned_provenance(sweep_dir: Path) -> dict | None:
    try:
        return Plan.load(sweep_dir).provenance
    except NotASweepDir:  # not planned yet, or a plan file that is not one
        return None


def finish_sweep(sweep_dir: Path) -> Conclusion | None:
    """Conclude from the files in the sweep dir, print the summary, update the registry."""
    # Imported here: the conclusion pulls in scipy and matplotlib, which a sweep's start-up
    # (and `--help`) should not pay for.
    from evsys.conclusion.render import print_summary

    if not plan_exists(sweep_dir):
        log.error("%s was never planned: nothing to conclude", sweep_dir)
        return None
    conclusion = conclude(sweep_dir)
    print_summary(conclusion)
    log.info("conclusion written to %s", sweep_dir / CONCLUSION_FILES[1])
    log.info(viewing_hint(sweep_dir))
    return conclusion


def conclude(sweep_dir: str | Path) -> Conclusion:
    """The conclusion of a sweep dir, a pure function of its files: written beside them
    (conclusion.json, .md, plots) and recorded in the experiment registry. The core's third
    call, after `evsys.plan` and `evsys.run_experiment`; `evsys conclude DIR` calls it too."""
    from evsys.conclusion.write import write_conclusion  # heavy: see finish_sweep

    sweep_dir = Path(sweep_dir)
    try:
        conclusion = write_conclusion(sweep_dir)  # removes the old one when it fails
    except Exception as error:
        with contextlib.suppress(Exception):  # a garbled plan: no registry row to name
            _record_outcome(sweep_dir, "failed", None, f"no conclusion: {error}")
        raise
    status = "failed" if conclusion.problems else "completed"
    _record_outcome(sweep_dir, status, conclusion.best_arm, conclusion.verdict)
    return conclusion


def _record_outcome(
    sweep_dir: Path, status: str, best_arm: str | None, verdict: str | None
) -> None:
    """The experiment's row in the registry, when there is one: its status, verdict and the
    device-hours its records spent."""
    plan = Plan.load(sweep_dir)
    if not registry.registry_path(plan.outputs_root).is_file():
        log.warning("no experiment registry at %s; not updated", plan.outputs_root)
        return
    try:
        registry.update(
            plan.outputs_root,
            plan.id,
            status=status,
            best_arm=best_arm,
            verdict=verdict,
            finished_at=_now(),
            device_hours=sweep_device_hours(sweep_dir, plan),
        )
    except RegistryError as error:
        # A sweep dir copied from elsewhere: its conclusion still stands on its own files.
        log.warning("registry not updated (%s); the sweep dir's files stand on their own", error)


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
            else:
                load_preset(self.preset)  # bad YAML, the page's shorthand: one line
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
        load_yaml(path)  # a YAML syntax error: a ConfigError, file:line:column
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

    def arguments(self, config_dir: Path, sweep_dir: Path | None = None) -> list[str]:
        """`evsys train`'s arguments for this experiment (but -m): the in-process plan and the
        child process compose from these same ones."""
        where = [f"hydra.sweep.dir={quoted(str(sweep_dir))}"] if sweep_dir is not None else []
        return [*search_path([config_dir]), f"+experiment={self.stem}", *where, *self.overrides]

    def command(self, config_dir: Path, sweep_dir: Path) -> list[str]:
        arguments = self.arguments(config_dir, sweep_dir)
        return [sys.executable, "-m", "evsys.train", *arguments, "-m"]

    def launch(self, sweep_dir: str | Path | None = None) -> int:
        """Run every arm in a child process (any Hydra state of the caller is untouched);
        returns its exit code: 0 when every arm completed."""
        sweep_dir = Path(sweep_dir or self.default_sweep_dir()).resolve()
        with self.config_dir() as config_dir:
            return _run_streamed(self.command(config_dir, sweep_dir))

    def run(self, sweep_dir: str | Path | None = None) -> ExperimentResult:
        """Plan every job in-process (a ConfigError names the arm and key, and nothing is
        launched), run them in a child process, then read every ArmResult and the conclusion
        back from the sweep dir. A refusal or crash of the child is raised as its error, an
        interrupted child (Ctrl-C, SIGTERM) as Interrupted."""
        sweep_dir = Path(sweep_dir or self.default_sweep_dir()).resolve()
        what = f"experiment {self.preset or self.stem}"
        launch_id = secrets.token_hex(8)
        with self.config_dir() as config_dir:
            plan, _ = plan_arguments(self.arguments(config_dir, sweep_dir), sweep_dir)
            check_sweep_stores(plan.outputs_root, sweep_dir)  # said before any dir is made
            sweep_dir.mkdir(parents=True, exist_ok=True)  # where the child reports to us
            command = self.command(config_dir, sweep_dir)
            code = _run_streamed(command, {launch_report.LAUNCH_ID: launch_id})
        if report := launch_report.read(sweep_dir, launch_id):
            raise report.error(what)
        if code in INTERRUPTED_CODES:  # its conclusion, if any, is not of every arm
            raise Interrupted(
                f"{what} was interrupted (exit code {code}) in {sweep_dir}; completed arms keep "
                "their records: run it again with the same sweep dir to resume the others"
            )
        if not plan_exists(sweep_dir):  # e.g. killed before it could say why
            raise RuntimeError(f"{what} did not start (exit code {code}); see the error above")
        return load_experiment_result(sweep_dir)

    def default_sweep_dir(self) -> Path:
        """The file's output_dir (hydra.sweep.dir), else <outputs_root>/<name>/<timestamp>."""
        preset = OmegaConf.create(self.preset_text())
        chosen = OmegaConf.select(preset, "hydra.sweep.dir", default=None)
        if isinstance(chosen, str) and "${" not in chosen:
            return Path(chosen)
        root = OmegaConf.select(preset, "experiment.stores.outputs_root", default=None)
        name = OmegaConf.select(preset, "experiment.name", default=self.stem)
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        return Path(root or registry.default_outputs_root()) / str(name) / stamp


def _run_streamed(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run the sweep's process with its output in ours; its exit code. In a terminal it
    inherits the terminal (progress bars draw there); otherwise — a notebook, whose cells read
    sys.stdout and not the process's own stdout, or a pipe — each line is copied into
    sys.stdout, with colors and cursor tricks turned off, so no raw ANSI codes land in the
    captured output. What happened is read from the sweep dir, never from this output."""
    env = {**os.environ, **(env or {})}
    if sys.stdout.isatty():
        return subprocess.run(command, check=False, env=env).returncode
    env.update({"NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"})
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
