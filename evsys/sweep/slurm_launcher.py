"""evsys's SLURM launcher: hydra-submitit-launcher's, made safe for experiment sweeps.

Selected with `hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml). Unlike the stock launcher,
which returns `[job.results()[0] for job in jobs]` and so raises at the first job that died
without a result (abandoning the others and the conclusion), it

- waits for every job and turns one that died without a result (os._exit, kill -9, OOM, scancel)
  into a failed JobReturn: the conclusion then reports that arm as missing;
- resolves the launcher settings per job, so `tasks_per_node: ${backend.devices}` follows each
  arm's own backend (jobs that ask for the same resources share one job array);
- links each arm's SLURM logs into its job dir (`<arm dir>/slurm`);
- with `wait: false`, returns right after submission (fire-and-forget).

A requeued job (preemption, `scontrol requeue`, or submitit's own requeue on timeout through
`checkpoint()`) runs the same submitted call again; the arm resumes from its last.ckpt.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf

from evsys.errors import ConfigError
from evsys.records import SLURM_LOGS_LINK
from hydra_plugins.evsys_launcher.config import OWN_KEYS

log = logging.getLogger("evsys")

LOGS_LINK = SLURM_LOGS_LINK  # <arm dir>/slurm -> the job's submitit folder (logs, pickles)
# Launcher keys that submitit's executor takes under their own name, not as slurm_<key>.
EXECUTOR_INIT_KEYS = ("submitit_folder", "max_num_timeout")


@dataclass
class _Arm:
    """One job of the sweep: what composes it, where it writes, what it asks SLURM for."""

    overrides: list[str]
    index: int  # Hydra's job number
    config: DictConfig  # the job's composed config
    params: dict  # its launcher settings, resolved against its own config
    dir: Path  # its job dir, <sweep>/<arm>_seed<seed>
    job: Any = None  # the submitit job, once submitted


class EvsysSlurmLauncher(SlurmLauncher):
    def __init__(self, wait: bool = True, poll_s: float = 2.0, **params: Any) -> None:
        super().__init__(**params)
        self.wait = wait
        self.poll_s = poll_s

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        arms = [self._arm(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)]
        for arm in arms:
            _check_tasks_match_backend(arm)
        self._submit(arms)
        if not self.wait:
            self._print_detached(arms)
            return []
        return self._collect(arms)

    def _arm(self, overrides: list[str], index: int) -> _Arm:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        params = OmegaConf.to_container(config.hydra.launcher, resolve=True)
        for key in ("_target_", *OWN_KEYS):
            params.pop(key, None)
        job_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
        return _Arm(overrides, index, config, params, job_dir)

    def _submit(self, arms: list[_Arm]) -> None:
        """One job array per distinct set of launcher settings (usually one for the sweep)."""
        groups: dict[str, list[_Arm]] = {}
        for arm in arms:
            groups.setdefault(repr(sorted(arm.params.items())), []).append(arm)
        for group in groups.values():
            for arm in group:
                log.info("\t#%d : %s", arm.index, " ".join(filter_overrides(arm.overrides)))
            # the arguments of hydra-submitit-launcher's __call__, which runs each job
            calls = [
                (arm.overrides, "hydra.sweep.dir", arm.index, f"job_id_for_{arm.index}",
                 Singleton.get_state())
                for arm in group
            ]  # fmt: skip
            jobs = _executor(group[0].params).map_array(self, *zip(*calls, strict=True))
            for arm, job in zip(group, jobs, strict=True):
                arm.job = job
                _link_logs(arm.dir, Path(job.paths.folder))

    def _collect(self, arms: list[_Arm]) -> list[JobReturn]:
        """Every job's JobReturn, in launch order, each taken as soon as SLURM reports the job
        finished (so a crashed job's wait for its result overlaps the others' running)."""
        returns: dict[int, JobReturn] = {}
        while len(returns) < len(arms):
            for arm in arms:
                if arm.index not in returns and arm.job.done():
                    returns[arm.index] = result = self._job_return(arm)
                    log.info("SLURM job %s (%s) finished: job %s", arm.job.job_id, arm.dir.name,
                             result.status.name.lower())  # fmt: skip
            if len(returns) < len(arms):
                time.sleep(self.poll_s)
        return [returns[arm.index] for arm in arms]

    def _job_return(self, arm: _Arm) -> JobReturn:
        """Rank 0's JobReturn, or a failed one when the job left no result (killed, crashed)."""
        try:
            return arm.job.task(0).result()
        except Exception:  # noqa: BLE001 - submitit's UncompletedJobError, FailedJobError
            # submitit's own message holds the whole error stream; the logs are one link away.
            error = RuntimeError(
                f"SLURM job {arm.job.job_id} ended without a result (state {arm.job.state}); "
                f"logs in {arm.dir / LOGS_LINK}"
            )
            failed = JobReturn(
                overrides=arm.overrides,
                working_dir=str(arm.dir),
                task_name=self.config.hydra.job.name,
                status=JobStatus.FAILED,
            )
            failed.return_value = error
            return failed

    def _print_detached(self, arms: list[_Arm]) -> None:
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        ids = " ".join(sorted({arm.job.job_id.split("_")[0] for arm in arms}))
        log.info(
            "submitted %d jobs (SLURM job %s) and not waiting for them (hydra.launcher.wait=false)"
            "\n  sweep dir:  %s\n  progress:   squeue -j %s\n"
            "  conclusion, once they are done:  evsys conclude %s",
            len(arms), ids, sweep_dir, ids.replace(" ", ","), sweep_dir,
        )  # fmt: skip


def _check_tasks_match_backend(arm: _Arm) -> None:
    """SLURM starts one task per device: the launcher and the arm's backend must agree."""
    backend = arm.config.backend
    wanted = {"tasks_per_node": backend.devices, "nodes": backend.num_nodes}
    for key, value in wanted.items():
        if arm.params.get(key) != value:
            raise ConfigError(
                f"job {arm.dir.name}: hydra.launcher.{key}={arm.params.get(key)} but the arm's "
                f"backend asks for {value}; leave hydra.launcher.{key} at its default "
                f"(it follows backend.devices / backend.num_nodes)"
            )


def _executor(params: dict) -> Any:
    """A submitit SLURM executor with these launcher settings (as hydra-submitit passes them)."""
    import submitit  # lazy: Hydra imports every plugin at start-up

    init = {"folder": params["submitit_folder"], "slurm_max_num_timeout": params["max_num_timeout"]}
    executor = submitit.AutoExecutor(cluster="slurm", **init)
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            key if key in shared else f"slurm_{key}": value
            for key, value in params.items()
            if key not in EXECUTOR_INIT_KEYS and value is not None
        }
    )
    return executor


def _link_logs(job_dir: Path, folder: Path) -> None:
    """<arm dir>/slurm -> the job's submitit folder, relative so the sweep dir can move."""
    job_dir.mkdir(parents=True, exist_ok=True)
    link = job_dir / LOGS_LINK
    if link.is_symlink() or link.exists():
        link.unlink()  # a re-run of the sweep: point at the new job
    link.symlink_to(os.path.relpath(folder, job_dir), target_is_directory=True)
