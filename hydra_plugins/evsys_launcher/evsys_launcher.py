"""Hydra finds plugins in `hydra_plugins` only: this shim exposes evsys's SLURM launcher
(evsys/sweep/slurm_launcher.py) there. Selected with `hydra/launcher=slurm`."""

from evsys.sweep.slurm_launcher import EvsysSlurmLauncher

__all__ = ["EvsysSlurmLauncher"]
