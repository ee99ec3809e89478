"""Results in Python: short reprs, HTML tables, DataFrames and `evsys.load` of a past sweep
(the sweeps here are written by hand; tests/test_experiment.py loads one `.run()` made)."""

from __future__ import annotations

import builtins
import json

import pytest

import evsys
from evsys import registry
from evsys.conclusion.write import write_conclusion
from evsys.records import ArmResult
from evsys.results import load_experiment_result
from tests.test_conclusion import METRIC, write_sweep

ARMS = {f"arm{i}": [0.5 + i / 100, 0.52 + i / 100, 0.49 + i / 100] for i in range(12)}


@pytest.fixture
def sweep(tmp_path):
    """12 arms x 3 seeds (one failed), concluded and registered under tmp_path/out."""
    sweep_dir = write_sweep(tmp_path, {**ARMS, "broken": [0.4, "failed"]})
    write_conclusion(sweep_dir)
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    registry.register(tmp_path / "out", {**plan, "sweep_dir": str(sweep_dir)})
    return sweep_dir


def test_reprs_are_a_few_lines(sweep):
    result = load_experiment_result(sweep)
    text = repr(result)
    assert len(text.splitlines()) <= 20 and max(map(len, text.splitlines())) <= 120, text
    assert "'demo'" in text and "37 completed, 1 failed" in text and "verdict:" in text
    assert "... and 5 more" in text  # 13 arms, 8 shown
    failed = next(arm for arm in result.arms if arm.status == "failed")
    assert len(repr(failed).splitlines()) <= 4
    assert "unknown dataset 'nope'" in repr(failed)
    record = result.arms[0]
    assert f"{METRIC}=" in repr(record) and len(repr(record).splitlines()) <= 4


def test_html_reprs_are_tables_with_free_text_escaped(sweep):
    result = load_experiment_result(sweep)
    result.hypothesis = "<script>alert(1)</script>"
    page = result._repr_html_()
    assert "<table>" in page and page.count("<tr>") == 1 + 13  # header + every arm
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<table>" in result.arms[0]._repr_html_()


def test_dataframes_have_a_row_per_run_and_per_arm(sweep):
    pytest.importorskip("pandas")
    record_file = sweep / "arm3_seed1" / "result.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "cost": {"device_hours": 0.25}}))
    result = load_experiment_result(sweep)
    runs = result.to_dataframe()
    assert len(runs) == 12 * 3 + 2 == len(result.arms)  # the failed run included
    assert list(runs.columns[:5]) == ["arm", "seed", "stage", "status", "algorithm.lr"]
    row = runs[(runs.arm == "arm3") & (runs.seed == 1)].iloc[0]
    assert row["algorithm.lr"] == "arm3" and row[METRIC] == pytest.approx(0.55)
    assert row["cost/device_hours"] == 0.25  # each record's cost (evsys/cost.py)
    groups = result.groups_dataframe()
    assert len(groups) == 13 and groups.iloc[0]["arm"] == "arm11"
    assert groups.iloc[0]["n_seeds"] == 3
    assert groups.iloc[0]["ci95_low"] < groups.iloc[0]["mean"] < groups.iloc[0]["ci95_high"]


def test_the_runs_dataframe_tells_a_confirmation_run_from_a_selection_run(tmp_path):
    pytest.importorskip("pandas")
    sweep = write_sweep(tmp_path, {"hi": [0.8, 0.82], "lo": [0.5, 0.52]})
    plan = json.loads((sweep / "experiment.json").read_text())
    for arm in ("hi", "lo"):  # the confirmation's run of each arm, as the arm writes it
        directory = sweep / f"confirmation_{arm}_seed2"
        directory.mkdir()
        plan["planned"].append(
            {"arm": arm, "seed": 2, "dir": directory.name, "stage": "confirmation"}
        )
        record = {"arm": arm, "seed": 2, "status": "completed", "metrics": {METRIC: 0.6},
                  "identity_config": {"seed": 2, "stage": "confirmation"}}  # fmt: skip
        (directory / "result.json").write_text(json.dumps(record))
    (sweep / "experiment.json").write_text(json.dumps(plan))
    runs = load_experiment_result(sweep).to_dataframe()
    stages = dict(zip(zip(runs.arm, runs.seed, strict=True), runs.stage, strict=True))
    assert stages[("hi", 0)] == stages[("lo", 1)] == "selection"
    assert stages[("hi", 2)] == stages[("lo", 2)] == "confirmation"


def test_without_pandas_the_dataframe_says_how_to_get_it(sweep, monkeypatch):
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    result = load_experiment_result(sweep)
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_dataframe()
    assert "demo" in repr(result)  # the rest works without it


def test_load_takes_a_dir_an_id_a_prefix_or_latest(sweep, tmp_path, monkeypatch):
    expected = load_experiment_result(sweep.resolve())
    assert evsys.load(sweep) == expected
    root = tmp_path / "out"
    assert evsys.load("demo-2026", outputs_root=root) == expected
    monkeypatch.setenv("EVSYS_OUTPUTS_ROOT", str(root))
    assert evsys.load("latest") == expected
    with pytest.raises(registry.ExperimentNotFound, match="is not a sweep dir"):
        evsys.load("nothing-like-it")


def test_a_record_without_metrics_has_a_short_repr():
    assert repr(ArmResult("a", 0, "running")) == "ArmResult 'a' seed 0: running"
