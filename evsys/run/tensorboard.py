"""Where an arm's TensorBoard run lives, and what its HParams row shows.

In a sweep every arm logs into one tree under the sweep dir, named so that TensorBoard lists
the seeds of an arm together and the experiment is one `--logdir`:

    <sweep>/tensorboard/<arm>/seed<n>/    one run per arm and seed
    <sweep>/tensorboard/conclusion/       the conclusion: text and plot (evsys/conclusion/write.py)

A run outside a sweep logs into `<run dir>/tensorboard/`. The HParams row carries what tells
arms apart — the keys the sweep varies, first — then arm, seed and a few headline settings;
its metric columns start with the success metric. Torch-free: paths and dicts only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from omegaconf import DictConfig, OmegaConf

from evsys.errors import NotASweepDir
from evsys.records import BOOKKEEPING_OVERRIDES, Plan, PlannedJob

TENSORBOARD = "tensorboard"
CONCLUSION_RUN = "conclusion"
# Settings worth a column in every experiment, after the swept keys.
HEADLINE = (
    "model.name",
    "model.arch",
    "algorithm.kind",
    "data.dataset_name",
    "algorithm.lr",
    "algorithm.max_steps",
)
MAX_HPARAMS = 15  # the HParams table stays readable, every column shown by default
NOT_SWEPT = ("seed", "arm")  # their own columns
# Time Series sorts its card groups by name, so the benchmark scores (eval/...) open before
# train/...; pinned cards show above every group, and TensorBoard reads pins from its URL.
PINNED_FIRST = ("train/loss",)


def sweep_tensorboard_dir(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / TENSORBOARD


def time_series_url(port: int = 6006) -> str:
    """TensorBoard's Time Series with the train loss pinned at the top."""
    pins = [{"plugin": "scalars", "tag": tag} for tag in PINNED_FIRST]
    query = quote(json.dumps(pins, separators=(",", ":")), safe="")
    return f"http://localhost:{port}/?pinnedCards={query}#timeseries"


def viewing_hint(sweep_dir: str | Path) -> str:
    """How to look at a sweep: runs are then named <arm>/seed<n>, the train loss on top."""
    return (
        f"TensorBoard: tensorboard --logdir {sweep_tensorboard_dir(sweep_dir)}, "
        f"then open {time_series_url()}"
    )


def run_log_dir(run_dir: str | Path) -> Path:
    """The TensorBoard run of the job in `run_dir`: in the sweep's tree when it is a planned
    job of the sweep dir above it, else `<run dir>/tensorboard`."""
    run_dir = Path(run_dir)
    job, _ = _planned_job(run_dir)
    if job is None:
        return run_dir / TENSORBOARD
    return sweep_tensorboard_dir(run_dir.parent) / job.arm / f"seed{job.seed}"


def relative_log_dir(run_dir: str | Path) -> str:
    """run_log_dir as the record's artifact path (relative to the job dir)."""
    return os.path.relpath(run_log_dir(run_dir), run_dir)


def swept_keys(plan: Plan) -> list[str]:
    """Override keys whose value is not the same in every planned job (arm and seed aside),
    in the order they first appear."""
    values: dict[str, set] = {}
    for job in plan.planned:
        for key, value in _pairs(job).items():
            values.setdefault(key, set()).add(value)
    count = len(plan.planned)
    return [
        key
        for key, seen in values.items()
        if len(seen) > 1 or sum(key in _pairs(job) for job in plan.planned) < count
    ]


def table_hparams(cfg: DictConfig, run_dir: str | Path) -> dict:
    """The run's HParams row: swept keys, arm, seed, headline settings (<= MAX_HPARAMS)."""
    job, plan = _planned_job(Path(run_dir))
    swept = swept_keys(plan) if plan is not None else []
    own = _pairs(job) if job is not None else {}
    row: dict = {}
    for key in swept:
        row[key] = _value(cfg, key, own.get(key, "default"))
    row["arm"] = str(cfg.get("arm", "default"))
    row["seed"] = int(cfg.get("seed", 0))
    for key in HEADLINE:
        if len(row) >= MAX_HPARAMS:
            break
        row.setdefault(key, _value(cfg, key, "none"))
    return dict(list(row.items())[:MAX_HPARAMS])


def differing_keys(run_dir: str | Path) -> tuple[str, ...]:
    """What tells the runs of a sweep apart: its swept keys, arm and seed (none outside one)."""
    _, plan = _planned_job(Path(run_dir))
    return (*swept_keys(plan), "arm", "seed") if plan is not None else ()


def ordered_metrics(metrics: dict, success_metric: str | None) -> dict:
    """The metric columns, the success metric first, then the rest by name."""
    first = {success_metric: metrics[success_metric]} if success_metric in metrics else {}
    return first | {key: metrics[key] for key in sorted(metrics) if key != success_metric}


def success_metric_of(run_dir: str | Path) -> str | None:
    _, plan = _planned_job(Path(run_dir))
    return plan.metric_name if plan is not None else None


def _planned_job(run_dir: Path) -> tuple[PlannedJob | None, Plan | None]:
    try:
        plan = Plan.load(run_dir.parent)
    except NotASweepDir:
        return None, None
    job = next((job for job in plan.planned if job.dir == run_dir.name), None)
    return (job, plan) if job is not None else (None, None)


def _pairs(job: PlannedJob) -> dict[str, str]:
    pairs = {}
    for override in job.overrides:
        if override.startswith(BOOKKEEPING_OVERRIDES) or "=" not in override:
            continue
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key not in NOT_SWEPT:
            pairs[key] = value
    return pairs


def _value(cfg: DictConfig, key: str, fallback: str):
    """A scalar for the table: the config's value, or the override's text for a group choice
    (model=tiny) and anything that is not a scalar."""
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None and not OmegaConf.is_config(value):
        return fallback if fallback != "default" else "none"
    return str(fallback)
