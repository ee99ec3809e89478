"""Where a launch writes is checked before anything is created: its run or sweep dir and, for a
sweep, experiment.stores.outputs_root and the registry in it. A read-only place or a corrupt
registry is then one line naming the path, not a traceback from the first write, and no sweep
dir is left behind by a launch that could not record itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig

from evsys import registry
from evsys.errors import ConfigError


def check_stores(config: DictConfig, multirun: bool) -> None:
    """A ConfigError naming the key and path that cannot be written, or a RegistryError for a
    registry that does not open; nothing is created but the outputs root's registry."""
    if multirun:
        check_sweep_stores(config.experiment.stores.outputs_root, config.hydra.sweep.dir)
    else:
        check_writable(Path(config.hydra.run.dir), "hydra.run.dir")


def check_sweep_stores(outputs_root: str | Path, sweep_dir: str | Path) -> None:
    """A sweep's: its outputs root and sweep dir can be written, its registry opens."""
    check_writable(Path(outputs_root), "experiment.stores.outputs_root")
    check_writable(Path(sweep_dir), "hydra.sweep.dir")
    registry.check(outputs_root)


def check_writable(path: Path, key: str) -> None:
    """`path`, or where it would be made (its nearest existing parent), takes a new file."""
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        reason = error.strerror or str(error)
        where = "" if existing == path else f" (in {existing})"
        raise ConfigError(
            f"{key}={path} cannot be written: {reason}{where}; choose a writable dir"
        ) from None
