"""Checkpoints written atomically and read safely.

Atomic: a job killed (or a disk filling up) mid-save leaves the previous last.ckpt intact and
no `.partial` file behind. Each checkpoint carries its job's identity (records.py), so a resume
is refused when the config changed. Loaded with weights_only: a checkpoint in a copied or
shared run dir is never trusted to run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from evsys.records import CHECKPOINT_IDENTITY


def _as_saved(storage, location):
    return storage  # Lightning's default map_location: tensors stay where they were saved


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self, identity: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.identity = identity  # {"identity": ..., "config": ...}: stored in every checkpoint

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if self.identity is not None:
            checkpoint = {**checkpoint, CHECKPOINT_IDENTITY: self.identity}
        temporary = Path(f"{path}.partial")
        try:
            super().save_checkpoint(checkpoint, temporary, storage_options)
            os.chmod(temporary, 0o644)  # read by the group, like every other output
            os.replace(temporary, path)
        except OSError as error:  # disk full, quota, permissions: say which file
            temporary.unlink(missing_ok=True)
            raise OSError(error.errno, f"cannot save the checkpoint {path}: {error}") from error
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: str | Path, map_location: Any = _as_saved, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # Lightning passes weights_only=None, which it may turn into False: never here.
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
