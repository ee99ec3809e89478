"""The typed Conclusion and conclusion.json: the file is its to_dict(), read back equal, with the
keys the file always had plus schema_version."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evsys.conclusion.model import SCHEMA_VERSION, Conclusion, PowerRow, RunProblem
from evsys.conclusion.write import write_conclusion
from evsys.results import load_experiment_result
from tests.test_conclusion import FAILED, METRIC, MISSING, write_sweep
from tests.test_conclusion_items import write_item_sweep

DECIDED_KEYS = {
    "experiment", "hypothesis", "success_metric", "baseline", "prediction", "groups", "ranking",
    "best_arm", "verdict", "reason", "kind", "claim", "comparisons", "surprises", "notes",
    "power", "failed", "missing", "counts", "other_metrics", "exports", "schema_version",
    "verdict_basis", "verdict_p", "seed_pairing",
}  # fmt: skip


def _read(sweep) -> dict:
    return json.loads((sweep / "conclusion.json").read_text())


def test_a_real_conclusion_round_trips_through_its_file(tmp_path):
    rng = np.random.default_rng(1)
    arms = {arm: (rng.random((3, 64)) < p).astype(float) for arm, p in (("a", 0.8), ("b", 0.4))}
    metric = {"name": METRIC, "mode": "max", "min_effect": 0.05}
    sweep = write_item_sweep(tmp_path, arms, success_metric=metric)
    for seed in range(3):
        (sweep / f"a_seed{seed}" / "model").mkdir()
    conclusion = write_conclusion(sweep)
    on_disk = _read(sweep)
    assert set(on_disk) == DECIDED_KEYS and on_disk["schema_version"] == SCHEMA_VERSION == 1
    assert Conclusion.from_dict(on_disk) == conclusion
    assert conclusion.to_dict() == on_disk
    assert Conclusion.load(sweep / "conclusion.json") == conclusion
    # every part is typed, down to the power rows planned for the minimum effect
    (row,) = conclusion.power
    assert isinstance(row, PowerRow) and row.target == 0.05 and "seeds_needed" in row.to_dict()
    assert conclusion.group("a").n_items == 64 and conclusion.exports[0].arm == "a"
    assert conclusion.comparisons[0].first == "a"


def test_an_undecided_conclusion_keeps_its_keys_out(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [FAILED, MISSING], "b": [FAILED]})
    conclusion = write_conclusion(sweep)
    on_disk = _read(sweep)
    undecided = {"comparisons", "surprises", "notes", "power", "verdict_basis", "verdict_p"}
    undecided |= {"seed_pairing"}  # only where something was compared
    assert set(on_disk) == DECIDED_KEYS - undecided
    assert conclusion.comparisons is None and Conclusion.from_dict(on_disk) == conclusion
    assert conclusion.missing == [RunProblem("a", 1, "a_seed1")]
    assert on_disk["missing"] == [{"arm": "a", "seed": 1, "dir": "a_seed1"}]  # no error key


def test_a_file_without_a_version_reads_and_a_newer_one_is_refused(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.91], "b": [0.5, 0.52]})
    on_disk = write_conclusion(sweep).to_dict()
    del on_disk["schema_version"]  # as written before the version was recorded
    assert Conclusion.from_dict(on_disk).best_arm == "a"
    with pytest.raises(ValueError, match="schema_version 2 is newer"):
        Conclusion.from_dict({**on_disk, "schema_version": 2})


def test_the_python_api_reads_the_typed_conclusion(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.91, MISSING], "b": [0.5, FAILED, 0.51]})
    result = load_experiment_result(sweep)
    assert result.conclusion is None and result.best_arm is None and result.failed == []
    write_conclusion(sweep)
    result = load_experiment_result(sweep)
    assert isinstance(result.conclusion, Conclusion)
    assert (result.best_arm, result.verdict) == ("a", result.conclusion.verdict)
    assert [(run.arm, run.seed) for run in result.failed] == [("b", 1), ("a", 2)]
