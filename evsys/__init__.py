"""evsys: hypothesis-driven LLM post-training experiments.

    from evsys import Experiment, conclude, expand_runs, load, plan, run_experiment
    result = Experiment.from_yaml("config.yaml").run()   # the whole experiment, bookkept
    planned = plan("config.yaml")                         # its Plan (jobs), nothing trained
    runs = expand_runs("config.yaml")                     # its RunConfigs, nothing trained
    record = run_experiment(runs[0])                      # one arm, no bookkeeping
    conclusion = conclude(result.sweep_dir)               # rebuilt from the sweep dir's files
    past = load("latest")                                 # a past experiment's ExperimentResult
    past.to_dataframe()                                   # one row per arm x seed (needs pandas)

The core is `plan`, `run_experiment` and `conclude`: the CLI calls the same three.

`ExperimentConfig` is the concept page's (evsys/sweep/page_format.py: the experiment node's
fields plus output_dir and one of run / runs / matrix, `ExperimentConfig.from_yaml(path)`);
the `experiment:` node's schema alone is evsys.config.ExperimentConfig.

Names are imported lazily so that light commands (`python -m evsys.conclude`) start fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Experiment": "evsys.sweep.experiment",
    "expand_runs": "evsys.sweep.expand",
    "plan": "evsys.sweep.expand",
    "conclude": "evsys.sweep.experiment",
    "MatrixSpec": "evsys.sweep.page_format",
    "Sweep": "evsys.sweep.page_format",
    "run_experiment": "evsys.run.arm",
    "compose_run_config": "evsys.compose",
    "ArmResult": "evsys.records",
    "ExperimentResult": "evsys.results",
    "load": "evsys.results",
    "RunConfig": "evsys.config",
    "ModelConfig": "evsys.config",
    "AlgorithmConfig": "evsys.config",
    "BackendConfig": "evsys.config",
    "DataConfig": "evsys.config",
    "EvalConfig": "evsys.config",
    "ValidationConfig": "evsys.config",
    "ExperimentConfig": "evsys.sweep.page_format",
    "ConfigError": "evsys.errors",
    "DataError": "evsys.errors",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evsys' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
