"""The schema of evsys's SLURM launcher: submitit_slurm's settings plus evsys's own.

Registered as `schema/hydra_launcher/evsys_slurm` (a schema, not a launcher one would pick: so
tab completion of `hydra/launcher=` offers only launchers), the base of
conf/hydra/launcher/slurm.yaml.
It subclasses hydra-submitit-launcher's `submitit_slurm` schema rather than being merged over
it: Hydra's plugin scan re-executes that module, so a merge would see two unrelated classes.
Hydra imports every module of `hydra_plugins` at start-up, so the registration below runs
before any config is composed — and runs this module before it is in sys.modules, which is why
there is no `from __future__ import annotations` here (dataclass would fail).
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

# Settings the launcher reads itself; everything else goes to submitit's executor.
OWN_KEYS = ("wait", "poll_s")


@dataclass
class EvsysSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.evsys_launcher.evsys_launcher.EvsysSlurmLauncher"
    # false: return right after submission (fire-and-forget); conclude later with evsys.conclude
    wait: bool = True
    # seconds between two looks at the submitted jobs while waiting for them
    poll_s: float = 2.0
    # extra arguments of the srun that starts the tasks, e.g. --kill-on-bad-exit=1
    srun_args: list[str] | None = None


ConfigStore.instance().store(
    group="schema/hydra_launcher",
    name="evsys_slurm",
    node=EvsysSlurmQueueConf,
    provider="evsys",
)
