"""What a job trains, as a config and a hash: its run group (group_id, shared by arms that
differ only in seed) and its identity (identity_config, stored in every record and checkpoint,
so a mismatch names the keys that differ)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evsys.choices import CONFIRMATION

# Keys that say where, which replicate or where it is logged, not what is trained: left out
# of group_id.
NOT_IN_GROUP = ("seed", "arm", "tags", "experiment", "hydra", "logger")
# Nested keys that, like `seed`, say which replicate: left out of group_id, in the identity
# only when set (a config written before the key existed keeps its identity).
REPLICATE_KEYS = ("data.order_seed",)
# Keys that change how a job runs, not what it trains or scores: results and checkpoints stay
# valid across them, so they are left out of a job's identity too.
NOT_IN_IDENTITY = (
    "data.cache", "data.cache_dir", "data.num_workers", "data.num_proc", "backend.num_threads",
    "log_every_n_steps", "checkpoint_every_n_steps",
)  # fmt: skip


def group_id(cfg: DictConfig) -> str:
    """Stable hash of what is trained: the resolved config minus seed, names and paths.

    Arms that differ only in seed share it (a run group)."""
    return _hash(_trained(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)))


def _trained(container: dict) -> dict:
    identity = {k: v for k, v in container.items() if k not in NOT_IN_GROUP}
    for key in REPLICATE_KEYS:
        group, name = key.split(".")
        if isinstance(identity.get(group), dict) and name in identity[group]:
            identity[group] = {k: v for k, v in identity[group].items() if k != name}
    experiment = container.get("experiment") or {}
    continual = experiment.get("continual") or {}
    if continual.get("datasets") is not None:  # the chain is what is trained, not bookkeeping
        identity["continual"] = continual
    if (container.get("model") or {}).get("init_from") == "parent":  # which parent's model
        identity["parent_experiment_id"] = experiment.get("parent_experiment_id")
    return identity


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def identity_config(cfg: DictConfig) -> dict[str, Any]:
    """What one job trains and scores, as dotted keys: group_id's inputs plus the seed, minus
    the keys that only say how it runs (NOT_IN_IDENTITY). Stored in its record and checkpoint,
    so a mismatch can name the keys that differ."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    flat = _flatten({**_trained(container), "seed": container.get("seed")})
    flat.update({key: value for key, value in _replicate(container).items() if value is not None})
    stage = ((container.get("experiment") or {}).get("confirm") or {}).get("stage")
    if stage == CONFIRMATION:  # a confirmation run is never a selection run's record
        flat["stage"] = stage
    return {key: value for key, value in flat.items() if key not in NOT_IN_IDENTITY}


def _replicate(container: dict) -> dict[str, Any]:
    """REPLICATE_KEYS' values (None where absent)."""
    values = {}
    for key in REPLICATE_KEYS:
        group, name = key.split(".")
        values[key] = (container.get(group) or {}).get(name)
    return values


def treatment_arm(label: str) -> str:
    """A job's arm label without its replicate cells (`lr_1e-3,order_seed=1` -> `lr_1e-3`):
    jobs that differ only in which replicate they are (REPLICATE_KEYS, like `seed`) are one arm.
    A cell of the sweep's label (evsys/sweep/plan.py) is `key=value`, its key the dotted key's
    last part or the whole key; a label of replicate cells only is the unnamed arm, `default`."""
    replicate = {name for key in REPLICATE_KEYS for name in (key, key.rsplit(".", 1)[-1])}
    cells = [cell for cell in label.split(",") if cell.split("=", 1)[0] not in replicate]
    return ",".join(cells) or "default"


def is_replicate_override(override: str) -> bool:
    """`seed=`, or a key that like it says which replicate (`data.order_seed=`): a job's
    override that is not its arm's."""
    return override.lstrip("+~").split("=", 1)[0] in ("seed", *REPLICATE_KEYS)


def config_identity(config: dict[str, Any]) -> str:
    """The identity of a job: a hash of its identity_config."""
    return _hash(config)


def identity_diff(old: dict[str, Any], new: dict[str, Any], limit: int = 8) -> str:
    """The keys two identity configs differ in, as `key: old -> new`, comma separated."""
    if not old:
        return "it records no config identity: written by an older evsys, or unreadable"
    keys = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
    shown = [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"and {len(keys) - limit} more")
    return ", ".join(shown) or "no key differs, yet the identity does (another evsys version)"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}
