"""Hydra instantiates plugins defined in `hydra_plugins` only: this shim puts evsys's SLURM
launcher (evsys/sweep/slurm_launcher.py, where the code is) there. `hydra/launcher=slurm`."""

from evsys.sweep import slurm_launcher


class EvsysSlurmLauncher(slurm_launcher.EvsysSlurmLauncher):
    """evsys's SLURM launcher, under the name Hydra looks for (conf/hydra/launcher/slurm.yaml)."""
