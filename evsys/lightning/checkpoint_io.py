"""Checkpoints written atomically: a job killed mid-save leaves the previous last.ckpt intact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        temporary = f"{path}.partial"
        super().save_checkpoint(checkpoint, temporary, storage_options)
        os.replace(temporary, path)
