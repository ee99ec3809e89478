"""A trial of another Hydra sweeper (basic, Optuna), as the trial itself sees it.

Such a sweeper plans nothing evsys can read before its jobs run (Optuna picks each trial's
values as it goes), so when the sweep starts evsys writes down the keys it searches — the sweep
overrides of the command line and `hydra.sweeper.params` — and the success metric
(`<sweep>/search.json`). Each trial then names itself by its values of those keys
(`algorithm.lr=0.0012` -> `lr=0.0012`): its progress lines, its record's arm and its
TensorBoard run `<sweep>/tensorboard/<trial name>/trial<n>` say which trial it is. The plan
written when the sweep ends (evsys/sweep/foreign.py) names its arms the same way.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.records import SEARCH_FILE, Plan, PlannedJob
from evsys.run.context import JobContext


def write_search(config: DictConfig, sweep_dir: Path, metric: dict) -> None:
    """Write down what this sweep searches, before its first trial (the sweep's process)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [override.key_or_group for override in parsed if override.is_sweep_override()]
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    keys += [str(key) for key in params if str(key) not in keys]
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    search = {"swept": keys, "success_metric": metric}
    (Path(sweep_dir) / SEARCH_FILE).write_text(json.dumps(search, indent=2))


def searched_keys(sweep_dir: str | Path) -> list[str] | None:
    """The keys the sweep in `sweep_dir` searches; None when it recorded none."""
    search = _read_search(sweep_dir)
    return None if search is None else list(search["swept"])


def trial_name(overrides: list[str], swept: list[str] | None, fallback: str) -> str:
    """The trial's swept overrides, short and file-safe (algorithm.lr=0.001 -> lr=0.001);
    `swept` None: every override given. `fallback` when none is left."""
    shown = [
        override.split("=", 1)
        for override in overrides
        if "=" in override and (swept is None or _key(override) in swept)
    ]
    label = ",".join(
        f"{key.lstrip('+~').rsplit('.', 1)[-1]}={value}"
        for key, value in shown
        if key.lstrip("+~") != "seed"
    )
    return re.sub(r"[^\w.=,+\-]", "_", label) or fallback


def trial_context(
    sweep_dir: str | Path, job_dir: str | Path, overrides: list[str], number: int
) -> JobContext | None:
    """The context of trial `number` of another sweeper's sweep; None when the sweep wrote no
    search (not started by evsys's callback)."""
    search = _read_search(sweep_dir)
    if search is None:
        return None
    directory = os.path.relpath(Path(job_dir).absolute(), Path(sweep_dir).absolute())
    seed = next((int(o.split("=", 1)[1]) for o in overrides if _key(o) == "seed"), 0)
    name = trial_name(overrides, search["swept"], f"job{directory}")
    job = PlannedJob(name, seed, list(overrides), directory)
    plan = Plan(id="", name="", success_metric=search["success_metric"], planned=[job])
    return JobContext(plan, job, Path(sweep_dir), swept=tuple(search["swept"]), trial=number)


def hydra_trial_context() -> JobContext | None:
    """The context of the Hydra job running now when it is a trial of another sweeper."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    overrides = list(hydra.overrides.task)
    return trial_context(hydra.sweep.dir, hydra.runtime.output_dir, overrides, hydra.job.num)


def _read_search(sweep_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(sweep_dir) / SEARCH_FILE).read_text())
    except FileNotFoundError:
        return None


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
