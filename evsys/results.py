"""An experiment's results in Python: every arm's record and the conclusion, read from the
files of its sweep dir (evsys/records.py names them). `evsys.load(sweep_dir_or_id)` reads a
past experiment's; evsys/result_tables.py shows them (reprs, HTML, DataFrames)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evsys import result_tables
from evsys.conclusion.model import Conclusion, RunProblem
from evsys.records import CONCLUSION_FILES, ArmResult, Plan, has_record

if TYPE_CHECKING:
    import pandas


@dataclass
class ExperimentResult:
    """What `Experiment.run()` returns: every arm's record and the conclusion (None until
    conclusion.json is written, e.g. while a fire-and-forget SLURM sweep still runs)."""

    name: str
    hypothesis: str
    sweep_dir: Path
    arms: list[ArmResult]
    conclusion: Conclusion | None

    @property
    def best_arm(self) -> str | None:
        return self.conclusion.best_arm if self.conclusion else None

    @property
    def verdict(self) -> str | None:
        return self.conclusion.verdict if self.conclusion else None

    @property
    def failed(self) -> list[RunProblem]:
        """The failed, then the missing runs."""
        return self.conclusion.problems if self.conclusion else []

    def to_dataframe(self) -> pandas.DataFrame:
        """One row per arm, seed and stage: arm, seed, stage (selection or confirmation),
        status, the swept keys, every metric (needs pandas)."""
        return result_tables.runs_dataframe(self)

    def groups_dataframe(self) -> pandas.DataFrame:
        """One row per arm, best first: the success metric's mean, std, 95% CI and seeds."""
        return result_tables.groups_dataframe(self)

    def __repr__(self) -> str:
        return result_tables.experiment_repr(self)

    def _repr_html_(self) -> str:
        return result_tables.experiment_html(self)


def load(experiment: str | Path, outputs_root: str | Path | None = None) -> ExperimentResult:
    """The results of a past experiment, given as its sweep dir, its id, a unique id prefix or
    `latest` (ids are looked up in the registry under `outputs_root`; default: $EVSYS_OUTPUTS_ROOT,
    else ./outputs)."""
    from evsys import registry

    return load_experiment_result(registry.locate(experiment, outputs_root).resolve())


def load_experiment_result(sweep_dir: Path) -> ExperimentResult:
    """Every arm's record and the conclusion of a finished sweep dir."""
    sweep_dir = Path(sweep_dir)
    plan = Plan.load(sweep_dir)
    conclusion_file = sweep_dir / CONCLUSION_FILES[0]
    conclusion = Conclusion.load(conclusion_file) if conclusion_file.exists() else None
    arms = [
        ArmResult.load(sweep_dir / job.dir)
        for job in plan.planned
        if has_record(sweep_dir / job.dir)
    ]
    return ExperimentResult(plan.name, plan.hypothesis, sweep_dir, arms, conclusion)
