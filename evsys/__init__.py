"""evsys: hypothesis-driven LLM post-training experiments.

    from evsys import Experiment, run_experiment
    result = Experiment.from_yaml("my_experiment.yaml").run()

Names are imported lazily so that light commands (`python -m evsys.conclude`) start fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Experiment": "evsys.sweep.experiment",
    "run_experiment": "evsys.run.arm",
    "compose_run_config": "evsys.compose",
    "ArmResult": "evsys.records",
    "ExperimentResult": "evsys.records",
    "RunConfig": "evsys.config",
    "ModelConfig": "evsys.config",
    "AlgorithmConfig": "evsys.config",
    "BackendConfig": "evsys.config",
    "DataConfig": "evsys.config",
    "EvalConfig": "evsys.config",
    "ValidationConfig": "evsys.config",
    "ExperimentConfig": "evsys.config",
    "ConfigError": "evsys.errors",
    "DataError": "evsys.errors",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evsys' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
