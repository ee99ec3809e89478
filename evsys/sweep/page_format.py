"""The concept page's own experiment file: an ExperimentConfig with exactly one of run, runs or
matrix (and, on a single run, the continual modifier), checked against evsys's schemas.

    name: lr_check
    hypothesis: The tiny model learns reversal better at lr 3e-3 than at 1e-4.
    success_metric: {name: eval/reversal/exact_match, mode: max}
    n_repeats: 2
    runs:
      - {name: slow, algorithm: {kind: sft, lr: 1e-4}}
      - {name: fast, algorithm: {kind: sft, lr: 3e-3}}

Every value is merged into the same dataclass schemas as the preset form (evsys/config.py),
and every error names the key as written in the file (`runs[1].algorithm.lerning_rate`).
evsys/sweep/page_preset.py writes the equivalent preset, so both forms share one plan, one
launcher and one conclusion.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evsys import config as schemas
from evsys.errors import ConfigError
from evsys.rules import choices_of
from evsys.sweep.page_checks import (
    RUN_KEYS,
    check_continual,
    check_matrix,
    check_run,
    check_runs,
    plain,
)
from evsys.validate import closest_key, describe_config_error
from evsys.yaml_file import load_yaml

MODES = ("run", "runs", "matrix")
EXPERIMENT_KEYS = (  # the page's keys that are the experiment node's own fields
    "name", "hypothesis", "success_metric", "baseline", "n_repeats", "base_seed",
    "parent_experiment_id", "metadata", "dry_run", "adaptive", "confirm", "max_jobs",
)  # fmt: skip
TOP_KEYS = (*EXPERIMENT_KEYS, "prediction", "output_dir", "stores", "continual", *MODES)
# outputs_root: experiments, their registry and sweep dirs; cache_dir: the data caches
STORES = ("outputs_root", "cache_dir")
UNNAMED = ""  # the arm of a single run without a name (planned as "default")


@dataclass
class MatrixSpec:
    """The page's matrix: every combination of the axes' values is one arm on `base`."""

    base: dict[str, Any] = field(default_factory=dict)  # the RunConfig every cell starts from
    axes: dict[str, list[Any]] = field(default_factory=dict)  # dotted path -> values swept


# The concept page names the matrix "MatrixSpec / Sweep": one object under both names.
Sweep = MatrixSpec


@dataclass
class ExperimentConfig(schemas.ExperimentConfig):
    """The concept page's ExperimentConfig: the experiment node's fields (name, hypothesis,
    success_metric, n_repeats, base_seed, baseline, continual, parent_experiment_id, metadata),
    where it lives (output_dir, stores) and what it trains: exactly one of run, runs or matrix.

    A RunConfig here is a mapping nested as the composed config (data, model, algorithm,
    backend, eval, validation, seed, tags); `algorithm.kind` picks the algorithm. Read the
    page's file with `ExperimentConfig.from_yaml(path)`; run it with `Experiment(config).run()`.
    """

    success_metric: Any = ""  # a metric name, or {name, mode, min_effect, threshold}
    # where things live: outputs_root (experiments and their registry), cache_dir (data caches)
    stores: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None  # the sweep dir; None: <outputs_root>/<name>/<timestamp>
    run: dict[str, Any] | None = None  # one RunConfig: one arm, n_repeats seeds
    runs: Any = None  # explicit arms: a list of RunConfigs with a name, or name -> RunConfig
    matrix: MatrixSpec | None = None  # the cartesian product of axes on a base RunConfig
    # the preregistered outcome: {better: <arm>, than: <arm> or "all"}; a verdict on it
    prediction: dict[str, str] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        """The page's experiment file, checked: a ConfigError names any bad key in the file."""
        raw = read_yaml(path)
        check_page(raw)
        if isinstance(raw.get("matrix"), dict):
            raw["matrix"] = MatrixSpec(**raw["matrix"])
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """The file this config would be: its set fields, nested mappings only."""
        defaults = ExperimentConfig()
        raw = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name in TOP_KEYS and value != getattr(defaults, item.name):
                raw[item.name] = plain(value)
        if self.arms:
            raw["arms"] = self.arms  # refused by check_page: the preset form's key
        return raw


@dataclass
class Page:
    """A checked experiment file, normalized: what evsys/sweep/page_preset.py translates."""

    experiment: dict[str, Any]  # the experiment node: name, hypothesis, continual, arms...
    mode: str  # run | runs | matrix
    runs: dict[str, dict]  # arm name -> RunConfig tree with algorithm.kind set
    axes: dict[str, list] = field(default_factory=dict)  # matrix: dotted path -> values
    output_dir: str | None = None
    cache_dir: str | None = None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment file {path} does not exist")
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of experiment keys, got {raw!r}")
    return raw


def is_page_file(path: str | Path) -> bool:
    """The page's format, not a preset: no `# @package _global_` header and no `experiment:`
    or `defaults:` node. Without the header Hydra would put every key under `experiment`, so a
    headerless file with a RunConfig's keys at its top (`algorithm:`) is no preset either: it
    is read as the page's, whose check says where those keys belong."""
    header = []  # the leading comment block, where Hydra reads `# @package`
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        header.append(line)
    if any("@package" in line for line in header):
        return False
    raw = load_yaml(path)
    return isinstance(raw, dict) and "experiment" not in raw and "defaults" not in raw


# ------------------------------------------------------------------------------- the whole file
def check_page(raw: dict[str, Any]) -> Page:
    """The file checked and normalized, or a ConfigError naming the key in the file."""
    _check_top_keys(raw)
    modes = [mode for mode in MODES if raw.get(mode) is not None]
    if len(modes) != 1:
        found = " and ".join(modes) if modes else "none of them"
        raise ConfigError(
            f"an experiment file sets exactly one of run, runs or matrix; this one sets {found}"
        )
    mode = modes[0]
    if raw.get("continual") is not None and mode != "run":
        raise ConfigError(
            f"continual requires a single run base, as the concept page says; this file sets "
            f"{mode}: write one run: (its data is ignored) or drop continual"
        )
    experiment, cache_dir = _experiment_node(raw)
    axes: dict[str, list] = {}
    if mode == "run":
        tree = check_run(raw["run"], "run")
        runs = {str(tree.pop("name", UNNAMED)): tree}
    elif mode == "runs":
        runs = check_runs(raw["runs"])
    else:
        base, axes = check_matrix(raw["matrix"])
        runs = {UNNAMED: base}
    _take_seed(runs, experiment, raw)
    if mode != "matrix":
        _check_arm_names(raw, experiment, [name or "default" for name in runs])
    return Page(experiment, mode, runs, axes, raw.get("output_dir"), cache_dir)


def _check_top_keys(raw: dict[str, Any]) -> None:
    for key in raw:
        if key in TOP_KEYS:
            continue
        if key in RUN_KEYS:
            where = "run: (or into each of runs:, or into matrix.base:)"
            raise ConfigError(f"'{key}' belongs to a RunConfig: move it under {where}")
        if key == "arms":
            raise ConfigError("'arms' is the preset form's key; in this file name arms in runs:")
        if key in ("experiment", "defaults", "hydra"):
            raise ConfigError(
                f"'{key}' is a Hydra preset's key, not one of the concept page's file: run a "
                "preset with Experiment.from_yaml(path) or evsys train"
            )
        suggestion = closest_key(str(key), list(TOP_KEYS)) or _swapped_mode(str(key))
        hint = f"Did you mean '{suggestion}'?" if suggestion else f"Use one of {list(TOP_KEYS)}."
        raise ConfigError(f"'{key}' is not a key of an experiment file. {hint}")


def _swapped_mode(key: str) -> str | None:
    """run, runs or matrix with its letters mixed up (`rnu`): for keys this short a swapped
    pair falls below the usual did-you-mean's similarity cutoff."""
    return next((mode for mode in MODES if sorted(mode) == sorted(key)), None)


def _experiment_node(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The experiment node of the equivalent preset, checked by its schema; and cache_dir."""
    node = {key: copy.deepcopy(raw[key]) for key in EXPERIMENT_KEYS if key in raw}
    if "success_metric" in node:
        node["success_metric"] = _success_metric(node["success_metric"])
    stores = _stores(raw.get("stores"))
    cache_dir = stores.pop("cache_dir", None)
    if stores:
        node["stores"] = stores
    output_dir = raw.get("output_dir")
    if output_dir is not None and not isinstance(output_dir, str):
        raise ConfigError(f"output_dir must be a directory path, got {output_dir!r}")
    if raw.get("prediction") is not None:
        node["prediction"] = _prediction(raw)  # experiment.prediction: the verdict answers it
    if raw.get("continual") is not None:
        node["continual"] = check_continual(raw["continual"])
    schema = OmegaConf.structured(schemas.ExperimentConfig)
    try:
        OmegaConf.merge(schema, node)
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(describe_config_error(error, schema)) from None
    if int(node.get("n_repeats", 1)) < 1:
        raise ConfigError(f"n_repeats={node['n_repeats']} must be at least 1")
    return node, cache_dir


def _success_metric(metric: Any) -> Any:
    """A metric name, or {name, mode, min_effect, threshold, pool_seeds}; mode named as in the
    file (the preset form's own check would name experiment.success_metric.mode)."""
    if isinstance(metric, str):
        return {"name": metric}
    if not isinstance(metric, dict):
        raise ConfigError(
            "success_metric must be a metric name (val/loss) or "
            f"{{name, mode, min_effect, threshold}}, got {metric!r}"
        )
    modes = choices_of(schemas.SuccessMetric, "mode")
    if metric.get("mode") not in (*modes, None):  # None: from the name (a loss: min)
        raise ConfigError(f"success_metric.mode={metric['mode']!r}: use {' or '.join(modes)}")
    return metric


def _stores(stores: Any) -> dict[str, Any]:
    """stores: {outputs_root, cache_dir}; cache_dir is the data's, not the experiment node's,
    so its keys are checked here, with a did-you-mean for either."""
    if stores is None:
        return {}
    if not isinstance(stores, dict):
        raise ConfigError(f"stores must be {{{', '.join(STORES)}}}, got {stores!r}")
    for key in stores:
        if key not in STORES:
            suggestion = closest_key(str(key), list(STORES))
            hint = f" Did you mean 'stores.{suggestion}'?" if suggestion else ""
            raise ConfigError(f"'stores.{key}' is not a store ({', '.join(STORES)}).{hint}")
    return dict(stores)


def _prediction(raw: dict[str, Any]) -> dict[str, str]:
    prediction = raw["prediction"]
    if not isinstance(prediction, dict) or set(prediction) != {"better", "than"}:
        raise ConfigError(
            f"prediction must be {{better: <arm>, than: <arm> or all}}, got {prediction!r}"
        )
    return {key: str(value) for key, value in prediction.items()}


def _check_arm_names(raw: dict[str, Any], experiment: dict, names: list[str]) -> None:
    """baseline and prediction name arms of this file (did you mean, for a typo)."""
    named = [("baseline", experiment.get("baseline"))]
    prediction = experiment.get("prediction") or {}
    named += [(f"prediction.{key}", value) for key, value in prediction.items()]
    for key, arm in named:
        if arm is not None and arm not in names and (key, arm) != ("prediction.than", "all"):
            suggestion = closest_key(str(arm), names)
            hint = f" Did you mean {suggestion!r}?" if suggestion else ""
            raise ConfigError(f"{key}={arm!r} is not an arm of this file {names}.{hint}")


def _take_seed(runs: dict[str, dict], experiment: dict, raw: dict) -> None:
    """A RunConfig's seed is the experiment's base_seed (seeds are base_seed, base_seed+1...)."""
    seeds = {name: tree.pop("seed") for name, tree in runs.items() if "seed" in tree}
    if not seeds:
        return
    values = set(seeds.values())
    if len(values) > 1 or len(seeds) != len(runs):
        raise ConfigError(
            "runs set different seeds; an experiment's arms share their seeds base_seed, "
            "base_seed+1, ... (n_repeats): set base_seed at the top of the file"
        )
    seed = values.pop()
    if "base_seed" in raw and raw["base_seed"] != seed:
        raise ConfigError(
            f"seed={seed} of the run and base_seed={raw['base_seed']} disagree: set one of them"
        )
    experiment["base_seed"] = seed
