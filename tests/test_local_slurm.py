"""The local SLURM cluster of scripts/local_slurm.sh, as evsys sweeps use it.

Run with `pytest -m slurm` after `sudo bash scripts/local_slurm.sh start`; without a usable
cluster every test here is skipped with the reason.
"""

from __future__ import annotations

import operator
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

PARTITION = "debug"  # the partition scripts/local_slurm.sh defines
START_HINT = "start it with: sudo bash scripts/local_slurm.sh start"


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _cluster_problem() -> str | None:
    """Why the cluster cannot be used, or None when it can."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return f"SLURM is not installed (no sinfo/sacct); {START_HINT}"
    try:
        states = _run("sinfo", "-h", "-p", PARTITION, "-o", "%a %T")
        accounting = _run("sacct", "-n", "-X", "-S", "now-1minutes")
    except subprocess.TimeoutExpired:
        return f"SLURM does not answer within 30 s; {START_HINT}"
    if states.returncode != 0 or not states.stdout.strip():
        return f"no SLURM partition {PARTITION!r} ({states.stderr.strip()}); {START_HINT}"
    usable = ("idle", "mixed", "allocated", "completing")
    if not any(
        line.startswith("up ") and line.split()[1] in usable for line in states.stdout.splitlines()
    ):
        return f"no usable node in partition {PARTITION!r}: {states.stdout.strip()}"
    if accounting.returncode != 0:
        return f"sacct does not answer (slurmdbd down?): {accounting.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)


def _sacct_state(job_id: str) -> str:
    out = _run("sacct", "-n", "-X", "-P", "-D", "-j", job_id, "-o", "State").stdout
    states = out.split()
    return states[-1] if states else ""  # -D lists a requeued job's earlier runs first


def _wait_for_state(job_id: str, wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = _sacct_state(job_id)
        if state == wanted:
            return state
        time.sleep(1)
    return state


def _sbatch(tmp_path: Path, *args: str) -> str:
    out = _run("sbatch", "--parsable", "-p", PARTITION, "-o", str(tmp_path / "slurm-%j.out"), *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _submitit_executor(folder: Path):
    submitit = pytest.importorskip("submitit")
    executor = submitit.AutoExecutor(folder=folder / "%j")
    assert executor.cluster == "slurm"
    executor.update_parameters(slurm_partition=PARTITION, timeout_min=5, cpus_per_task=1)
    return executor


def test_sbatch_job_is_completed_in_sacct(slurm_cluster, tmp_path):
    job_id = _sbatch(tmp_path, "--wrap", "hostname; sleep 1")

    assert _wait_for_state(job_id, "COMPLETED") == "COMPLETED"
    assert (tmp_path / f"slurm-{job_id}.out").read_text().strip()


def test_killed_sbatch_job_is_failed_in_sacct(slurm_cluster, tmp_path):
    job_id = _sbatch(tmp_path, "--wrap", "kill -9 $$")

    assert _wait_for_state(job_id, "FAILED") == "FAILED"


def test_requeued_job_runs_again(slurm_cluster, tmp_path):
    marker = tmp_path / "runs"
    job_id = _sbatch(tmp_path, "--wrap", f"echo run >> {marker}; sleep 4")
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.5)

    requeue = _run("scontrol", "requeue", job_id)

    assert requeue.returncode == 0, requeue.stderr
    # The cluster's cred_expire=10 lets a requeued job start again after ~10-20 s.
    assert _wait_for_state(job_id, "COMPLETED", timeout=90) == "COMPLETED"
    assert marker.read_text().count("run") == 2


def test_submitit_round_trip(slurm_cluster, tmp_path):
    executor = _submitit_executor(tmp_path)

    total = executor.submit(operator.add, 2, 3)
    host = executor.submit(socket.gethostname)

    assert total.result() == 5
    assert host.result()


def test_crashing_submitit_job_raises_instead_of_hanging(slurm_cluster, tmp_path):
    from submitit.core.utils import UncompletedJobError

    executor = _submitit_executor(tmp_path)
    job = executor.submit(os._exit, 9)  # dies without writing a result, like an OOM kill
    deadline = time.monotonic() + 120

    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"submitit still waits on crashed job {job.job_id} after 120 s")
        time.sleep(2)

    # submitit gives a finished job 15 s for its result file to appear before it raises.
    with pytest.raises(UncompletedJobError, match="FAILED"):
        job.result()
