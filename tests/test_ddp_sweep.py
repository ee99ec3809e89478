"""A multi-process arm inside a local sweep: Lightning starts its other ranks from this
process's command line, which in a multirun job is the whole sweep. Each rank must run the
job (its overrides, its dir), and the next job must start its own ranks."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import FAST, arm_log_dir, run_cli

DDP = [*FAST, "backend=ddp"]


def losses(run_dir) -> list[float]:
    events = EventAccumulator(str(arm_log_dir(run_dir)))
    events.Reload()
    return [event.value for event in events.Scalars("train/loss")]


@pytest.mark.integration
def test_each_job_of_a_sweep_trains_on_its_own_ranks(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(["-m", *DDP, "seed=0,1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for seed in (0, 1):
        record = json.loads((sweep / f"default_seed{seed}" / "result.json").read_text())
        assert record["status"] == "completed", record.get("error")
        assert record["hparams"]["backend.devices"] == 2
    assert not (tmp_path / "outputs" / "runs").exists()  # no rank ran outside its job dir
    single = run_cli([*DDP, "seed=1", "hydra.run.dir=single"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    output = single.stdout + single.stderr
    for line in ("step 4/4", "packed 33 training rows"):  # rank 0 reports; rank 1 is quiet
        assert output.count(line) == 1, output[-2000:]
    curve = losses(sweep / "default_seed1")
    assert len(curve) == 4 and curve == pytest.approx(losses(tmp_path / "single"), rel=1e-6)
