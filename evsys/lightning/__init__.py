"""One LightningModule per algorithm: evsys/lightning/<kind>.py defines CONFIG and MODULE."""

from __future__ import annotations

import importlib


def algorithm_module_class(kind: str) -> type:
    """The LightningModule class that trains `algorithm.kind`."""
    return importlib.import_module(f"evsys.lightning.{kind}").MODULE
