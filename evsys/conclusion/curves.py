"""Seed-averaged learning curves: per arm, the mean over its seeds ± a 95% band at each step.

TensorBoard shows one run per arm and seed and cannot average them (tensorboard#376). The
conclusion reads each completed run's scalars back from its event files (the record's
`artifacts.tensorboard`) and writes, per arm:

    conclusion_curves.png                 one panel per curve, one line per arm, band shaded
    tensorboard/<arm>/mean, lower, upper  runs beside the seeds': Time Series shows one line
                                          per arm (filter runs by `mean`)

Curves: `train/loss`, every `val/*`, and the success metric when it is logged at more than one
step (benchmarks scored during training); a score logged once is conclusion.png's. The band is
Student's t interval of the mean over seeds at each step (n >= 2; one seed has none). Seeds of
one arm log at the same steps; where they do not (a seed that stopped early), the curve is
averaged only at the steps every seed has, and conclusion.md says so. A run with no event file,
or one that cannot be read, is named in conclusion.md's notes and left out of the mean.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evsys.conclusion.model import Conclusion
from evsys.conclusion.runs import collect_runs
from evsys.conclusion.statistics import CONFIDENCE
from evsys.confine import inside_sweep
from evsys.errors import OutsideSweepDir
from evsys.identity import REPLICATE_KEYS
from evsys.records import Plan, write_atomic

CURVES_PLOT = "conclusion_curves.png"
BAND_RUNS = ("mean", "lower", "upper")  # <sweep>/tensorboard/<arm>/<name>
TRAIN_LOSS = "train/loss"
VALIDATION = "val/"


@dataclass(frozen=True)
class Curve:
    """One tag of one arm: the mean over seeds at each step all of them logged."""

    steps: list[int]
    mean: list[float]
    lower: list[float] | None  # None with one seed: no interval
    upper: list[float] | None
    n: int  # seeds averaged


def average_curves(seeds: dict[int, dict[int, float]]) -> tuple[Curve, list[int]]:
    """The mean ± 95% t band over `seeds` (seed -> step -> value) at the steps every seed has,
    and the seeds that logged steps beyond those (stopped-early seeds leave the others' tails
    out)."""
    import numpy as np
    from scipy import stats

    steps = sorted(set.intersection(*(set(values) for values in seeds.values())))
    values = np.array([[seeds[seed][step] for step in steps] for seed in sorted(seeds)])
    n = len(seeds)
    mean = values.mean(axis=0) if steps else np.array([])
    longer = [seed for seed in sorted(seeds) if len(seeds[seed]) > len(steps)]
    if n < 2:
        return Curve(steps, mean.tolist(), None, None, n), longer
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return Curve(steps, mean.tolist(), (mean - half).tolist(), (mean + half).tolist(), n), longer


def read_scalars(log_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the TensorBoard run in `log_dir`: tag -> step -> value (the last value
    written at a step, as a resumed run re-logs its steps). OSError when there is no event
    file, ValueError when they hold no scalar."""
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    if not any(log_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"no TensorBoard event file in {log_dir}")
    events = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})  # 0: keep every step
    events.Reload()
    tags = events.Tags()["scalars"]
    if not tags:  # the reader skips what it cannot parse: a damaged file reads as empty
        raise ValueError(f"no scalar in the TensorBoard event files in {log_dir} (damaged?)")
    return {tag: {e.step: float(e.value) for e in events.Scalars(tag)} for tag in tags}


def arm_curves(
    sweep_dir: Path, plan: Plan, success_metric: str
) -> tuple[dict[str, dict[str, Curve]], list[str]]:
    """arm -> tag -> Curve over the arm's completed runs, and the notes for conclusion.md."""
    by_arm: dict[str, dict[int, dict[str, dict[int, float]]]] = {}
    notes: list[str] = []
    for run in collect_runs(sweep_dir, plan)["completed"]:
        relative = (run["record"].artifacts or {}).get("tensorboard")
        if not relative:
            continue  # the run logged no curves (none to average)
        log_dir = Path(sweep_dir) / run["dir"] / relative
        where = f"{run['dir']}/result.json artifacts.tensorboard"
        try:
            scalars = read_scalars(inside_sweep(log_dir, sweep_dir, where))
        except Exception as exc:  # any unreadable run is a note, never the conclusion's end
            notes.append(f"{run['arm']} seed {run['seed']}: curves left out ({exc})")
            continue
        by_arm.setdefault(run["arm"], {})[_replicate(run)] = scalars
    curves: dict[str, dict[str, Curve]] = {}
    for arm, seeds in by_arm.items():
        curves[arm], arm_notes = _average_arm(arm, seeds, success_metric)
        notes += arm_notes
    return curves, notes


def _replicate(run: dict) -> int | str:
    """The run's seed, with the replicate keys it sets (data.order_seed: an arm's data orders
    are its replicates, as its seeds are)."""
    config = run["record"].identity_config
    cells = [f"{key}={config[key]}" for key in REPLICATE_KEYS if config.get(key) is not None]
    return ", ".join([str(run["seed"]), *cells]) if cells else run["seed"]


def _average_arm(
    arm: str, seeds: dict[int, dict[str, dict[int, float]]], success_metric: str
) -> tuple[dict[str, Curve], list[str]]:
    tags = sorted({tag for scalars in seeds.values() for tag in scalars if _is_curve(tag)})
    if any(len(scalars.get(success_metric, {})) > 1 for scalars in seeds.values()):
        tags.append(success_metric)  # scored during training, not only at the end
    curves, notes = {}, []
    for tag in tags:
        logged = {seed: scalars[tag] for seed, scalars in seeds.items() if tag in scalars}
        curve, longer = average_curves(logged)
        if curve.steps:
            curves[tag] = curve
        if longer or len(logged) < len(seeds):
            last = ", ".join(f"seed {s} to step {max(v, default='-')}" for s, v in logged.items())
            notes.append(
                f"{arm} {tag}: the seeds logged different steps ({last}); averaged over "
                f"{len(logged)} seeds at the {len(curve.steps)} steps all of them have"
            )
    return curves, notes


def _is_curve(tag: str) -> bool:
    return tag == TRAIN_LOSS or tag.startswith(VALIDATION)


# --------------------------------------------------------------------------- the files
def write_curves(sweep_dir: str | Path, conclusion: Conclusion) -> str:
    """conclusion_curves.png and the <arm>/mean, lower, upper TensorBoard runs; returns
    conclusion.md's section on them ("" when no run logged curves)."""
    sweep_dir = Path(sweep_dir)
    plan = Plan.load(sweep_dir).by_treatment()  # data orders are replicates, not arms
    remove_band_runs(sweep_dir, plan)
    (sweep_dir / CURVES_PLOT).unlink(missing_ok=True)  # an earlier conclusion's
    curves, notes = arm_curves(sweep_dir, plan, conclusion.success_metric.name)
    ordered = {arm: curves[arm] for arm in conclusion.ranking if arm in curves}
    if not ordered and not notes:
        return ""
    if ordered:
        figure = curves_plot(ordered, conclusion.experiment.name or "experiment")
        write_atomic(sweep_dir / CURVES_PLOT, lambda f: figure.savefig(f, format="png"))
        for arm, tags in ordered.items():
            _write_band_runs(_tensorboard_dir(sweep_dir, arm), tags)
    return _section(bool(ordered), notes)


def remove_band_runs(sweep_dir: Path, plan: Plan | None = None) -> None:
    """Delete the arms' mean/lower/upper runs: rebuilt from the seeds' runs at any time."""
    try:
        plan = plan or Plan.load(sweep_dir)
    except (OSError, ValueError):
        return  # no plan, no arms: nothing of ours to find
    for arm in {job.arm for job in plan.planned}:
        try:
            arm_dir = _tensorboard_dir(sweep_dir, arm)
        except OutsideSweepDir:
            continue  # never deleted through a link; writing it again refuses with the why
        for name in BAND_RUNS:
            shutil.rmtree(arm_dir / name, ignore_errors=True)


def _tensorboard_dir(sweep_dir: Path, arm: str) -> Path:
    from evsys.run.tensorboard import sweep_tensorboard_dir

    path = sweep_tensorboard_dir(sweep_dir) / arm
    return inside_sweep(path, sweep_dir, f"the TensorBoard runs of arm {arm!r}")


def _write_band_runs(arm_dir: Path, tags: dict[str, Curve]) -> None:
    from torch.utils.tensorboard import SummaryWriter  # heavy import; only when writing

    for name in BAND_RUNS:
        if name != "mean" and all(curve.lower is None for curve in tags.values()):
            continue  # one seed: no band
        with SummaryWriter(log_dir=str(arm_dir / name)) as writer:
            for tag, curve in tags.items():
                values = getattr(curve, name)
                for step, value in zip(curve.steps, values or [], strict=False):
                    writer.add_scalar(tag, value, global_step=step)


def _section(plotted: bool, notes: list[str]) -> str:
    lines = ["", "## Learning curves (mean over seeds ± 95% t band at each step)", ""]
    if plotted:
        lines += [
            # a link, not an image: TensorBoard's Text tab shows this file and cannot load it
            f"Per arm: [{CURVES_PLOT}]({CURVES_PLOT}); in TensorBoard the runs `<arm>/mean`,",
            "`<arm>/lower` and `<arm>/upper` (type `mean` in the run filter: one line per arm).",
            "",
        ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip("\n") + "\n"


def curves_plot(curves: dict[str, dict[str, Curve]], title: str) -> Any:
    """One panel per tag, one line per arm (best first) with its band shaded."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    tags = list(dict.fromkeys(tag for tags in curves.values() for tag in tags))
    columns = min(3, len(tags))
    rows = math.ceil(len(tags) / columns)
    fig = Figure(figsize=(4.5 * columns, 3.2 * rows + 0.6), dpi=100, layout="constrained")
    fig.suptitle(f"{title}: mean over seeds ± 95% band")
    for index, tag in enumerate(tags):
        ax = fig.add_subplot(rows, columns, index + 1)
        for color, (arm, arm_tags) in enumerate(curves.items()):
            curve = arm_tags.get(tag)
            if curve is None:
                continue
            line_color = f"C{color % 10}"
            ax.plot(curve.steps, curve.mean, color=line_color, label=f"{arm} (n={curve.n})")
            if curve.lower is not None:
                ax.fill_between(curve.steps, curve.lower, curve.upper, color=line_color, alpha=0.2)
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
