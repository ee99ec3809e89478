"""evsys_sdk: the concept page's import name for evsys's public API.

The concept page writes

    from evsys_sdk import Experiment
    Experiment.from_yaml("config.yaml").run()

and names its objects Experiment, ExperimentConfig, RunConfig, MatrixSpec / Sweep,
expand_runs, run_experiment, ExperimentResult and ArmResult. Each is evsys's own object under
the same name (no copies, no wrappers): `evsys_sdk.Experiment is evsys.Experiment`.
"""

from __future__ import annotations

import evsys

PAGE_NAMES = (
    "Experiment",
    "ExperimentConfig",
    "RunConfig",
    "MatrixSpec",
    "Sweep",
    "expand_runs",
    "run_experiment",
    "ExperimentResult",
    "ArmResult",
)

__all__ = sorted(set(PAGE_NAMES) | set(evsys.__all__))
__version__ = evsys.__version__


def __getattr__(name: str):
    # Lazy like evsys itself: `import evsys_sdk` costs no torch, no Hydra.
    if name not in __all__:
        raise AttributeError(f"module 'evsys_sdk' has no attribute {name!r}")
    return getattr(evsys, name)
