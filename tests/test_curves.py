"""Seed-averaged learning curves: the mean ± 95% t band over seeds at each step, the steps all
seeds have, and a run without curves named in conclusion.md instead of ending the conclusion.
(A real sweep's curves: tests/test_tensorboard.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evsys.conclusion.curves import CURVES_PLOT, average_curves, read_scalars
from evsys.conclusion.write import write_conclusion
from tests.test_conclusion import METRIC, write_sweep


def test_the_band_is_the_t_interval_of_the_seeds_at_each_step():
    seeds = {0: {0: 3.0, 10: 2.0, 20: 1.0}, 1: {0: 3.5, 10: 2.5, 20: 1.1}, 2: {0: 2.9, 10: 2.1}}
    curve, longer = average_curves(seeds)
    assert curve.steps == [0, 10] and curve.n == 3
    assert longer == [0, 1]  # seed 2 stopped early: their step 20 is left out
    for index, step in enumerate(curve.steps):
        values = [seeds[seed][step] for seed in seeds]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert curve.mean[index] == pytest.approx(np.mean(values))
        assert (curve.lower[index], curve.upper[index]) == pytest.approx((low, high))


def test_one_seed_is_its_own_mean_without_a_band():
    curve, longer = average_curves({4: {1: 0.5, 3: 0.25}})
    assert (curve.steps, curve.mean, curve.lower, curve.upper) == ([1, 3], [0.5, 0.25], None, None)
    assert longer == []


def test_seeds_without_a_common_step_give_an_empty_curve():
    curve, longer = average_curves({0: {0: 1.0}, 1: {5: 2.0}})
    assert curve.steps == [] and curve.mean == [] and longer == [0, 1]


def _log_curves(sweep: Path, arm: str, seed: int, losses: list[float] | None) -> None:
    """Point the run's record at its TensorBoard run and log `losses` there (None: no file)."""
    from torch.utils.tensorboard import SummaryWriter

    record_file = sweep / f"{arm}_seed{seed}" / "result.json"
    record = json.loads(record_file.read_text())
    record["artifacts"]["tensorboard"] = f"../tensorboard/{arm}/seed{seed}"
    record_file.write_text(json.dumps(record))
    if losses is None:
        return
    with SummaryWriter(str(sweep / "tensorboard" / arm / f"seed{seed}")) as writer:
        for step, loss in enumerate(losses):
            writer.add_scalar("train/loss", loss, step)
            writer.add_scalar("train/lr", 0.1, step)  # not a curve the conclusion averages


def test_a_run_without_readable_event_files_is_a_note_and_the_others_are_averaged(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.8], "b": [0.5, 0.6], "c": [0.1, 0.2]})
    _log_curves(sweep, "c", 0, [1.0])
    _log_curves(sweep, "c", 1, None)
    damaged = sweep / "tensorboard" / "c" / "seed1" / "events.out.tfevents.1.host"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"\x00garbage" * 40)
    _log_curves(sweep, "a", 0, [2.0, 1.0, 0.5])
    _log_curves(sweep, "a", 1, [3.0, 2.0])  # stopped early
    _log_curves(sweep, "b", 0, [2.0, 2.0])
    _log_curves(sweep, "b", 1, None)  # its record names a run that has no event file
    write_conclusion(sweep)
    markdown = (sweep / "conclusion.md").read_text()
    assert f"Per arm: [{CURVES_PLOT}]({CURVES_PLOT})" in markdown
    assert "- b seed 1: curves left out (no TensorBoard event file in " in markdown
    assert "- c seed 1: curves left out (no scalar in the TensorBoard event files in " in markdown
    note = "- a train/loss: the seeds logged different steps (seed 0 to step 2, seed 1 to step 1)"
    assert note in markdown
    assert (sweep / CURVES_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mean = read_scalars(sweep / "tensorboard" / "a" / "mean")
    assert mean == {"train/loss": {0: 2.5, 1: 1.5}}
    assert read_scalars(sweep / "tensorboard" / "b" / "mean") == {"train/loss": {0: 2.0, 1: 2.0}}
    assert not (sweep / "tensorboard" / "b" / "lower").exists()  # one seed: no band
    lower = EventAccumulator(str(sweep / "tensorboard" / "a" / "lower"))
    lower.Reload()
    assert [round(e.value, 4) for e in lower.Scalars("train/loss")] == [
        round(2.5 - stats.t.ppf(0.975, 1) * 0.5, 4),
        round(1.5 - stats.t.ppf(0.975, 1) * 0.5, 4),
    ]
    write_conclusion(sweep)  # rebuilt: the arm runs are replaced, not appended to
    assert len(list((sweep / "tensorboard" / "a" / "mean").glob("events.out.tfevents.*"))) == 1


def test_runs_that_logged_no_curves_leave_conclusion_md_as_it_was(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.8], "b": [0.5, 0.6]})
    write_conclusion(sweep)
    assert "Learning curves" not in (sweep / "conclusion.md").read_text()
    assert not (sweep / CURVES_PLOT).exists()


def test_a_record_pointing_its_curves_outside_the_sweep_dir_is_a_note_not_a_read(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.8]})
    _log_curves(sweep, "a", 0, [2.0, 1.0])
    record_file = sweep / "a_seed1" / "result.json"
    record = json.loads(record_file.read_text())
    record["artifacts"]["tensorboard"] = "../../elsewhere"  # tmp_path/elsewhere, holding a run
    record_file.write_text(json.dumps(record))
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "elsewhere")) as writer:
        writer.add_scalar("train/loss", 100.0, 0)
    write_conclusion(sweep)
    markdown = (sweep / "conclusion.md").read_text()
    assert "- a seed 1: curves left out (a_seed1/result.json artifacts.tensorboard: " in markdown
    assert "outside the sweep dir" in markdown
    assert read_scalars(sweep / "tensorboard" / "a" / "mean") == {"train/loss": {0: 2.0, 1: 1.0}}


def test_the_success_metric_is_a_curve_when_scored_during_training(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    sweep = write_sweep(tmp_path, {"during": [0.9, 0.8], "at_end": [0.5, 0.6]})
    for arm, steps in (("during", [2, 4]), ("at_end", [4])):
        for seed in (0, 1):
            _log_curves(sweep, arm, seed, [2.0, 1.0])
            with SummaryWriter(str(sweep / "tensorboard" / arm / f"seed{seed}")) as writer:
                for step in steps:
                    writer.add_scalar(METRIC, 0.25 * step + 0.1 * seed, step)
    write_conclusion(sweep)
    during = read_scalars(sweep / "tensorboard" / "during" / "mean")
    assert during[METRIC] == pytest.approx({2: 0.55, 4: 1.05})
    assert METRIC not in read_scalars(sweep / "tensorboard" / "at_end" / "mean")  # a final score
