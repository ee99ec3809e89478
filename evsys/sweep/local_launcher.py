"""evsys's local launcher: several arms of a sweep at once on one machine, each pinned to its
own GPUs — or, with no GPUs, to its own share of the CPU cores.

Selected with `hydra/launcher=local` (conf/hydra/launcher/local.yaml); the "one 8-GPU node, no
SLURM" case of docs/parallel.md. Each job runs in a fresh process (spawned, so CUDA and torch's
thread pool start with the job's own settings), through Hydra's own `run_job`, exactly as the
basic launcher runs it in-process: same config, same job dir, same record. Before the job
starts, the process gets

- `CUDA_VISIBLE_DEVICES`: `backend.devices` GPUs of the pool no running job holds (GPU arms);
- `OMP_NUM_THREADS` / `MKL_NUM_THREADS` and a CPU affinity of `threads_per_job` cores no
  running job holds (CPU arms);
- `EVSYS_PLACEMENT`: that assignment as JSON, which the arm copies into its record.

A job whose process dies without a result becomes a failed JobReturn (the arm is then reported
missing), never an exception that would abandon the other arms.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, open_dict

from evsys.plural import count
from evsys.run.progress import LINES_ENV

log = logging.getLogger("evsys")

PLACEMENT_ENV = "EVSYS_PLACEMENT"


@dataclass
class _Job:
    index: int
    overrides: list[str]
    config: DictConfig
    gpus_wanted: int
    gpus: list[str] = field(default_factory=list)
    cores: list[int] = field(default_factory=list)
    process: Any = None
    receiver: Any = None
    result: JobReturn | None = None


class LocalLauncher(Launcher):
    def __init__(
        self,
        parallel: int | None = None,
        gpus: list[str] | None = None,
        threads_per_job: int | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.parallel = parallel
        self.gpus = gpus
        self.threads_per_job = threads_per_job
        self.poll_s = poll_s
        self.config: DictConfig | None = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [self._job(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)]
        pool = [str(g) for g in self.gpus] if self.gpus is not None else visible_gpus()
        parallel = self._parallel(jobs, pool)
        threads = self.threads_per_job or max(1, (os.cpu_count() or 1) // parallel)
        log.info(
            "local launcher: %s, %d at a time; %s",
            count(len(jobs), "job"), parallel,
            f"GPUs {pool}" if pool else f"{count(threads, 'CPU thread')} each",
        )  # fmt: skip
        return _Schedule(jobs, parallel, pool, threads, self).run()

    def _job(self, overrides: list[str], index: int) -> _Job:
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = index
        backend = config.backend
        wanted = 0 if str(backend.accelerator) == "cpu" else _device_count(backend.devices)
        return _Job(index, overrides, config, wanted)

    def _parallel(self, jobs: list[_Job], pool: list[str]) -> int:
        if self.parallel:
            return self.parallel
        gpu_jobs = [job.gpus_wanted for job in jobs if job.gpus_wanted]
        if pool and gpu_jobs:
            return max(1, len(pool) // max(gpu_jobs))
        return max(1, min(len(jobs), (os.cpu_count() or 1) // 2))


class _Schedule:
    """Start jobs while slots, GPUs and cores are free; collect each when its process ends."""

    def __init__(self, jobs, parallel: int, pool: list[str], threads: int, launcher) -> None:
        self.waiting = list(jobs)
        self.jobs = list(jobs)
        self.running: list[_Job] = []
        self.parallel = parallel
        self.free_gpus = list(pool)
        self.free_cores = _cores()
        self.threads = threads
        self.launcher = launcher

    def run(self) -> list[JobReturn]:
        try:
            return self._run()
        except BaseException:  # Ctrl-C, SIGTERM (evsys.interrupts): the sweep's arms stop too
            self._stop_running()
            raise

    def _stop_running(self) -> None:
        """SIGTERM to each job still running (it stops as a run does: no record, resumable),
        then wait for it: no arm goes on training, orphaned, after its sweep ended."""
        for job in self.running:
            if job.process.is_alive():
                job.process.terminate()
        for job in self.running:
            job.process.join(timeout=120)

    def _run(self) -> list[JobReturn]:
        while self.waiting or self.running:
            while (
                self.waiting and len(self.running) < self.parallel and self._start(self.waiting[0])
            ):
                self.running.append(self.waiting.pop(0))
            if self.waiting and not self.running:  # nothing runs, and the next job cannot
                job = self.waiting[0]
                raise RuntimeError(
                    f"job {job.index} wants {job.gpus_wanted} GPUs; the pool has only "
                    f"{len(self.free_gpus)}: {self.free_gpus}"
                )
            time.sleep(self.launcher.poll_s)
            for job in [job for job in self.running if not job.process.is_alive()]:
                self._finish(job)
        return [job.result for job in self.jobs]

    def _start(self, job: _Job) -> bool:
        if job.gpus_wanted > len(self.free_gpus):
            return False
        job.gpus, self.free_gpus = (
            self.free_gpus[: job.gpus_wanted],
            self.free_gpus[job.gpus_wanted :],
        )
        if not job.gpus_wanted:
            job.cores, self.free_cores = (
                self.free_cores[: self.threads],
                self.free_cores[self.threads :],
            )
        placement = {
            "launcher": "local",
            "cuda_visible_devices": ",".join(job.gpus),
            "num_threads": self.threads if not job.gpus else None,
            "cpus": job.cores,
            "launched_at": dt.datetime.now().isoformat(timespec="seconds"),
        }
        env = {PLACEMENT_ENV: json.dumps(placement), LINES_ENV: "1"}
        env["CUDA_VISIBLE_DEVICES"] = placement["cuda_visible_devices"]
        if not job.gpus:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        log.info("\t#%d : %s  (%s)", job.index, " ".join(filter_overrides(job.overrides)),
                 f"GPUs {job.gpus}" if job.gpus else f"cores {job.cores}")  # fmt: skip
        import cloudpickle  # submitit's dependency; pickles Hydra's task function by value

        launcher = self.launcher
        payload = cloudpickle.dumps(
            (launcher.hydra_context, launcher.task_function, job.config, Singleton.get_state())
        )
        context = multiprocessing.get_context("spawn")
        job.receiver, sender = context.Pipe(duplex=False)
        job.process = context.Process(target=_run_in_child, args=(payload, env, job.cores, sender))
        job.process.start()
        sender.close()
        return True

    def _finish(self, job: _Job) -> None:
        job.process.join()
        try:
            import cloudpickle

            job.result = cloudpickle.loads(job.receiver.recv_bytes())
        except (EOFError, OSError):
            job.result = _failed(job, f"its process ended with exit code {job.process.exitcode}")
        self.running.remove(job)
        self.free_gpus = self.free_gpus + job.gpus
        self.free_cores = sorted(self.free_cores + job.cores)


def _run_in_child(payload: bytes, env: dict, cores: list[int], sender) -> None:
    """The job, in its own process: placement first (before torch starts), then Hydra's run_job."""
    os.environ.update(env)
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    import cloudpickle
    from hydra.core.utils import run_job

    hydra_context, task_function, config, state = cloudpickle.loads(payload)
    Singleton.set_state(state)
    setup_globals()
    result = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    sender.send_bytes(cloudpickle.dumps(result))
    sender.close()


def _failed(job: _Job, why: str) -> JobReturn:
    failed = JobReturn(overrides=job.overrides, status=JobStatus.FAILED)
    failed.return_value = RuntimeError(f"job {job.index} left no result: {why}")
    return failed


def visible_gpus() -> list[str]:
    """GPU ids this machine offers, without importing torch: the entries of
    CUDA_VISIBLE_DEVICES when it is set, else one index per `nvidia-smi -L` line."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    lines = [line for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    return [str(i) for i in range(len(lines))]


def _device_count(devices) -> int:
    try:
        return max(1, int(devices))
    except (TypeError, ValueError):  # "auto", a list of ids: one GPU each is what we can tell
        return len(devices) if isinstance(devices, (list, tuple)) else 1


def _cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))
