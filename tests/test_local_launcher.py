"""hydra/launcher=local: arms side by side on one machine, each with its own GPUs or CPU cores,
the assignment in each record, the conclusion built as with any launcher."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from omegaconf import OmegaConf

from evsys.sweep import local_launcher
from evsys.sweep.local_launcher import LocalLauncher, _Job, _Schedule, visible_gpus
from tests.conftest import FAST, run_cli
from tests.test_hydra_lines import hydra_warnings


@pytest.mark.integration
@pytest.mark.hydra_lines
def test_two_cpu_arms_run_at_once_on_their_own_cores(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["+experiment=demo", "experiment.n_repeats=1", *FAST, f"hydra.sweep.dir={sweep}"]
    args += [
        "hydra/launcher=local",
        "hydra.launcher.parallel=2",
        "hydra.launcher.threads_per_job=1",
    ]
    done = run_cli([*args, f"experiment.stores.outputs_root={tmp_path / 'out'}", "-m"], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert hydra_warnings(done.stdout + done.stderr) == []
    records = [
        json.loads((sweep / d / "result.json").read_text())
        for d in ("lr_1e-4_seed0", "lr_3e-3_seed0")
    ]
    assert [r["status"] for r in records] == ["completed", "completed"]
    placements = [r["placement"] for r in records]
    assert all(p["launcher"] == "local" and p["num_threads"] == 1 for p in placements)
    assert all(p["torch_threads"] == 1 and p["cuda_visible_devices"] == "" for p in placements)
    cpus = [tuple(p["cpus"]) for p in placements]
    assert len(set(cpus)) == 2 and all(len(c) == 1 for c in cpus)  # distinct cores
    # both were started before either finished: they ran side by side
    launched = max(dt.datetime.fromisoformat(p["launched_at"]) for p in placements)
    assert launched <= min(dt.datetime.fromisoformat(r["finished_at"]) for r in records)
    assert json.loads((sweep / "conclusion.json").read_text())["best_arm"]


class _FakeProcess:
    """Records what a job's process would have been started with; ends at once."""

    started: list[dict] = []

    def __init__(self, target, args) -> None:
        self.env, self.cores = args[1], args[2]
        self.exitcode = 1

    def start(self) -> None:
        _FakeProcess.started.append(self.env)

    def is_alive(self) -> bool:
        return False

    def join(self) -> None:
        pass


class _FakeEnd:
    def recv_bytes(self):
        raise EOFError

    def close(self) -> None:
        pass


class _FakeContext:
    Process = _FakeProcess

    @staticmethod
    def Pipe(duplex=False):  # noqa: N802 - multiprocessing's name
        return _FakeEnd(), _FakeEnd()


@pytest.mark.integration
def test_gpu_arms_get_distinct_gpus_and_a_dead_job_is_a_failed_return(monkeypatch):
    monkeypatch.setattr(local_launcher.multiprocessing, "get_context", lambda _: _FakeContext)
    _FakeProcess.started = []
    launcher = LocalLauncher(gpus=["0", "1", "2", "3"], poll_s=0)
    launcher.hydra_context, launcher.task_function = None, None
    config = OmegaConf.create({"backend": {"accelerator": "gpu", "devices": 2}})
    jobs = [_Job(i, [f"arm=a{i}"], config, gpus_wanted=2) for i in range(3)]
    results = _Schedule(
        jobs, parallel=2, pool=["0", "1", "2", "3"], threads=4, launcher=launcher
    ).run()
    devices = [env["CUDA_VISIBLE_DEVICES"] for env in _FakeProcess.started]
    assert devices[:2] == ["0,1", "2,3"] and devices[2] in ("0,1", "2,3")
    assert all("OMP_NUM_THREADS" not in env for env in _FakeProcess.started)
    assert [
        json.loads(env["EVSYS_PLACEMENT"])["cuda_visible_devices"] for env in _FakeProcess.started
    ] == devices
    assert all(
        result.status.name == "FAILED" for result in results
    )  # no result: failed, not raised


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert visible_gpus() == ["4", "6"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


@pytest.mark.parametrize(("pool", "wanted", "expected"), [(["0", "1", "2", "3"], 2, 2), ([], 0, 1)])
def test_default_parallelism(monkeypatch, pool, wanted, expected):
    monkeypatch.setattr(local_launcher.os, "cpu_count", lambda: 2)
    config = OmegaConf.create({})
    jobs = [_Job(i, [], config, gpus_wanted=wanted) for i in range(4)]
    assert LocalLauncher()._parallel(jobs, pool) == expected
