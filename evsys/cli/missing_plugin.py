"""`hydra/launcher=joblib` (or another of Hydra's own plugins) when the plugin is not installed:
Hydra answers with its list of options; evsys says which package provides the name and which of
its own options does the same job, before Hydra starts. Likewise `hydra/launcher=slurm` on a
machine without SLURM's commands, which submitit would only find out with a traceback after the
experiment was registered."""

from __future__ import annotations

import shutil
from importlib.util import find_spec

# Hydra's plugins by the option they add: (group, option) -> (package, module, evsys's own).
HYDRA_PLUGINS = {
    ("hydra/launcher", "joblib"): (
        "hydra-joblib-launcher",
        "hydra_plugins.hydra_joblib_launcher",
        "hydra/launcher=local runs arms side by side on this machine, each on its own cores "
        "(docs/parallel.md)",
    ),
    ("hydra/launcher", "ray"): (
        "hydra-ray-launcher",
        "hydra_plugins.hydra_ray_launcher",
        "hydra/launcher=slurm runs arms on a cluster (docs/slurm.md)",
    ),
    ("hydra/launcher", "rq"): (
        "hydra-rq-launcher",
        "hydra_plugins.hydra_rq_launcher",
        "hydra/launcher=local or hydra/launcher=slurm",
    ),
    ("hydra/sweeper", "optuna"): (
        "hydra-optuna-sweeper",
        "hydra_plugins.hydra_optuna_sweeper",
        'pip install -e ".[optuna]" installs it with evsys (docs/sweepers.md)',
    ),
    ("hydra/sweeper", "nevergrad"): (
        "hydra-nevergrad-sweeper",
        "hydra_plugins.hydra_nevergrad_sweeper",
        "hydra/sweeper=optuna searches a space too (docs/sweepers.md)",
    ),
    ("hydra/sweeper", "ax"): (
        "hydra-ax-sweeper",
        "hydra_plugins.hydra_ax_sweeper",
        "hydra/sweeper=optuna searches a space too (docs/sweepers.md)",
    ),
}


def _choices(args: list[str]) -> list[tuple[str, str]]:
    """(group, option) of every `group=option` argument."""
    return [(group, option) for group, _, option in (a.lstrip("+").partition("=") for a in args)]


def missing_plugin(args: list[str]) -> str | None:
    """A sentence for the first `group=option` override whose Hydra plugin is not installed."""
    for group, option in _choices(args):
        plugin = HYDRA_PLUGINS.get((group, option))
        if plugin and not _installed(plugin[1]):
            package, _, instead = plugin
            return (
                f"{group}={option} is Hydra's {package} plugin, which is not installed: "
                f"`pip install {package}`, or use evsys's own option: {instead}."
            )
    return None


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # hydra_plugins itself missing
        return False


# Launchers that need a program on PATH: (group, option) -> (program, what to do instead).
NEEDED_PROGRAMS = {
    ("hydra/launcher", "slurm"): (
        "sbatch",
        "run it where SLURM is installed (a cluster's login node; docs/slurm.md), or use "
        "hydra/launcher=local to run the arms on this machine",
    ),
    ("hydra/launcher", "submitit_slurm"): ("sbatch", "run it where SLURM is installed"),
}


def missing_program(args: list[str]) -> str | None:
    """A sentence for the first launcher override whose program is not on PATH."""
    for group, option in _choices(args):
        needed = NEEDED_PROGRAMS.get((group, option))
        if needed and shutil.which(needed[0]) is None:
            program, instead = needed
            return (
                f"{group}={option} submits through SLURM's `{program}`, which is not on this "
                f"machine's PATH: {instead}."
            )
    return None
