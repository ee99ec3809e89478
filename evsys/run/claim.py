"""A job dir holds the results of one config. A job whose dir holds another config's record or
checkpoint refuses before training and writes nothing there (the old record is not its to
overwrite), or, with experiment.on_mismatch=rerun, moves those results aside first."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.confine import inside_sweep
from evsys.errors import ConfigError
from evsys.identity import identity_diff
from evsys.locks import supersede
from evsys.records import CHECKPOINT, SCORES_DIR, SUPERSEDED
from evsys.run.lifecycle import MODEL_DIR
from evsys.run.tensorboard import TENSORBOARD
from evsys.sweep.reuse import stored_identity

log = logging.getLogger("evsys")

# What stays when old results move aside: this run's own Hydra files, log and lock.
KEPT = (".hydra", ".evsys.lock", SUPERSEDED, "train.log")
# The dirs a job writes into (and chmods): never links leading out of its dir.
WRITTEN = (CHECKPOINT.parent.name, SCORES_DIR, MODEL_DIR, TENSORBOARD)


class OtherConfigsResults(ConfigError):
    """The job dir holds another config's results: refused, and they are left as they are."""


def claim_dir(cfg: DictConfig, job_dir: Path, identity: dict, mover: bool = True) -> None:
    """Return when `job_dir` holds no results or this config's; else move them aside
    (experiment.on_mismatch=rerun; only the `mover`, rank 0 of a multi-process arm, moves)
    or raise OtherConfigsResults naming the file. OutsideSweepDir when a dir the job writes
    into is a link leading outside its dir."""
    for name in WRITTEN:  # a single run's dir is not planned: its sweep's check did not run
        inside_sweep(Path(job_dir) / name, job_dir, f"the run's {name}/", "its run dir")
    stored = stored_identity(job_dir)
    if stored is None or (stored.identity and stored.identity == identity["identity"]):
        return
    if OmegaConf.select(cfg, "experiment.on_mismatch", default="refuse") == "rerun":
        if mover:
            old = [path for path in Path(job_dir).iterdir() if path.name not in KEPT]
            target = supersede(job_dir, old)
            log.warning("%s: results of another config, moved to %s", stored.path, target)
        return
    rerun = (
        f"add experiment.on_mismatch=rerun to move them aside into {job_dir}/{SUPERSEDED}/"
        "<timestamp>/ and train from step 0"
    )
    if stored.problem:  # an unreadable checkpoint, or a record that is not one
        raise OtherConfigsResults(
            f"{stored.path}: {stored.problem}. Delete or move it, or {rerun}, or run into a "
            "fresh directory"
        )
    differ = identity_diff(stored.config, identity["config"])
    raise OtherConfigsResults(
        f"{stored.path} holds results of another config ({differ}); they are left as they "
        f"are, and resuming from them would mix two configs. Run into a new directory, or "
        f"{rerun}"
    )
