"""Whole-config checks: the composed config merged into its schemas, then every rule that
spans keys (continual stages, benchmarks, rewards), each failure a ConfigError naming the key.

It sits above config (the schemas), algorithms and evaluation's name checks, and imports
neither torch nor any model code, so a sweep is checked in a second before anything trains.
"""

from __future__ import annotations

import difflib
import re

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evsys.algorithms import algorithm_schema
from evsys.config import ContinualStage, RunConfig
from evsys.errors import ConfigError
from evsys.evaluation.base import harness_settings
from evsys.evaluation.names import check_benchmark_kinds
from evsys.rewards import resolve_reward


def validate_run_config(cfg: DictConfig) -> DictConfig:
    """The config merged into its schemas, or a ConfigError naming the offending key."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    kind = (container.get("algorithm") or {}).get("kind")
    if not kind:
        raise ConfigError("algorithm.kind is missing; choose an algorithm, e.g. algorithm=sft")
    _prepare_continual(container)
    schema = OmegaConf.structured(RunConfig)
    schema.algorithm = OmegaConf.structured(algorithm_schema(kind))
    try:
        merged = OmegaConf.merge(schema, container)
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(describe_config_error(error, schema)) from None
    # Building the dataclass runs its __post_init__: an algorithm checks its values there.
    OmegaConf.to_object(merged.algorithm)
    check_rewards(merged)
    check_continual(merged)
    check_benchmarks(merged)
    return merged


def check_benchmarks(cfg: DictConfig) -> None:
    """harness:<task> and class:<module.Class> benchmarks resolve, and validation scores a
    subset of them; raises ConfigError naming the key, so a sweep fails before any job."""
    names = [str(name) for name in cfg.eval.benchmarks]
    during = cfg.validation.benchmarks
    if during is not None and (unknown := [str(n) for n in during if str(n) not in names]):
        raise ConfigError(
            f"validation.benchmarks: {unknown} are not in eval.benchmarks {names}; "
            "list the ones to score during training out of those"
        )
    if cfg.validation.benchmarks_every_n_steps < 0:
        raise ConfigError("validation.benchmarks_every_n_steps must be >= 0 (0: never)")
    check_benchmark_kinds(names, harness_settings(cfg))


def check_rewards(cfg: DictConfig) -> None:
    """GRPO's reward names resolve to functions (built-in names or dotted paths)."""
    for index, name in enumerate(OmegaConf.select(cfg, "algorithm.rewards", default=None) or []):
        resolve_reward(str(name), f"algorithm.rewards[{index}]")


# ----------------------------------------------------------------------------------- continual
CONTINUAL_KEY = "experiment.continual.datasets"
STAGE_NAME = re.compile(r"[\w.+=-]+")  # stage names become directory names


def _prepare_continual(container: dict) -> None:
    """Check each stage against its schema (so errors name the stage), and make the first
    stage's dataset the job's data.dataset_name, which a continual job otherwise ignores:
    interpolations such as the default eval.benchmarks then name a dataset of the chain."""
    stages = ((container.get("experiment") or {}).get("continual") or {}).get("datasets")
    if not isinstance(stages, list):
        return
    for index, stage in enumerate(stages):
        try:
            OmegaConf.merge(OmegaConf.structured(ContinualStage), stage)
        except (OmegaConfBaseException, ValueError) as error:
            key = getattr(error, "full_key", None) or ""
            detail = (getattr(error, "msg", None) or str(error)).splitlines()[0]
            where = f"{CONTINUAL_KEY}[{index}]" + (f".{key}" if key else "")
            raise ConfigError(f"Invalid config: {where}: {detail}.") from None
    if stages and isinstance(stages[0], dict) and stages[0].get("dataset_name"):
        container.setdefault("data", {})["dataset_name"] = stages[0]["dataset_name"]


def check_continual(cfg: DictConfig) -> None:
    """A continual job's stages make sense; raises ConfigError naming the stage otherwise."""
    stages = cfg.experiment.continual.datasets
    if stages is None:
        return
    if len(stages) == 0:
        raise ConfigError(
            f"{CONTINUAL_KEY} is empty: list at least one stage, or leave it null (the default) "
            "for an ordinary run"
        )
    if cfg.data.mixture is not None:
        raise ConfigError(
            f"{CONTINUAL_KEY} and data.mixture cannot be combined yet: each stage trains on one "
            "dataset; leave data.mixture null"
        )
    for index, stage in enumerate(stages):
        where = f"{CONTINUAL_KEY}[{index}]"
        if OmegaConf.is_missing(stage, "dataset_name") or not stage.dataset_name:
            raise ConfigError(f"{where}.dataset_name is missing: name the stage's dataset")
        if stage.max_steps is not None and stage.max_steps <= 0:
            raise ConfigError(f"{where}.max_steps={stage.max_steps} must be positive (or null)")
        if stage.name is not None and not STAGE_NAME.fullmatch(stage.name):
            raise ConfigError(
                f"{where}.name={stage.name!r}: use letters, digits and . _ + = - only "
                "(it names the stage's directory)"
            )
    replay = cfg.experiment.continual.replay
    if not 0.0 <= replay < 1.0:
        raise ConfigError(
            f"experiment.continual.replay={replay} must be in [0, 1): the share of each stage's "
            "training mix drawn from earlier stages"
        )
    if cfg.backend.num_nodes != 1 or str(cfg.backend.devices) != "1":
        raise ConfigError(
            f"{CONTINUAL_KEY}: continual jobs run in one process for now; set backend.devices=1 "
            f"and backend.num_nodes=1 (got {cfg.backend.devices} x {cfg.backend.num_nodes})"
        )


# Names people carry over from other trainers, mapped to ours for "did you mean" hints.
KEY_ALIASES = {
    "learning_rate": "lr",
    "steps": "max_steps",
    "num_steps": "max_steps",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "accumulate_grad_batches",
    "max_grad_norm": "grad_clip",
    "warmup": "warmup_steps",
    "dataset": "dataset_name",
    "max_seq_length": "max_length",
}


def _closest_key(typed: str, keys: list[str]) -> str | None:
    aliases = {alias: key for alias, key in KEY_ALIASES.items() if key in keys}
    close = difflib.get_close_matches(typed, keys + list(aliases), n=1, cutoff=0.7)
    return aliases.get(close[0], close[0]) if close else None


def override_hint(message: str, cfg: DictConfig) -> str:
    """A "did you mean" for Hydra's "Could not override 'a.b'" when `b` is a typo of a key of `a`.

    Hydra's own advice for an unknown key is to append it with `+`, which for a typo is wrong.
    """
    match = re.search(r"Could not override '([^']+)'", message)
    if not match:
        return ""
    parent_key, _, leaf = match.group(1).rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf in parent:
        return ""
    suggestion = _closest_key(leaf, [str(k) for k in parent.keys()])
    prefix = f"{parent_key}." if parent_key else ""
    known = f"'{prefix}{suggestion}'" if suggestion else f"one of {sorted(map(str, parent))}"
    return f"'{match.group(1)}' is not a config key. Did you mean {known}?"


def describe_config_error(
    error: OmegaConfBaseException, schema: DictConfig, where: str = ""
) -> str:
    """One readable sentence naming the full key, with a suggestion for typos.

    `where` names the node the schema was merged at, as its author wrote it (an experiment
    file's `runs[1]`), so the message names the key in that file: `runs[1].algorithm.lr`."""
    full_key = getattr(error, "full_key", None) or "?"
    message = getattr(error, "msg", None) or str(error)
    parent_key, _, leaf = full_key.rpartition(".")
    at = f"{where}." if where else ""
    hint = ""
    parent = OmegaConf.select(schema, parent_key) if parent_key else schema
    if isinstance(parent, DictConfig) and leaf not in parent:
        suggestion = _closest_key(leaf, [str(k) for k in parent.keys()])
        prefix = f"{at}{parent_key}." if parent_key else at
        hint = f" Did you mean '{prefix}{suggestion}'?" if suggestion else ""
        message = f"'{at}{full_key}' is not a valid key ({message.splitlines()[0]})"
    else:
        message = f"bad value for '{at}{full_key}': {message.splitlines()[0]}"
    return f"Invalid config: {message}.{hint}"


def closest_key(typed: str, keys: list[str]) -> str | None:
    """The key `typed` most likely means (a typo, or a name from another trainer), or None."""
    return _closest_key(typed, keys)
