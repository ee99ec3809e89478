"""Identity and resume: when a run goes on from its last.ckpt, and when it refuses to.

Every checkpoint carries the identity of the config that saved it (job_identity, stored by
evsys/lightning/checkpoint_io.py). A run resumes from `<run dir>/checkpoints/last.ckpt` only
when that identity is its own; a checkpoint of another config, or one that cannot be read,
is refused naming the keys that differ, or moved aside with experiment.on_mismatch=rerun.
Claiming a job dir that holds another config's record is evsys/run/claim.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys import records
from evsys.errors import ConfigError
from evsys.identity import config_identity, identity_config, identity_diff
from evsys.locks import supersede

log = logging.getLogger("evsys")


def job_identity(cfg: DictConfig) -> dict:
    """What a checkpoint of `cfg` carries: its identity and the config it hashes."""
    config = identity_config(cfg)
    return {"identity": config_identity(config), "config": config}


def resume_step(cfg: DictConfig, path: Path, identity: dict) -> int | None:
    """The step to resume from `path` at, None to train from step 0 (no checkpoint, or one
    unreadable or of another config moved aside with experiment.on_mismatch=rerun); a
    ConfigError naming the file and the ways on when it is unreadable or of another config."""
    if not path.exists():
        return None
    try:
        step, stored = records.read_checkpoint(path)
        unreadable = ""
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
        # The type only: torch's text advises weights_only=False, which runs a planted file.
        step, stored, unreadable = 0, {}, type(error).__name__
    if not unreadable and stored.get("identity") == identity["identity"]:
        return step
    run_dir = path.parent.parent
    if OmegaConf.select(cfg, "experiment.on_mismatch", default="refuse") == "rerun":
        target = supersede(run_dir, [path.parent])
        why = "is unreadable" if unreadable else "was saved by another config"
        log.warning("%s %s: moved to %s", path, why, target)
        return None
    rerun = (
        f"add experiment.on_mismatch=rerun to move it aside into {run_dir}/.superseded/"
        "<timestamp>/ and train from step 0"
    )
    if unreadable:
        raise ConfigError(
            f"cannot read the checkpoint {path} ({unreadable}); it is not loaded (never "
            f"unpickled with code). Delete or move it, or {rerun}, or run into a fresh directory"
        )
    differ = identity_diff(dict(stored.get("config") or {}), identity["config"])
    raise ConfigError(
        f"the checkpoint {path} was saved by another config ({differ}); resuming from it would "
        f"mix two configs. Run into a new directory, or {rerun}"
    )
