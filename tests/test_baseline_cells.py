"""A preset's baseline split by a sweeper axis (#23.7): the arm `lo` becomes `lo,num_layers=1`
and `lo,num_layers=2`, and every arm is compared with the baseline of its own matrix cell.
The plan is the real one (Hydra composition); the runs' records are fabricated, as if trained."""

from __future__ import annotations

import json
from pathlib import Path

import evsys
from evsys.conclusion.build import build_conclusion
from evsys.records import Plan
from tests.test_conclusion import _record
from tests.test_experiment import write_preset

ARMS = {"lo": {"algorithm.lr": 1e-4}, "hi": {"algorithm.lr": 3e-3}}
AXIS = ["model.num_layers=1,2"]


def _preset(tmp_path: Path, baseline: str = "lo") -> Path:
    preset = write_preset(tmp_path / "presets", "split", ARMS, n_repeats=2)
    preset.write_text(preset.read_text().replace("  arms:", f"  baseline: {baseline}\n  arms:"))
    return preset


def _sweep(tmp_path: Path, plan: Plan, values: dict[str, list[float]]) -> Path:
    """The plan's sweep dir with a completed record per job: values[arm label][seed index]."""
    sweep = tmp_path / "sweep"
    plan.save(sweep)
    for job in plan.planned:
        (sweep / job.dir).mkdir()
        value = values[job.arm][job.seed - plan.base_seed]
        record = _record(job.arm, job.seed, value)
        record["metrics"] = {plan.metric_name: value}
        record["identity"] = job.identity  # written by the planned config
        (sweep / job.dir / "result.json").write_text(json.dumps(record))
    return sweep


def test_the_plan_resolves_a_split_baseline_to_its_arm_in_each_cell(tmp_path):
    plan = evsys.plan(_preset(tmp_path), AXIS)
    assert sorted({job.arm for job in plan.planned}) == [
        "hi,num_layers=1",
        "hi,num_layers=2",
        "lo,num_layers=1",
        "lo,num_layers=2",
    ]
    assert plan.baseline == "lo"
    assert plan.baselines == {
        "lo,num_layers=1": "lo,num_layers=1",
        "hi,num_layers=1": "lo,num_layers=1",
        "lo,num_layers=2": "lo,num_layers=2",
        "hi,num_layers=2": "lo,num_layers=2",
    }


def test_a_baseline_no_axis_splits_stays_one_arm(tmp_path):
    assert evsys.plan(_preset(tmp_path)).baselines is None
    plan = evsys.plan(_preset(tmp_path / "b", baseline="lo,num_layers=1"), AXIS)
    assert plan.baselines is None and plan.baseline == "lo,num_layers=1"


def test_each_arm_is_compared_with_the_baseline_of_its_cell(tmp_path):
    plan = evsys.plan(_preset(tmp_path), AXIS)
    # hi beats lo by 0.2 in the one-layer cell; the two-layer cell is better for both arms,
    # so comparing across cells (hi,num_layers=1 vs lo,num_layers=2) would say the opposite
    sweep = _sweep(
        tmp_path,
        plan,
        {
            "lo,num_layers=1": [0.30, 0.31],
            "hi,num_layers=1": [0.50, 0.52],
            "lo,num_layers=2": [0.70, 0.71],
            "hi,num_layers=2": [0.72, 0.70],
        },
    )
    c = build_conclusion(sweep)
    assert "has no completed seed" not in c.reason
    pairs = {(x.first, x.second) for x in c.comparisons}
    assert pairs == {
        ("hi,num_layers=1", "lo,num_layers=1"),
        ("hi,num_layers=2", "lo,num_layers=2"),
    }
    assert c.verdict == "supported" and c.kind == "exploratory"
    assert "hi,num_layers=1" in c.reason and "baseline of its matrix cell" in c.reason
    assert c.claim == "the best arm beats the baseline of its matrix cell (exploratory)"


def test_a_cell_whose_baseline_did_not_complete_is_named(tmp_path):
    plan = evsys.plan(_preset(tmp_path), AXIS)
    sweep = _sweep(
        tmp_path,
        plan,
        {arm: [0.5, 0.5] for arm in {job.arm for job in plan.planned}},
    )
    for seed in range(2):
        (sweep / f"lo,num_layers=2_seed{seed}" / "result.json").unlink()
    c = build_conclusion(sweep)
    assert c.verdict == "inconclusive"
    assert c.reason == "inconclusive: the baseline lo,num_layers=2 has no completed seed to compare"


def test_a_page_files_baseline_split_by_an_added_axis_resolves_per_cell(tmp_path):
    """The documented 'add an axis' workflow: `evsys run runs.yaml model.num_layers=1,2`."""
    page = tmp_path / "runs.yaml"
    page.write_text(
        "name: split_page\nbaseline: lo\n"
        "runs:\n  - {name: lo, algorithm: {lr: 1e-4}}\n  - {name: hi, algorithm: {lr: 3e-3}}\n"
    )
    plan = evsys.plan(page, AXIS)
    assert plan.baselines == {
        "lo,num_layers=1": "lo,num_layers=1",
        "hi,num_layers=1": "lo,num_layers=1",
        "lo,num_layers=2": "lo,num_layers=2",
        "hi,num_layers=2": "lo,num_layers=2",
    }
