"""An experiment's results in Python: every arm's record and the conclusion, read from the
files of its sweep dir (evsys/records.py names them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evsys.conclusion.model import Conclusion, RunProblem
from evsys.records import CONCLUSION_FILES, ArmResult, Plan, has_record


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
