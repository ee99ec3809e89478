"""Experiment: expand, validate, launch, collect, conclude — from the CLI or from Python.

The CLI path is `python -m evsys.train +experiment=x -m`: Hydra composes the preset, the evsys
sweeper (evsys/sweeper.py) calls `plan_sweep` and `start_sweep`, the launcher runs each job, and
the conclusion callback calls `finish_sweep`. `Experiment.from_yaml(path).run()` runs that same
command on a standalone preset file and reads the results back from the sweep dir.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from evsys import registry
from evsys.config import ConfigError, override_hint, validate_run_config
from evsys.evaluation.benchmarks import benchmark_label
from evsys.plan import PlannedJob, expand_jobs
from evsys.results import BOOKKEEPING_OVERRIDES, ArmResult, ExperimentResult, write_json_atomic

log = logging.getLogger("evsys")

PLAN_FILE = "experiment.json"


@dataclass
class SweepPlan:
    experiment: dict
    jobs: list[PlannedJob] = field(default_factory=list)


def plan_sweep(config: DictConfig, axes: list[str], config_loader, sweep_dir: Path) -> SweepPlan:
    """Expand the sweep and compose + validate every job; raises ConfigError naming the arm."""
    experiment = OmegaConf.to_container(config.experiment, resolve=True)
    experiment["id"] = _existing_id(sweep_dir) or registry.new_experiment_id(experiment["name"])
    experiment["success_metric"] = _success_metric(config)
    jobs = expand_jobs(config.experiment, axes)
    for job in jobs:
        job.overrides.append(f"experiment.id={experiment['id']}")
        _validate_job(job, config, config_loader)
    return SweepPlan(experiment, jobs)


def _validate_job(job: PlannedJob, config: DictConfig, config_loader) -> None:
    where = f"arm {job.arm!r} (seed {job.seed}, overrides {' '.join(job.overrides[:-3])})"
    try:
        job_config = config_loader.load_sweep_config(config, list(job.overrides))
        validate_run_config(job_config)
    except (HydraException, ConfigError) as error:
        hint = override_hint(str(error), config)
        raise ConfigError(f"{where}: {hint or error}") from None


def _existing_id(sweep_dir: Path) -> str | None:
    plan_file = sweep_dir / PLAN_FILE
    if plan_file.exists():
        return json.loads(plan_file.read_text()).get("id")
    return None


def _success_metric(config: DictConfig) -> dict:
    """The configured success metric; by default exact match on the first benchmark."""
    metric = OmegaConf.to_container(config.experiment.success_metric, resolve=True)
    if not metric["name"]:
        benchmarks = list(config.eval.benchmarks)
        if benchmarks:
            label = benchmark_label(str(benchmarks[0]))
            metric["name"], metric["mode"] = f"eval/{label}/exact_match", "max"
        else:
            metric["name"], metric["mode"] = "val/loss", "min"
    if metric["mode"] not in ("max", "min"):
        raise ConfigError(f"experiment.success_metric.mode={metric['mode']!r}: use max or min")
    return metric


def print_plan(plan: SweepPlan, pending: list[PlannedJob], console: Console | None = None) -> None:
    console = console or Console(width=max(100, Console().width))
    experiment = plan.experiment
    table = Table(title=f"Experiment {experiment['name']} ({experiment['id']})")
    for column in ("#", "arm", "seed", "overrides", "status"):
        table.add_column(column)
    pending_dirs = {job.dir for job in pending}
    for index, job in enumerate(plan.jobs):
        status = "to run" if job.dir in pending_dirs else "completed (skipped)"
        shown = " ".join(o for o in job.overrides if not o.startswith(BOOKKEEPING_OVERRIDES))
        table.add_row(str(index), job.arm, str(job.seed), shown, status)
    if experiment.get("hypothesis"):
        console.print(f"[bold]Hypothesis:[/] {experiment['hypothesis']}")
    metric = experiment["success_metric"]
    console.print(f"[bold]Success metric:[/] {metric['name']} ({metric['mode']})")
    console.print(table)
    console.print(f"{len(pending)} of {len(plan.jobs)} jobs to run")


def start_sweep(plan: SweepPlan, sweep_dir: Path, config: DictConfig) -> None:
    """Write the plan into the sweep dir and register the experiment, before any job runs."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    experiment = plan.experiment
    outputs_root = str(Path(experiment["stores"]["outputs_root"]).resolve())
    record = {
        **{k: experiment[k] for k in ("id", "name", "hypothesis", "success_metric", "baseline")},
        **{k: experiment[k] for k in ("n_repeats", "base_seed", "parent_experiment_id")},
        "metadata": experiment["metadata"],
        "outputs_root": outputs_root,
        "created_at": _now(),
        "planned": [job.to_dict() for job in plan.jobs],
    }
    write_json_atomic(sweep_dir / PLAN_FILE, record)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    registry.register(
        outputs_root,
        {
            "id": experiment["id"],
            "name": experiment["name"],
            "hypothesis": experiment["hypothesis"],
            "status": "running",
            "sweep_dir": str(sweep_dir.resolve()),
            "parent_experiment_id": experiment["parent_experiment_id"],
            "created_at": record["created_at"],
        },
    )


def finish_sweep(sweep_dir: Path) -> dict | None:
    """Conclude from the files in the sweep dir, print the summary, update the registry."""
    from evsys.conclusion import print_summary

    if not (sweep_dir / PLAN_FILE).exists():
        log.error("no %s in %s: nothing was planned, nothing to conclude", PLAN_FILE, sweep_dir)
        return None
    conclusion = conclude_sweep(sweep_dir)
    print_summary(conclusion)
    log.info("conclusion written to %s", sweep_dir / "conclusion.md")
    return conclusion


def conclude_sweep(sweep_dir: Path) -> dict:
    """Write the conclusion files and record the outcome in the experiment registry."""
    from evsys.conclusion import write_conclusion

    conclusion = write_conclusion(sweep_dir)
    plan = json.loads((Path(sweep_dir) / PLAN_FILE).read_text())
    problems = conclusion.get("failed") or conclusion.get("missing")
    if not registry.registry_path(plan.get("outputs_root", "")).is_file():
        log.warning("no experiment registry at %s; not updated", plan.get("outputs_root"))
        return conclusion
    try:
        registry.update(
            plan["outputs_root"],
            plan["id"],
            status="failed" if problems else "completed",
            best_arm=conclusion.get("best_arm"),
            verdict=conclusion.get("verdict"),
            finished_at=_now(),
        )
    except (KeyError, registry.ExperimentNotFound) as error:
        # A sweep dir copied from elsewhere: its conclusion still stands on its own files.
        log.warning("registry not updated (%s); the conclusion files are written", error)
    return conclusion


def load_experiment_result(sweep_dir: Path) -> ExperimentResult:
    """Every arm's record and the conclusion of a finished sweep dir."""
    plan = json.loads((sweep_dir / PLAN_FILE).read_text())
    conclusion_file = sweep_dir / "conclusion.json"
    conclusion = json.loads(conclusion_file.read_text()) if conclusion_file.exists() else {}
    arms = [
        ArmResult.load(sweep_dir / job["dir"])
        for job in plan["planned"]
        if (sweep_dir / job["dir"] / "result.json").exists()
    ]
    return ExperimentResult(plan["name"], plan["hypothesis"], sweep_dir, arms, conclusion)


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
            completed = subprocess.run(self.command(Path(config_dir), sweep_dir), check=False)
        if not (sweep_dir / PLAN_FILE).exists():
            raise RuntimeError(
                f"experiment {self.preset} did not start (exit code {completed.returncode}); "
                "see the error above"
            )
        return load_experiment_result(sweep_dir)

    def _default_sweep_dir(self) -> Path:
        preset = OmegaConf.load(self.preset)
        experiment = preset.get("experiment") or {}
        root = OmegaConf.select(preset, "experiment.stores.outputs_root", default="outputs")
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        return Path(root) / str(experiment.get("name", self.preset.stem)) / stamp


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
