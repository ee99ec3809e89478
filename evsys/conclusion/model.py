"""The conclusion as a typed value: `Conclusion` and its parts, and its JSON form.

`conclusion.json` is `Conclusion.to_dict()` written with sorted keys; `Conclusion.from_dict()`
(or `Conclusion.load(path)`) reads it back, so the value built from a sweep dir equals the one
read from its file. The keys are the field names. A field in its class's OPTIONAL is left out
of the JSON when it is None (e.g. no `comparisons` when nothing could be compared, no
`continual` outside continual sweeps), so the file keeps the keys it always had.

SCHEMA_VERSION (an int, written as `schema_version`) changes when a key is renamed, removed or
changes meaning; adding a key does not. Version 1 is the layout below; a file written before
the version was recorded has the same layout and reads as 1. A newer version is refused.

No heavy imports (no numpy, scipy, torch): the Python API reads a conclusion through this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

SCHEMA_VERSION = 1
R = TypeVar("R", bound="_Record")


class _Record:
    """A flat JSON object as a dataclass: its keys are the fields, nested records excepted."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()  # keys left out of the JSON when None

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if not (getattr(self, f.name) is None and f.name in self.OPTIONAL)
        }

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The record from its JSON object; unknown keys (from a later evsys) are ignored."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


def _plain(value: Any) -> Any:
    """A field's JSON value: nested records become objects."""
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class ExperimentRef(_Record):
    id: str
    name: str
    parent_experiment_id: str | None = None


@dataclass(frozen=True)
class SuccessMetric(_Record):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"threshold"})

    name: str
    mode: str  # max | min
    min_effect: float = 0.0
    threshold: float | None = None  # the level each arm should reach (see `threshold`)


@dataclass(frozen=True)
class ThresholdArm(_Record):
    """One arm against the success metric's threshold (evsys/conclusion/threshold.py)."""

    arm: str
    mean: float
    ci95: list[float] | None  # None with one seed: no test
    n_seeds: int
    n_items: int | None
    p_reach: float | None  # the mean is beyond the threshold on the good side
    p_reach_holm: float | None  # Holm over the arms
    p_miss: float | None  # the mean is short of it
    p_miss_holm: float | None
    status: str  # clears | misses | undecided


@dataclass(frozen=True)
class ThresholdResult(_Record):
    """Which arms reach the threshold: at least it (max) or at most it (min)."""

    value: float
    direction: str  # "at least" | "at most"
    arms: list[ThresholdArm]  # in ranking order
    clearing: list[str]  # the arms that clear it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdResult:
        arms = [ThresholdArm.from_dict(a) for a in data["arms"]]
        return cls(data["value"], data["direction"], arms, list(data["clearing"]))


@dataclass(frozen=True)
class Group(_Record):
    """One arm's completed runs, ranked by the mean of the success metric."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"cost"})

    arm: str
    rank: int
    group_id: str | None
    overrides: list[str]  # the arm's overrides, without seed=
    n: int  # completed seeds
    mean: float
    std: float | None  # over seeds, ddof=1; None with one seed
    min: float
    max: float
    ci95: list[float] | None  # [lo, hi] of the mean (docs/statistics.md)
    values: dict[str, float]  # seed (as a string: a JSON key) -> value
    n_items: int | None = None  # scored items per seed; None: seed-level values only
    ci_method: str | None = None
    # its seeds' cost summed (peak memory: the largest), evsys/cost.py; None: no record has one
    cost: dict[str, Any] | None = None


@dataclass(frozen=True)
class ComparisonResult(_Record):
    """One comparison the verdict rests on; diff > 0 means `first` is better."""

    name: str  # "<first> vs <second>"
    first: str
    second: str
    diff: float
    ci95: list[float] | None
    p_value: float | None
    p_holm: float | None
    p_above: float | None  # diff > min_effect
    p_above_holm: float | None
    p_below: float | None  # diff < min_effect
    p_below_holm: float | None
    method: str
    paired: bool
    df: float | None
    n_first: int
    n_second: int
    n_items: int | None
    prob_improvement: float  # P(a seed of first beats a seed of second), ties count 1/2


@dataclass(frozen=True)
class PowerRow(_Record):
    """What a comparison could detect (80% power), and the seeds a target effect needs."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {"target", "seeds_needed", "mde_low", "mde_high"}
    )

    comparison: str
    n_seeds: int
    mde: float
    target: float | None = None  # None: no minimum effect to plan for (no target keys)
    seeds_needed: int | None = None  # with a target: None when no number of seeds would do
    # the mde were the variance at the 2.5% and 97.5% points of its pivot: how far the
    # estimate from these few seeds may be off (evsys.conclusion.variance.mde_range)
    mde_low: float | None = None
    mde_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # With a target, seeds_needed is written even when None (it then says "never").
        row = super().to_dict()
        if self.target is not None:
            row["seeds_needed"] = self.seeds_needed
        return row


@dataclass(frozen=True)
class RunProblem(_Record):
    """A failed run (with its error) or a missing one (no arm record: error is None)."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"error"})

    arm: str
    seed: int
    dir: str
    error: str | None = None


@dataclass(frozen=True)
class Export(_Record):
    """An arm's trained model (its best seed) and lm_eval's --model_args for it."""

    arm: str
    seed: int
    model: str  # relative to the sweep dir
    model_args: str
    tasks: list[str] = field(default_factory=list)  # harness tasks the arm was scored on


@dataclass(frozen=True)
class MatrixStats(_Record):
    mean: list[list[float]]  # [row][benchmark], over seeds
    std: list[list[float | None]]


@dataclass(frozen=True)
class MetricStats(_Record):
    mean: float
    std: float | None
    n: int


@dataclass(frozen=True)
class ContinualGroup(_Record):
    """A continual arm over its seeds: score matrices (per score, e.g. exact_match and loss)
    and chain metrics (avg_final, bwt, ...)."""

    n: int
    seeds: list[int]
    rows: list[str]  # the initial model, then each stage
    benchmarks: list[str]
    matrix: dict[str, MatrixStats]
    metrics: dict[str, MetricStats]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContinualGroup:
        return cls(
            n=data["n"],
            seeds=data["seeds"],
            rows=data["rows"],
            benchmarks=data["benchmarks"],
            matrix={k: MatrixStats.from_dict(v) for k, v in data["matrix"].items()},
            metrics={k: MetricStats.from_dict(v) for k, v in data["metrics"].items()},
        )


@dataclass(frozen=True)
class Conclusion(_Record):
    """The conclusion of an experiment: its groups ranked, the verdict and why, its problems."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {
            "comparisons", "surprises", "notes", "power", "adaptive", "fixed_n_reason",
            "continual", "threshold", "metadata", "verdict_basis", "verdict_p", "confirmation",
            "seed_pairing",
        }
    )  # fmt: skip

    experiment: ExperimentRef
    hypothesis: str | None
    success_metric: SuccessMetric
    baseline: str | None
    groups: list[Group]  # best first
    ranking: list[str]  # the groups' arms, best first
    best_arm: str | None
    verdict: str  # supported | refuted | inconclusive
    reason: str
    failed: list[RunProblem]
    missing: list[RunProblem]
    counts: dict[str, int]  # planned, completed, failed, missing
    other_metrics: dict[str, dict[str, float]]  # arm -> metric -> mean over seeds
    prediction: dict[str, str] | None = None  # the preregistered {better, than}
    kind: str | None = None  # preregistered | exploratory; None when nothing was decided
    claim: str | None = None
    exports: list[Export] = field(default_factory=list)
    # Optional: None when nothing could be compared (the verdict is then inconclusive).
    comparisons: list[ComparisonResult] | None = None
    surprises: list[str] | None = None
    notes: list[str] | None = None
    power: list[PowerRow] | None = None
    # Optional: the p-value the verdict rests on, and in words which one and why (raw or
    # Holm-adjusted, of which comparison); None when nothing was tested
    verdict_basis: str | None = None
    verdict_p: float | None = None
    # Optional: whether the comparisons pair by seed and why, decided from the plan's design
    # (evsys.conclusion.pairing); None when nothing was compared
    seed_pairing: str | None = None
    # Optional: adaptive experiments (the plan's design and rounds, and the fixed-n reason
    # the group-sequential verdict replaced) and continual sweeps (per continual arm).
    adaptive: dict[str, Any] | None = None
    fixed_n_reason: str | None = None
    # Optional: the winner confirmed on fresh seeds (evsys/conclusion/confirmation.py): the
    # arms, both stages' estimates and the shrinkage; the verdict is then the confirmation's
    confirmation: dict[str, Any] | None = None
    continual: dict[str, ContinualGroup] | None = None
    # Optional: which arms reach success_metric.threshold, when the experiment states one
    threshold: ThresholdResult | None = None
    # Optional: the experiment's free-form metadata, as its file states it (shown, never read)
    metadata: dict[str, Any] | None = None

    @property
    def problems(self) -> list[RunProblem]:
        """Failed and missing runs: the experiment did not complete when there are any."""
        return self.failed + self.missing

    def group(self, arm: str) -> Group | None:
        return next((g for g in self.groups if g.arm == arm), None)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "schema_version": SCHEMA_VERSION}

    def to_json(self) -> str:
        """conclusion.json's text: sorted keys, so a rebuild is byte for byte the same."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conclusion:
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(
                f"conclusion schema_version {version!r} is newer than this evsys reads "
                f"({SCHEMA_VERSION}); rebuild it with: evsys conclude <sweep dir>"
            )
        nested = {
            "experiment": ExperimentRef.from_dict(data["experiment"]),
            "success_metric": SuccessMetric.from_dict(data["success_metric"]),
            "groups": [Group.from_dict(g) for g in data["groups"]],
            "failed": [RunProblem.from_dict(r) for r in data["failed"]],
            "missing": [RunProblem.from_dict(r) for r in data["missing"]],
            "exports": [Export.from_dict(e) for e in data.get("exports") or []],
            "comparisons": _records(ComparisonResult, data.get("comparisons")),
            "power": _records(PowerRow, data.get("power")),
        }
        if data.get("threshold") is not None:
            nested["threshold"] = ThresholdResult.from_dict(data["threshold"])
        if data.get("continual") is not None:
            continual = data["continual"].items()
            nested["continual"] = {arm: ContinualGroup.from_dict(e) for arm, e in continual}
        return super().from_dict({**data, **nested})

    @classmethod
    def load(cls, path: str | Path) -> Conclusion:
        """A conclusion.json file (ValueError when it is not one)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path} holds no conclusion object")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path} is not a conclusion: {exc!r}") from exc


def _records(cls: type[R], items: list[dict] | None) -> list[R] | None:
    return None if items is None else [cls.from_dict(item) for item in items]
