"""Hydra instantiates plugins defined in `hydra_plugins` only: this shim puts evsys's
launchers there — SLURM (evsys/sweep/slurm_launcher.py, `hydra/launcher=slurm`) and parallel
local arms (evsys/sweep/local_launcher.py, `hydra/launcher=local`)."""

from evsys.sweep import local_launcher, slurm_launcher


class EvsysSlurmLauncher(slurm_launcher.EvsysSlurmLauncher):
    """evsys's SLURM launcher, under the name Hydra looks for (conf/hydra/launcher/slurm.yaml)."""


class EvsysLocalLauncher(local_launcher.LocalLauncher):
    """evsys's local launcher, under the name Hydra looks for (conf/hydra/launcher/local.yaml)."""
