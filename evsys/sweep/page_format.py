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

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evsys import config as schemas
from evsys.algorithms import algorithm_schema
from evsys.errors import ConfigError
from evsys.validate import closest_key, describe_config_error

MODES = ("run", "runs", "matrix")
EXPERIMENT_KEYS = (  # the page's keys that are the experiment node's own fields
    "name", "hypothesis", "success_metric", "baseline", "n_repeats", "base_seed",
    "parent_experiment_id", "metadata",
)  # fmt: skip
TOP_KEYS = (*EXPERIMENT_KEYS, "prediction", "output_dir", "stores", "continual", *MODES)
# A RunConfig of the page: the composed config's keys, less the experiment's own.
RUN_KEYS = (
    "data", "model", "algorithm", "backend", "eval", "validation", "seed", "tags",
    "log_every_n_steps", "checkpoint_every_n_steps",
)  # fmt: skip
DEFAULT_KIND = "sft"  # conf/train.yaml's algorithm
KIND = "algorithm.kind"  # the dotted path that picks the algorithm group option
UNNAMED = ""  # the arm of a single run without a name (planned as "default")


@dataclass
class MatrixSpec:
    """The page's matrix: every combination of the axes' values is one arm on `base`."""

    base: dict[str, Any] = field(default_factory=dict)  # the RunConfig every cell starts from
    axes: dict[str, list[Any]] = field(default_factory=dict)  # dotted path -> values swept


@dataclass
class ExperimentConfig(schemas.ExperimentConfig):
    """The concept page's ExperimentConfig: the experiment node's fields (name, hypothesis,
    success_metric, n_repeats, base_seed, baseline, continual, parent_experiment_id, metadata),
    where it lives (output_dir, stores) and what it trains: exactly one of run, runs or matrix.

    A RunConfig here is a mapping nested as the composed config (data, model, algorithm,
    backend, eval, validation, seed, tags); `algorithm.kind` picks the algorithm. Read the
    page's file with `ExperimentConfig.from_yaml(path)`; run it with `Experiment(config).run()`.
    """

    success_metric: Any = ""  # a metric name, or {name, mode, min_effect}
    stores: dict[str, Any] = field(default_factory=dict)  # outputs_root (outputs, registry),
    # cache_dir (data caches)
    output_dir: str | None = None  # the sweep dir; None: <outputs_root>/<name>/<timestamp>
    run: dict[str, Any] | None = None  # one RunConfig: one arm, n_repeats seeds
    runs: Any = None  # explicit arms: a list of RunConfigs with a name, or name -> RunConfig
    matrix: MatrixSpec | None = None  # the cartesian product of axes on a base RunConfig
    prediction: dict[str, str] | None = None  # the expected outcome: {better: arm, than: arm}

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
                raw[item.name] = _plain(value)
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
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of experiment keys, got {raw!r}")
    return raw


def is_page_file(path: str | Path) -> bool:
    """The page's format, not a preset: no `# @package _global_` header, no `experiment:`
    node, and only keys of the page's ExperimentConfig (run, runs, matrix, name, ...)."""
    text = Path(path).read_text(encoding="utf-8")
    if "@package" in text.split("\n", 1)[0]:
        return False
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(raw, dict) or "experiment" in raw or "defaults" in raw:
        return False
    return any(key in raw for key in MODES) or not set(raw) & set(RUN_KEYS)


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
        runs = _check_runs(raw["runs"])
    else:
        base, axes = _check_matrix(raw["matrix"])
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
        suggestion = closest_key(str(key), list(TOP_KEYS))
        hint = f"Did you mean '{suggestion}'?" if suggestion else f"Use one of {list(TOP_KEYS)}."
        raise ConfigError(f"'{key}' is not a key of an experiment file. {hint}")


def _experiment_node(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The experiment node of the equivalent preset, checked by its schema; and cache_dir."""
    node = {key: copy.deepcopy(raw[key]) for key in EXPERIMENT_KEYS if key in raw}
    if isinstance(node.get("success_metric"), str):
        node["success_metric"] = {"name": node["success_metric"]}
    stores = dict(raw.get("stores") or {})
    cache_dir = stores.pop("cache_dir", None)
    if stores:
        node["stores"] = stores
    if raw.get("prediction") is not None:
        # Kept in metadata, which the plan (experiment.json) carries to the conclusion.
        node["metadata"] = {**(node.get("metadata") or {}), "prediction": _prediction(raw)}
    if raw.get("continual") is not None:
        node["continual"] = _check_continual(raw["continual"])
    schema = OmegaConf.structured(schemas.ExperimentConfig)
    try:
        OmegaConf.merge(schema, node)
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(describe_config_error(error, schema)) from None
    if int(node.get("n_repeats", 1)) < 1:
        raise ConfigError(f"n_repeats={node['n_repeats']} must be at least 1")
    return node, cache_dir


def _prediction(raw: dict[str, Any]) -> dict[str, str]:
    prediction = raw["prediction"]
    if not isinstance(prediction, dict) or set(prediction) != {"better", "than"}:
        raise ConfigError(
            f"prediction must be {{better: <arm>, than: <arm>}}, got {prediction!r}"
        )
    return {key: str(value) for key, value in prediction.items()}


def _check_arm_names(raw: dict[str, Any], experiment: dict, names: list[str]) -> None:
    """baseline and prediction name arms of this file (did you mean, for a typo)."""
    named = [("baseline", experiment.get("baseline"))]
    prediction = (experiment.get("metadata") or {}).get("prediction") or {}
    named += [(f"prediction.{key}", value) for key, value in prediction.items()]
    for key, arm in named:
        if arm is not None and arm not in names:
            suggestion = closest_key(str(arm), names)
            hint = f" Did you mean {suggestion!r}?" if suggestion else ""
            raise ConfigError(f"{key}={arm!r} is not an arm of this file {names}.{hint}")


# ----------------------------------------------------------------------------------- run configs
def check_run(tree: Any, where: str) -> dict[str, Any]:
    """One RunConfig of the file merged into its schema; returns a copy with algorithm.kind."""
    if dataclasses.is_dataclass(tree):
        tree = _plain(tree)
    if not isinstance(tree, dict):
        raise ConfigError(f"{where} must be a RunConfig mapping (data, model, algorithm, ...)")
    tree = copy.deepcopy(tree)
    for key in tree:
        if key in ("name",) + RUN_KEYS:
            continue
        if key in ("experiment", "continual", "arm"):
            raise ConfigError(
                f"'{where}.{key}': experiment settings are top-level keys of the file "
                "(name, hypothesis, n_repeats, continual, ...); an arm is named by name:"
            )
        suggestion = closest_key(str(key), list(RUN_KEYS))
        hint = f" Did you mean '{where}.{suggestion}'?" if suggestion else ""
        raise ConfigError(f"Invalid config: '{where}.{key}' is not a valid key.{hint}")
    algorithm = tree.setdefault("algorithm", {})
    if not isinstance(algorithm, dict):
        raise ConfigError(f"{where}.algorithm must be a mapping, e.g. {{kind: sft, lr: 1e-3}}")
    algorithm.setdefault("kind", DEFAULT_KIND)
    schema = run_schema(algorithm["kind"], where)
    body = {key: value for key, value in tree.items() if key != "name"}
    try:
        merged = OmegaConf.merge(schema, body)
        OmegaConf.to_object(merged.algorithm)  # the algorithm's own value checks
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(describe_config_error(error, schema, where)) from None
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return tree


def run_schema(kind: str, where: str) -> DictConfig:
    """RunConfig's schema with the algorithm of `kind`."""
    try:
        algorithm = algorithm_schema(str(kind))
    except ConfigError as error:
        raise ConfigError(f"{where}.{error}") from None
    schema = OmegaConf.structured(schemas.RunConfig)
    schema.algorithm = OmegaConf.structured(algorithm)
    return schema


def _check_runs(runs: Any) -> dict[str, dict]:
    if isinstance(runs, dict):
        entries = [(f"runs.{key}", key, entry) for key, entry in runs.items()]
    elif isinstance(runs, list):
        entries = [(f"runs[{i}]", None, entry) for i, entry in enumerate(runs)]
    else:
        raise ConfigError("runs must be a list of RunConfigs (each with a name) or name -> RunConfig")
    if not entries:
        raise ConfigError("runs is empty: list at least one RunConfig")
    checked: dict[str, dict] = {}
    for where, key, entry in entries:
        tree = check_run(entry, where)
        name = tree.pop("name", None)
        if key is not None and name is not None and str(name) != str(key):
            raise ConfigError(f"{where}.name={name!r} differs from its key {key!r}: drop one")
        name = str(key if key is not None else name or "")
        if not name:
            raise ConfigError(
                f"{where} has no name: name each arm (name: fast), or write runs as a mapping "
                "name -> RunConfig"
            )
        if name in checked:
            raise ConfigError(f"{where}: two runs are named {name!r}; arm names are unique")
        checked[name] = tree
    return checked


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


# ---------------------------------------------------------------------------------------- matrix
def _check_matrix(matrix: Any) -> tuple[dict[str, Any], dict[str, list]]:
    if dataclasses.is_dataclass(matrix):
        matrix = _plain(matrix)
    if not isinstance(matrix, dict):
        raise ConfigError("matrix must be {base: <RunConfig>, axes: {<dotted.path>: [values]}}")
    for key in matrix:
        if key not in ("base", "axes"):
            suggestion = closest_key(str(key), ["base", "axes"])
            hint = f" Did you mean 'matrix.{suggestion}'?" if suggestion else ""
            raise ConfigError(f"'matrix.{key}' is not a key of matrix (base, axes).{hint}")
    base = check_run(matrix.get("base") or {}, "matrix.base")
    axes = matrix.get("axes") or {}
    if not isinstance(axes, dict) or not axes:
        raise ConfigError(
            "matrix.axes is empty: sweep at least one dotted path, e.g. algorithm.lr: [1e-4, 3e-3]"
        )
    kinds = axes.get(KIND) if isinstance(axes.get(KIND), list) else [base["algorithm"]["kind"]]
    checked = {}
    for path, values in axes.items():
        checked[str(path)] = _check_axis(str(path), values, kinds)
    return base, checked


def _check_axis(path: str, values: Any, kinds: list) -> list:
    where = f"matrix.axes.{path}"
    if not isinstance(values, list):
        raise ConfigError(f"{where} must be a list of values, e.g. [1e-4, 3e-3]; got {values!r}")
    if not values:
        raise ConfigError(f"{where} is empty: list at least one value")
    if path == KIND:
        for kind in values:
            run_schema(kind, where)
        return list(values)
    problems = [_path_problem(run_schema(kind, where), path) for kind in kinds]
    if all(problems):
        raise ConfigError(f"'{where}' is not a config key.{problems[0]}")
    schema = run_schema(kinds[problems.index("")], where)
    for index, value in enumerate(values):
        tree: Any = value
        for part in reversed(path.split(".")):
            tree = {part: tree}
        try:
            OmegaConf.merge(schema, tree)
        except (OmegaConfBaseException, ValueError) as error:
            detail = (getattr(error, "msg", None) or str(error)).splitlines()[0]
            raise ConfigError(f"Invalid config: bad value for '{where}[{index}]': {detail}.") from None
    return list(values)


def _path_problem(schema: DictConfig, path: str) -> str:
    """'' when `path` is a key of the schema, else a did-you-mean hint (or ' ')."""
    node: Any = schema
    parts = path.split(".")
    if parts[0] not in RUN_KEYS:
        suggestion = closest_key(parts[0], list(RUN_KEYS))
        return f" Did you mean 'matrix.axes.{suggestion}'?" if suggestion else " "
    for depth, part in enumerate(parts):
        keys = [str(key) for key in node.keys()] if isinstance(node, DictConfig) else []
        if part not in keys:
            suggestion = closest_key(part, keys) if keys else None
            prefix = ".".join(parts[:depth] + [suggestion or ""])
            return f" Did you mean 'matrix.axes.{prefix}'?" if suggestion else " "
        node = node._get_node(part)  # a node, never its (possibly missing) value
    return ""


# ------------------------------------------------------------------------------------- continual
def _check_continual(continual: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(continual):
        continual = _plain(continual)
    if not isinstance(continual, dict):
        raise ConfigError("continual must be {datasets: [<stage>, ...], replay: <share>}")
    stages = continual.get("datasets")
    if not isinstance(stages, list) or not stages:
        raise ConfigError(
            "continual.datasets must list the stages in order, e.g. [{dataset_name: reversal}, "
            "{dataset_name: sorting}]"
        )
    rest = {key: value for key, value in continual.items() if key != "datasets"}
    _merge(schemas.ContinualConfig, rest, "continual")
    for index, stage in enumerate(stages):
        _merge(schemas.ContinualStage, stage, f"continual.datasets[{index}]")
    replay = continual.get("replay", 0.0)
    if isinstance(replay, (int, float)) and not 0.0 <= replay < 1.0:
        raise ConfigError(
            f"continual.replay={replay} must be in [0, 1): the share of each stage's training "
            "mix drawn from earlier stages"
        )
    return copy.deepcopy(continual)


def _merge(schema_class: type, value: Any, where: str) -> None:
    schema = OmegaConf.structured(schema_class)
    try:
        OmegaConf.merge(schema, value)
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(describe_config_error(error, schema, where)) from None


def _plain(value: Any) -> Any:
    """Dataclasses (RunConfig, MatrixSpec, ...) as the nested mappings a file would hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        is_run = isinstance(value, schemas.RunConfig)
        value = OmegaConf.to_container(OmegaConf.structured(value), resolve=False)
        if is_run:  # a RunConfig's experiment node and arm name are the file's, not the run's
            for key in ("experiment", "arm"):
                value.pop(key, None)
            if value.get("algorithm") == "???":
                value.pop("algorithm")
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    return copy.deepcopy(value)
