"""Whole-config checks: the composed config merged into its schemas, then every rule that
spans keys (continual stages, benchmarks, rewards), each failure a ConfigError naming the key.

It sits above config (the schemas), algorithms and evaluation's name checks, and imports
neither torch nor any model code, so a sweep is checked in a second before anything trains.
"""

from __future__ import annotations

import copy
import difflib
import re

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from evsys.algorithms import algorithm_schema
from evsys.config import ContinualStage, RunConfig, SuccessMetric
from evsys.errors import ConfigError
from evsys.evaluation.base import harness_settings
from evsys.evaluation.names import (
    benchmark_label,
    check_benchmark_kinds,
    is_harness_name,
)
from evsys.free_text import literal
from evsys.metric_kinds import metric_mode
from evsys.metric_names import check_metric, scored_as_text
from evsys.rewards import resolve_reward
from evsys.rules import check_fields, check_value, rules_of


def validate_run_config(cfg: DictConfig) -> DictConfig:
    """The config merged into its schemas, or a ConfigError naming the offending key; its free
    text read literally (evsys/free_text.py)."""
    container = OmegaConf.to_container(literal(cfg), resolve=False)
    container.pop("hydra", None)
    kind = (container.get("algorithm") or {}).get("kind")
    if not kind:
        raise ConfigError("algorithm.kind is missing; choose an algorithm, e.g. algorithm=sft")
    _prepare_continual(container)
    schema = _run_schema(algorithm_schema(kind))
    try:
        merged = OmegaConf.merge(schema, container)
        OmegaConf.resolve(merged)
        literal(merged)  # resolved free text reads `${...}` as text again: escape it again
    except OmegaConfBaseException as error:
        raise ConfigError(describe_config_error(error, schema)) from None
    check_fields(merged)  # every value within its field's choices and range (evsys/rules.py)
    check_between_keys(merged)
    return merged


def check_between_keys(merged: DictConfig) -> None:
    """The rules that span keys of a config merged into its schemas (a plan reruns them alone
    on a checked job's config with a few values changed: evsys/sweep/patched_jobs.py)."""
    # Building the dataclass runs its __post_init__: an algorithm checks rules between keys there.
    OmegaConf.to_object(merged.algorithm)
    OmegaConf.to_object(merged.logger)  # its package installed (evsys/run/logger_config.py)
    check_names(merged)
    check_ranges(merged)
    check_rewards(merged)
    check_continual(merged)
    check_benchmarks(merged)
    check_generates(merged, algorithm_schema(merged.algorithm.kind))
    check_sharding(merged)


def check_generates(cfg: DictConfig, schema: type) -> None:
    """Benchmarks score a model that generates text: an algorithm whose model does not (its
    schema says `generates = False`, e.g. reward_model) runs with none."""
    if getattr(schema, "generates", True) or not cfg.eval.benchmarks:
        return
    raise ConfigError(
        f"eval.benchmarks={[str(name) for name in cfg.eval.benchmarks]}: "
        f"algorithm={cfg.algorithm.kind} trains a model that generates no text, so there is "
        "nothing to score; set eval.benchmarks=[]"
    )


def run_schema(kind: str) -> DictConfig:
    """RunConfig's schema with algorithm `kind`'s (a copy)."""
    return _run_schema(algorithm_schema(kind))


def _run_schema(algorithm: type) -> DictConfig:
    """RunConfig's schema with `algorithm`'s: built once per algorithm (reading dataclasses
    is slow), a copy per call (a plan validates every distinct job)."""
    if algorithm not in _RUN_SCHEMAS:
        schema = OmegaConf.structured(RunConfig)
        schema.algorithm = OmegaConf.structured(algorithm)
        _RUN_SCHEMAS[algorithm] = schema
    return copy.deepcopy(_RUN_SCHEMAS[algorithm])


_RUN_SCHEMAS: dict[type, DictConfig] = {}


def check_sharding(cfg: DictConfig) -> None:
    """backend.strategy=fsdp (backend=fsdp): what sharded training does not support yet."""
    if cfg.backend.strategy != "fsdp":
        return
    unsupported = {
        "model.lora.r > 0": cfg.model.lora.r > 0,  # mixed frozen/trained units: untested
        "backend.compile=true": cfg.backend.compile,  # compiled FSDP blocks: untested
        # Benchmarks during training score on rank 0 alone; a sharded model needs all ranks.
        "validation.benchmarks_every_n_steps > 0": cfg.validation.benchmarks_every_n_steps > 0,
    }
    if chosen := [name for name, on in unsupported.items() if on]:
        raise ConfigError(
            f"backend.strategy=fsdp does not support {', '.join(chosen)} yet "
            "(docs/scale.md#backendfsdp); use backend=ddp or one process for it"
        )


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
    check_benchmark_kinds(names, harness_settings(cfg))
    for name in names:  # a label names the file scores/<label>.jsonl: it stays in the run dir
        label = benchmark_label(name)
        if not label or label.startswith(".") or "/" in label or "\\" in label:
            raise ConfigError(
                f"eval.benchmarks: {name} is labelled {label!r}, which is not a valid name (it "
                "names a file): no slashes, and not starting with '.'"
            )


def check_rewards(cfg: DictConfig) -> None:
    """GRPO's reward names resolve to functions (built-in names or dotted paths)."""
    for index, name in enumerate(OmegaConf.select(cfg, "algorithm.rewards", default=None) or []):
        resolve_reward(str(name), f"algorithm.rewards[{index}]")


# ------------------------------------------------------------------------- names and ranges
# Names that become directory names: a letter, digit or _ first (so never "." or ".."), then
# those and . _ + = , - (arm labels such as "lr=0.001,warmup=5"); no slashes, no spaces.
NAME = re.compile(r"\w[\w.+=,-]*")
NAMED_KEYS = ("experiment.name", "arm")


def check_names(cfg: DictConfig) -> None:
    """experiment.name and arm are safe directory names: every path evsys derives from them
    stays under experiment.stores.outputs_root (docs/reliability.md)."""
    for key in NAMED_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not NAME.fullmatch(str(value)):
            raise ConfigError(
                f"{key}={value!r} is not a valid name: it names a directory, so use letters, "
                "digits and . _ + = , - only, starting with a letter, digit or _ (no slashes)"
            )


def check_ranges(cfg: DictConfig) -> None:
    """The rules between keys (each key's own range and choices are on its schema field,
    checked by evsys/rules.py), or a ConfigError naming the keys."""
    longest = cfg.model.max_position_embeddings
    if cfg.model.name is None and cfg.data.max_length > longest:
        raise ConfigError(
            f"data.max_length={cfg.data.max_length} exceeds model.max_position_embeddings="
            f"{longest}, the longest sequence the model supports: lower one or raise the other"
        )
    fresh = cfg.model.name is None and cfg.model.init_from is None
    if fresh and cfg.model.hidden_size % cfg.model.num_heads:
        raise ConfigError(
            f"model.hidden_size={cfg.model.hidden_size} must be divisible by "
            f"model.num_heads={cfg.model.num_heads}"
        )
    metric = cfg.experiment.success_metric
    if metric.mode is not None and not metric.name:
        raise ConfigError(
            f"experiment.success_metric.mode={metric.mode} is set without "
            "experiment.success_metric.name; the default metric brings its own mode, so name "
            "the metric too (e.g. experiment.success_metric.name=val/loss)"
        )


# ------------------------------------------------------------------------------ success metric
def success_metric(cfg: DictConfig) -> dict:
    """The configured success metric; by default a continual chain's average final exact
    match over its tasks, else exact match on the first benchmark (its loss when it is scored
    as text), else the validation loss."""
    metric = OmegaConf.to_container(cfg.experiment.success_metric, resolve=True)
    if not metric["name"]:
        benchmarks = list(cfg.eval.benchmarks)
        if OmegaConf.select(cfg, "experiment.continual.datasets") is not None:
            # The chain's question is what its final model still knows of every stage, not
            # how it does on the first stage's dataset (the job's data.dataset_name).
            metric["name"] = "continual/avg_final"
        elif benchmarks and scored_as_text(cfg, str(benchmarks[0])):
            metric["name"] = f"eval/{benchmark_label(str(benchmarks[0]))}/loss"
        elif benchmarks:
            metric["name"] = f"eval/{benchmark_label(str(benchmarks[0]))}/exact_match"
        else:
            metric["name"] = "val/loss"
        metric["mode"] = None  # a default metric brings its own mode
    if metric["mode"] is None:  # from the name: a loss is not maximised
        metric["mode"] = metric_mode(metric["name"])
    # (also here: a sweep run by another sweeper is planned from this alone, evsys/sweep/foreign.py)
    check_value("experiment.success_metric.mode", metric["mode"], rules_of(SuccessMetric, "mode"))
    return metric


def check_success_metric(cfg: DictConfig, name: str) -> None:
    """The job's record will hold `name` (evsys/metric_names.py); a ConfigError says why not,
    and what the job produces."""
    if not cfg.experiment.success_metric.name and cfg.experiment.continual.datasets is None:
        if benchmarks := [str(b) for b in cfg.eval.benchmarks]:
            _check_default_is_known(benchmarks[0])
    check_metric(cfg, name)


def _check_default_is_known(first_benchmark: str) -> None:
    """The default metric (exact match of the first benchmark) is a guess for a harness task,
    which reports what its own YAML lists (acc, acc_norm, f1, ...): a sweep names it instead
    of training every arm and then finding nothing to rank them by."""
    if is_harness_name(first_benchmark):
        label = benchmark_label(first_benchmark)
        raise ConfigError(
            f"experiment.success_metric.name is not set, and the first benchmark "
            f"{first_benchmark} is a harness task, whose metrics evsys cannot know before it "
            f"runs: name the one to rank arms by, e.g. experiment.success_metric.name="
            f"eval/{label}/acc (the task's metric_list in lm-eval)"
        )


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
        if stage.name is not None and not STAGE_NAME.fullmatch(stage.name):
            raise ConfigError(
                f"{where}.name={stage.name!r}: use letters, digits and . _ + = - only "
                "(it names the stage's directory)"
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
    return unknown_key(cfg, match.group(1)) if match else ""


def unknown_key(cfg: DictConfig, key: str) -> str:
    """The error for overriding `key` (no `+`) when `cfg` has no such key, worded as for a `+`
    typo (describe_config_error, with its "did you mean"); "" when Hydra could override it."""
    try:
        # Hydra overrides with this very call and reports the same two errors as missing keys.
        OmegaConf.update(copy.deepcopy(cfg), key, None, merge=True)
    except (ConfigKeyError, ConfigAttributeError) as error:
        return describe_config_error(error, cfg)
    except OmegaConfBaseException:
        pass  # the key exists; its value is checked later, with the real value
    return ""


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
