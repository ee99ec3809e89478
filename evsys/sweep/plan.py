"""The plan of a sweep: matrix axes x named arms x seeds, every job composed and validated
before the first one starts, then written to the sweep dir as a records.Plan."""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from evsys import registry
from evsys.compose import composer
from evsys.errors import ConfigError, DataError
from evsys.free_text import as_written, literal
from evsys.identity import config_identity, identity_config
from evsys.init_from import PARENT, parent_model_dir
from evsys.metric_names import check_min_effect, check_threshold
from evsys.records import Plan, PlannedJob, existing_plan_id, job_dir_name
from evsys.sweep.data_check import check_data, check_tokenizer_dir
from evsys.sweep.plan_table import shown_overrides
from evsys.sweep.replicate_axes import check_replicate_axes
from evsys.sweep.shared_checks import SharedChecks, data_key, repeat, repeated_run
from evsys.validate import (
    check_names,
    check_success_metric,
    override_hint,
    success_metric,
    validate_run_config,
)


def plan_arguments(
    arguments: list[str], sweep_dir: Path, with_runs: bool = False
) -> tuple[Plan, list[DictConfig]]:
    """The plan of `evsys train ARGUMENTS -m`, made in-process and the same way: the master
    config composed as Hydra's multirun composes it, then plan_sweep over Hydra's config loader,
    as in the evsys sweeper. Nothing is written; with `with_runs`, each job's validated
    RunConfig comes with it (else an empty list: a copy per job costs time)."""
    runs: list[DictConfig] | None = [] if with_runs else None
    with composer() as compose_with:
        config = compose_with.sweep(arguments)
        task = as_written(config.hydra.overrides.task)  # as typed: never resolved
        axes = sweep_axes(config.hydra.sweeper.params or {}, task)
        plan = plan_sweep(config, axes, compose_with, sweep_dir, runs)
    return plan, runs or []


def sweep_axes(params: Mapping[str, Any], arguments: list[str]) -> list[str]:
    """What a sweep expands: hydra.sweeper.params, then the command line's task overrides."""
    return [f"{key}={value}" for key, value in params.items()] + list(arguments)


def plan_sweep(
    config: DictConfig,
    axes: list[str],
    config_loader,
    sweep_dir: Path,
    runs: list[DictConfig] | None = None,
) -> Plan:
    """Expand the sweep and compose + validate every job; raises ConfigError naming the arm.
    What jobs share is composed and checked once (evsys/sweep/shared_checks.py); `runs`, if
    given, receives each job's validated RunConfig."""
    check_names(literal(config))  # free text read as written (evsys/free_text.py)
    experiment = OmegaConf.to_container(config.experiment, resolve=True)
    experiment_id = existing_plan_id(sweep_dir) or registry.new_experiment_id(experiment["name"])
    jobs = expand_jobs(config.experiment, axes)
    confirm = confirm_design(config.experiment, jobs)  # refused before a job is composed
    check_replicate_axes(config.experiment, jobs)
    metric = success_metric(config)
    check_min_effect(metric["name"], metric["min_effect"])
    check_threshold(metric["name"], metric.get("threshold"))
    plan_jobs(jobs, config, config_loader, metric["name"], experiment_id, runs)
    _check_arms_named(experiment, jobs)
    return Plan(
        id=experiment_id,
        name=experiment["name"],
        success_metric=metric,
        planned=jobs,
        hypothesis=experiment["hypothesis"],
        baseline=experiment["baseline"],
        n_repeats=experiment["n_repeats"],
        base_seed=experiment["base_seed"],
        parent_experiment_id=experiment["parent_experiment_id"],
        metadata=experiment["metadata"],
        outputs_root=str(Path(experiment["stores"]["outputs_root"]).resolve()),
        prediction=experiment["prediction"],
        baselines=baselines_by_cell(config.experiment, axes),
        confirm=confirm,
        created_at=dt.datetime.now().isoformat(timespec="seconds"),
    )


def plan_jobs(
    jobs: list[PlannedJob],
    config: DictConfig,
    config_loader,
    metric: str,
    experiment_id: str,
    runs: list[DictConfig] | None = None,
) -> None:
    """Compose and validate each job (ConfigError naming the arm), setting its identity and
    its bookkeeping overrides; `runs`, if given, receives each job's validated RunConfig."""
    shared = SharedChecks(keep_runs=runs is not None)
    for job in jobs:
        # The job's own dir (<arm>_seed<seed>, job.dir), whatever hydra.sweep.subdir says:
        # its default suits any sweeper. An interpolation, so a job copied with a new seed
        # (adaptive rounds) gets its own dir too.
        job.overrides.append("hydra.sweep.subdir=" + job_dir_name("${arm}", "${seed}", job.stage))
        run = _validate_job(job, config, config_loader, metric, shared)
        if runs is not None:
            runs.append(run())
        job.overrides.append(f"experiment.id={experiment_id}")


def confirm_design(experiment: DictConfig, jobs: list[PlannedJob]) -> dict | None:
    """experiment.confirm's stage as planned: its fresh seeds (after every seed the selection
    may use, adaptive rounds included); the arms are selected once the selection is done.
    None without experiment.confirm.repeats."""
    repeats = experiment.confirm.repeats
    if repeats is None:
        return None
    if len({job.arm for job in jobs}) < 2:
        raise ConfigError(
            f"experiment.confirm.repeats={repeats}: the confirmation re-runs the best arm "
            "against the baseline or the runner-up, and this sweep has one arm: declare two "
            "arms or more (experiment.arms), or drop experiment.confirm"
        )
    last = max(
        [job.seed for job in jobs] + [experiment.base_seed + experiment.adaptive.max_repeats - 1]
    )
    return {"repeats": int(repeats), "seeds": list(range(last + 1, last + 1 + int(repeats)))}


def _validate_job(
    job: PlannedJob, config: DictConfig, config_loader, metric: str, shared: SharedChecks
):
    """Compose the job, validate it, check its data and metric, and set its identity: its
    validated RunConfig on call (a repeat of a job checked before copies that job's)."""
    if known := shared.reuse(job):  # the same job but its seed: checked already
        repeat(job, known)
        return lambda: repeated_run(known, job.seed)
    try:
        defaults, values = shared.split(config_loader, list(job.overrides))
        checks = lambda merged: check_needs(merged, metric, shared.data_checked)  # noqa: E731
        if patched := shared.patch(job, defaults, values, checks):  # values of a checked job
            return lambda: patched.run
        job_config = shared.compose(config_loader, config, defaults, values)
        merged = check_job(job_config, metric, shared.data_checked)
    except (HydraException, ConfigError, DataError) as error:
        hint = override_hint(str(error), config)
        where = f"arm {job.arm!r} (seed {job.seed}, overrides {shown_overrides(job)})"
        raise ConfigError(f"{where}: {hint or error}") from None
    job.identity_config = identity_config(merged)
    job.identity = config_identity(job.identity_config)
    shared.remember(job, job_config, merged, defaults, values)
    return lambda: merged


def check_job(
    job_config: DictConfig, metric: str, data_checked: set[str] | None = None
) -> DictConfig:
    """One job's composed config validated, its metric and data checked: the merged config,
    or a ConfigError / DataError naming the key or the file. `data_checked`: the data keys
    (shared_checks.data_key) already checked by this plan, skipped; this job's is added."""
    merged = validate_run_config(job_config)
    check_needs(merged, metric, data_checked)
    return merged


def check_needs(merged: DictConfig, metric: str, data_checked: set[str] | None = None) -> None:
    """A validated job's metric, parent model, tokenizer and data (as check_job)."""
    check_success_metric(merged, metric)
    if merged.model.init_from == PARENT:
        parent_model_dir(merged)
    check_tokenizer_dir(merged.model)
    key = data_key(merged) if data_checked is not None else None
    if key is None or key not in data_checked:
        check_data(merged)
        if key is not None:
            data_checked.add(key)


def _check_arms_named(experiment: dict, jobs: list[PlannedJob]) -> None:
    """The baseline and the prediction name arms: a job's label, or a named arm (crossed with
    matrix axes); every job was checked to produce the success metric, so each compares.
    (A baseline that axes split is compared within each cell: baselines_by_cell.)"""
    arms = sorted({job.arm for job in jobs})
    known = set(arms) | set(experiment["arms"])
    prediction = experiment.get("prediction") or {}
    named = [("experiment.baseline", experiment["baseline"])]
    named += [(f"experiment.prediction.{key}", prediction.get(key)) for key in ("better", "than")]
    for key, arm in named:
        if arm is None or arm in known or (key, arm) == ("experiment.prediction.than", "all"):
            continue
        close = difflib.get_close_matches(str(arm), sorted(known), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{key}={arm!r} names no arm of this sweep; its arms are {', '.join(arms)}.{hint}"
        )


def expand_jobs(experiment: DictConfig, sweep_arguments: list[str]) -> list[PlannedJob]:
    """Every job of the sweep, in launch order: for each arm, each matrix cell, each seed."""
    axes = _parse_axes(sweep_arguments)
    varying = [key for key, values in axes.items() if len(values) > 1 and key != "seed"]
    arms = dict(experiment.arms) or {"": None}  # no named arms: one unnamed arm
    arms = {name: _checked_arm(name, overrides, varying) for name, overrides in arms.items()}
    check_size(experiment, len(arms), axes)  # before a job is made: memory stays bounded
    seeds = _seeds(experiment, axes)
    axes.pop("seed", None)
    shown = {key: short_values(axes[key]) for key in varying}  # a path by its last parts
    jobs = []
    for arm_name, arm_pairs in arms.items():
        for cell in itertools.product(*axes.values()):
            pairs = dict(zip(axes.keys(), cell, strict=True))
            label = _label(arm_name, {k: shown[k][pairs[k]] for k in varying})
            pairs.update(arm_pairs)  # an arm's own settings win over shared axes
            for seed in seeds:
                overrides = [f"{k}={v}" for k, v in pairs.items()]
                # quoted: a swept label such as lr=0.001 is not a bare override value
                overrides += [f"seed={seed}", f"arm={_override_value(label)}"]
                jobs.append(PlannedJob(label, seed, overrides, job_dir_name(label, seed)))
    _check_unique(jobs)
    return jobs


def _checked_arm(arm_name: str, arm_overrides, varying: list[str]) -> dict[str, str]:
    """An arm's overrides (as _arm_pairs), refused if its name or what it sets is not allowed."""
    arm_pairs = _arm_pairs(arm_name, arm_overrides)
    if str(arm_name).startswith(".") or "/" in str(arm_name) or "\\" in str(arm_name):
        # named as written: the label it would become (.._x) hides what was wrong
        raise ConfigError(
            f"experiment.arms: the arm name {str(arm_name)!r} is not a valid name: it names "
            "a directory, so no slashes and no leading '.' (letters, digits and . _ + = , -)"
        )
    if "seed" in arm_pairs:
        raise ConfigError(
            f"experiment.arms.{arm_name} sets seed={arm_pairs['seed']}, which the sweep sets "
            "per repeat and would override; use experiment.base_seed and "
            "experiment.n_repeats instead"
        )
    clash = sorted(set(arm_pairs) & set(varying))
    if clash:
        raise ConfigError(
            f"experiment.arms.{arm_name} sets {', '.join(clash)}, which is also swept as a "
            "matrix axis; the arm would silently win over the axis: drop one of the two"
        )
    return arm_pairs


def check_size(experiment: DictConfig, arms: int, axes: dict[str, list[str]]) -> None:
    """Refuse a plan of more than experiment.max_jobs jobs, counted from the matrix sizes."""
    cells = math.prod(len(values) for key, values in axes.items() if key != "seed")
    swept = len(axes.get("seed", ()))
    seeds = swept if swept > 1 else experiment.n_repeats
    jobs = arms * cells * seeds
    if jobs > experiment.max_jobs:
        raise ConfigError(
            f"this plan would be {jobs:,} jobs ({arms:,} arm(s) x {cells:,} matrix cell(s) x "
            f"{seeds:,} seed(s)), more than experiment.max_jobs={experiment.max_jobs:,}: "
            "shrink the matrix, or raise experiment.max_jobs to plan it"
        )


def baselines_by_cell(experiment: DictConfig, sweep_arguments: list[str]) -> dict[str, str] | None:
    """When experiment.baseline names an arm that swept axes split into cells (lo becomes
    lo,num_layers=1 and lo,num_layers=2): each arm's label -> its cell's baseline label, so the
    conclusion compares within each cell. None when the baseline is one planned arm."""
    axes = _parse_axes(sweep_arguments)
    axes.pop("seed", None)
    varying = [key for key, values in axes.items() if len(values) > 1]
    baseline = experiment.baseline
    if baseline is None or baseline not in experiment.arms or not varying:
        return None
    shown = {key: short_values(axes[key]) for key in varying}
    cells = {}
    for cell in itertools.product(*(axes[key] for key in varying)):
        labels = {key: shown[key][value] for key, value in zip(varying, cell, strict=True)}
        for arm in experiment.arms:  # the labels expand_jobs gives the arm in this cell
            cells[_label(str(arm), labels)] = _label(str(baseline), labels)
    return cells


def _parse_axes(arguments: list[str]) -> dict[str, list[str]]:
    """Override strings (sweeps or single values) as key -> list of value strings."""
    axes: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(f"{key}: only lists of values can be swept (a,b,c)")
            axes[key] = list(override.sweep_string_iterator())
        else:
            axes[key] = [override.get_value_element_as_str()]
    return axes


def _seeds(experiment: DictConfig, axes: dict[str, list[str]]) -> list[int]:
    if "seed" in axes and len(axes["seed"]) > 1:
        if experiment.n_repeats > 1:
            raise ConfigError(
                "seed is swept explicitly and experiment.n_repeats > 1: use one or the other"
            )
        return [int(seed) for seed in axes["seed"]]
    if experiment.n_repeats < 1:
        raise ConfigError(f"experiment.n_repeats={experiment.n_repeats} must be at least 1")
    base = int(axes["seed"][0]) if "seed" in axes else experiment.base_seed
    return [base + i for i in range(experiment.n_repeats)]


def _arm_pairs(arm_name: str, arm_overrides) -> dict[str, str]:
    """An arm's dotted overrides as Hydra override strings."""
    if arm_overrides is None:
        return {}
    if not isinstance(arm_overrides, DictConfig):
        raise ConfigError(
            f"experiment.arms.{arm_name} must be a mapping of dotted keys to values, "
            f"got {arm_overrides!r}"
        )
    return {str(k): _override_value(v) for k, v in arm_overrides.items()}


def _override_value(value) -> str:
    """A config value written in Hydra's override grammar."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if re.fullmatch(r"[\w./:\-+@]+", text) and not re.fullmatch(r"[\d.eE+\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _label(arm_name: str, varying: dict[str, str]) -> str:
    """A readable, filesystem-safe name: the arm, then the swept values that make it unique."""
    short = [key.rsplit(".", 1)[-1] for key in varying]
    names = short if len(set(short)) == len(short) else list(varying)
    parts = [arm_name] if arm_name else []
    parts += [f"{name}={value}" for name, value in zip(names, varying.values(), strict=True)]
    label = ",".join(parts) or "default"
    return re.sub(r"[^\w.=,+\-]", "_", label)


def short_values(values: list[str]) -> dict[str, str]:
    """Each swept value as its label shows it: a path (model.name=/tmp/x/llama) by its last
    component, or by as many trailing components as tell it from the axis's other values."""
    if not any("/" in value for value in values):
        return {value: value for value in values}
    parts = {value: value.rstrip("/").split("/") for value in values}
    return {value: _tail(value, parts) for value in values}


def _tail(value: str, parts: dict[str, list[str]]) -> str:
    mine = parts[value]
    for count in range(1, len(mine) + 1):
        others = {"/".join(p[-count:]) for other, p in parts.items() if other != value}
        if "/".join(mine[-count:]) not in others:
            return "/".join(mine[-count:])
    return value


def _check_unique(jobs: list[PlannedJob]) -> None:
    seen: set[str] = set()
    for job in jobs:
        if job.dir in seen:
            raise ConfigError(f"two jobs of this sweep would share the directory {job.dir!r}")
        seen.add(job.dir)


def planned_looks(experiment: DictConfig) -> list[int] | None:
    """Seeds per arm at each look, or None for a fixed design."""
    first, last = int(experiment.n_repeats), int(experiment.adaptive.max_repeats)
    if last <= first:
        return None
    step = max(1, int(experiment.adaptive.increment))
    looks = list(range(first, last, step)) + [last]
    return looks
