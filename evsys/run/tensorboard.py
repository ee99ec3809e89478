"""An arm's TensorBoard: where its run lives, and what its HParams row shows and how.

In a sweep every arm logs into one tree under the sweep dir, named so that TensorBoard lists
the seeds of an arm together and the experiment is one `--logdir`:

    <sweep>/tensorboard/<arm>/seed<n>/    one run per arm and seed
    <sweep>/tensorboard/<trial>/trial<n>/ under another sweeper (basic, Optuna): one run per
                                          trial, named by its searched values (evsys/run/trial.py)
    <sweep>/tensorboard/conclusion/       the conclusion: text and plot (evsys/conclusion/write.py)

A run outside a sweep logs into `<run dir>/tensorboard/`. The HParams row carries what tells
arms apart — the keys the sweep varies, first — then arm, seed and a few headline settings;
its metric columns start with the success metric. A job knows its sweep through the
JobContext its caller passed (evsys/run/context.py). Torch-free to import: the HParams
summary (written with torch's writer, edited as TensorBoard's protobuf) imports them late.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from omegaconf import DictConfig, OmegaConf

from evsys.records import BOOKKEEPING_OVERRIDES, Plan, PlannedJob
from evsys.run.context import JobContext

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


def run_log_dir(run_dir: str | Path, context: JobContext | None = None) -> Path:
    """The TensorBoard run of the job in `run_dir`: in the sweep's tree for a planned job
    (`context`), else `<run dir>/tensorboard`."""
    if context is None:
        return Path(run_dir) / TENSORBOARD
    return sweep_tensorboard_dir(context.sweep_dir) / _run_name(context)


def _run_name(context: JobContext) -> str:
    """<arm>/seed<n>; a trial of another sweeper: <trial name>/trial<n>, one run per trial
    even when two trials draw the same values."""
    last = f"seed{context.job.seed}" if context.trial is None else f"trial{context.trial}"
    return f"{context.job.arm}/{last}"


def relative_log_dir(run_dir: str | Path, context: JobContext | None = None) -> str:
    """run_log_dir as the record's artifact path (relative to the job dir)."""
    return os.path.relpath(run_log_dir(run_dir, context), run_dir)


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


def table_hparams(cfg: DictConfig, context: JobContext | None) -> dict:
    """The run's HParams row: swept keys, arm, seed, headline settings (<= MAX_HPARAMS)."""
    swept = _swept(context)
    own = _pairs(context.job) if context is not None else {}
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


def differing_keys(context: JobContext | None) -> tuple[str, ...]:
    """What tells the runs of a sweep apart: its swept keys, arm and seed (none outside one)."""
    return (*_swept(context), "arm", "seed") if context is not None else ()


def _swept(context: JobContext | None) -> list[str]:
    """The keys the context's sweep varies: from its plan, or as another sweeper searches."""
    if context is None:
        return []
    return list(context.swept) if context.swept is not None else swept_keys(context.plan)


def ordered_metrics(metrics: dict, success_metric: str | None) -> dict:
    """The metric columns, the success metric first, then the rest by name."""
    first = {success_metric: metrics[success_metric]} if success_metric in metrics else {}
    return first | {key: metrics[key] for key in sorted(metrics) if key != success_metric}


def flat_hparams(cfg: DictConfig) -> dict:
    """Scalar config values by dotted key: the record's `hparams`, the flat config of a run."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("experiment", None)
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, (int, float, str, bool)) or node is None:
            flat[prefix[:-1]] = "none" if node is None else node
        else:
            flat[prefix[:-1]] = str(node)

    walk(container, "")
    return flat


# --------------------------------------------------------------------------- the HParams row
def write_table_row(
    logger, cfg: DictConfig, context: JobContext | None, metrics: dict, extra=None
) -> None:
    """The run's HParams row, through its Lightning TensorBoard `logger`: what tells its arm
    apart from the others, and its scores, the success metric first; an arm's seeds share a
    group."""
    row = table_hparams(cfg, context) | (extra or {})
    success_metric = context.success_metric if context is not None else None
    columns = ordered_metrics(metrics, success_metric)
    # an arm's seeds are one row; each trial of another sweeper is a row of its own
    group = _run_name(context) if context is not None and context.trial is not None else None
    write_hparams(logger, row, columns, group or str(cfg.get("arm")), differing_keys(context))


def write_hparams(
    logger,
    hparams: dict,
    metrics: dict,
    group: str | None = None,
    differing: tuple[str, ...] = (),
) -> None:
    """One HParams-table row for this run; its metric columns read the scalars already logged,
    in the order of `metrics`. Runs of one `group` (an arm's seeds) are one row of the table,
    their metrics aggregated (mean, min, max, median: TensorBoard's choice). TensorBoard shows
    the `differing` hparams (what the sweep varies) first, the rest after, each by name."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    writer = logger.experiment
    file_writer = writer._get_file_writer()  # reopens the event file if Lightning closed it
    experiment, start, end = hparams_summary(hparams, metrics)
    with _plugin_data(experiment) as content:
        for info in content.experiment.hparam_infos:
            info.differs = info.name in differing
    with _plugin_data(start) as content:
        content.session_start_info.group_name = group or ""
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    writer.flush()


@contextlib.contextmanager
def _plugin_data(summary) -> Iterator:
    """The HParams plugin data of a summary torch built, to edit in place."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    plugin_data = summary.value[0].metadata.plugin_data
    content = HParamsPluginData.FromString(plugin_data.content)
    yield content
    plugin_data.content = content.SerializeToString()


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
