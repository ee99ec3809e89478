"""The experiment registry lives in evsys/registry.py (below evsys/init_from.py, which reads
it); this name keeps `from evsys.sweep import registry` working."""

from evsys.registry import (
    DB_NAME,
    ExperimentNotFound,
    RegistryError,
    best_arm_model_dir,
    get,
    lineage,
    list_experiments,
    new_experiment_id,
    register,
    registry_path,
    update,
)

__all__ = [
    "DB_NAME",
    "ExperimentNotFound",
    "RegistryError",
    "best_arm_model_dir",
    "get",
    "lineage",
    "list_experiments",
    "new_experiment_id",
    "register",
    "registry_path",
    "update",
]
