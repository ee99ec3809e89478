"""Checks of the parts of the concept page's experiment file: each RunConfig (run, runs,
matrix.base), the matrix axes and the continual stages, merged into evsys's schemas, every
error naming the key as written in the file (`runs[1].algorithm.lr`)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evsys import config as schemas
from evsys.algorithms import algorithm_schema, algorithms
from evsys.errors import ConfigError
from evsys.rules import check_fields
from evsys.validate import closest_key, describe_config_error

# A RunConfig of the page: the composed config's keys, less the experiment's own.
RUN_KEYS = tuple(
    item.name
    for item in dataclasses.fields(schemas.RunConfig)
    if item.name not in ("experiment", "arm")
)
DEFAULT_KIND = "sft"  # conf/train.yaml's algorithm
KIND = "algorithm.kind"  # the dotted path that picks the algorithm group option


# ----------------------------------------------------------------------------------- run configs
def check_run(tree: Any, where: str) -> dict[str, Any]:
    """One RunConfig of the file merged into its schema; returns a copy with algorithm.kind."""
    if dataclasses.is_dataclass(tree):
        tree = plain(tree)
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
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(describe_config_error(error, schema, where)) from None
    # The choices and ranges every composed config is checked against (evsys/rules.py), named
    # as written in the file: runs[1].algorithm.lr. (The defaults are within them; values left
    # to interpolations are checked when the plan composes.)
    check_fields(merged, f"{where}.", body)
    try:
        OmegaConf.to_object(merged.algorithm)  # the algorithm's own value checks
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    except OmegaConfBaseException:
        pass  # an interpolation into the rest of the config: checked once composed
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


def check_runs(runs: Any) -> dict[str, dict]:
    if isinstance(runs, dict):
        entries = [(f"runs.{key}", key, entry) for key, entry in runs.items()]
    elif isinstance(runs, list):
        entries = [(f"runs[{i}]", None, entry) for i, entry in enumerate(runs)]
    else:
        raise ConfigError(
            "runs must be a list of RunConfigs (each with a name) or name -> RunConfig"
        )
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


# ---------------------------------------------------------------------------------------- matrix
def check_matrix(matrix: Any) -> tuple[dict[str, Any], dict[str, list]]:
    if dataclasses.is_dataclass(matrix):
        matrix = plain(matrix)
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
        known = sorted(algorithms())
        for index, kind in enumerate(values):
            if str(kind) not in known:
                raise ConfigError(
                    f"{where}[{index}]={kind!r} is not a known algorithm; choose one of {known}"
                )
        return list(values)
    problems = [_path_problem(run_schema(kind, where), path) for kind in kinds]
    if None not in problems:
        raise ConfigError(f"'{where}' is not a config key.{problems[0]}")
    schema = run_schema(kinds[problems.index(None)], where)
    for index, value in enumerate(values):
        tree: Any = value
        for part in reversed(path.split(".")):
            tree = {part: tree}
        try:
            OmegaConf.merge(schema, tree)
        except (OmegaConfBaseException, ValueError) as error:
            detail = (getattr(error, "msg", None) or str(error)).splitlines()[0]
            raise ConfigError(
                f"Invalid config: bad value for '{where}[{index}]': {detail}."
            ) from None
    return list(values)


def _path_problem(schema: DictConfig, path: str) -> str | None:
    """None when `path` is a key of the schema, else a did-you-mean hint (maybe empty): each
    misspelled part corrected, so the hint is a whole path (`model.hiden_size` ->
    `model.hidden_size`, `modle.hidden_size` -> `model.hidden_size`)."""
    node: Any = schema
    fixed: list[str] = []
    for part in path.split("."):
        keys = [str(key) for key in node.keys()] if isinstance(node, DictConfig) else []
        if not fixed:
            keys = [key for key in keys if key in RUN_KEYS]
        if part not in keys:
            part = closest_key(part, keys) if keys else None
            if part is None:
                return ""
        fixed.append(part)
        node = node._get_node(part)  # a node, never its (possibly missing) value
    corrected = ".".join(fixed)
    return None if corrected == path else f" Did you mean 'matrix.axes.{corrected}'?"


# ------------------------------------------------------------------------------------- continual
def check_continual(continual: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(continual):
        continual = plain(continual)
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


def plain(value: Any) -> Any:
    """Dataclasses (RunConfig, MatrixSpec, ...) as the nested mappings a file would hold; of a
    RunConfig only what differs from its dataclass defaults, as a file sets only what it means
    (the group options under conf/ fill in the rest, as for any file)."""
    if isinstance(value, schemas.RunConfig):
        algorithm = value.algorithm
        default = schemas.RunConfig()
        if dataclasses.is_dataclass(algorithm):
            default.algorithm = type(algorithm)()
        changed = _changed(_container(value), _container(default))
        for key in ("experiment", "arm"):  # the file's own settings, not the run's
            changed.pop(key, None)
        if dataclasses.is_dataclass(algorithm):
            changed.setdefault("algorithm", {})["kind"] = algorithm.kind
        return changed
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _container(value)
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    return copy.deepcopy(value)


def _container(value: Any) -> Any:
    return OmegaConf.to_container(OmegaConf.structured(value), resolve=False)


def _changed(value: dict, default: dict) -> dict:
    changed = {}
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(default.get(key), dict):
            if inner := _changed(item, default[key]):
                changed[key] = inner
        elif key not in default or item != default[key]:
            changed[key] = item
    return changed
