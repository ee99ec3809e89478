"""A malformed per-item scores file is an error naming the file, row and item: its run is
reported as failed, never analysed quietly with another test (issue 27, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evsys.conclusion.build import build_conclusion
from tests.test_conclusion import conclude_in_subprocess
from tests.test_conclusion_items import LABEL, write_item_sweep

ROW = 5  # the bad row: line 5 of the file, item "4"


def sweep_with_bad_row(root: Path, change) -> tuple[Path, Path]:
    """Two arms x 3 seeds x 64 items; row ROW of arm b seed 1's scores file is `change`d
    (a function of the row's object that returns the line to write)."""
    rng = np.random.default_rng(0)
    arms = {arm: (rng.random((3, 64)) < 0.5).astype(float) for arm in "ab"}
    sweep = write_item_sweep(root, arms)
    path = sweep / "b_seed1" / "scores" / f"{LABEL}.jsonl"
    lines = path.read_text().splitlines()
    lines[ROW - 1] = change(json.loads(lines[ROW - 1]))
    path.write_text("\n".join(lines) + "\n")
    return sweep, path


BAD_ROWS = {
    "nan": (lambda row: json.dumps({**row, "exact_match": float("nan")}), "is NaN"),
    "null": (lambda row: json.dumps({**row, "exact_match": None}), "is null"),
    "no metric": (lambda row: json.dumps({"item": row["item"]}), "no 'exact_match' score"),
    "duplicate id": (lambda row: json.dumps({**row, "item": "3"}), "also on line 4"),
    "not json": (lambda row: "{oops", "malformed JSON"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_a_bad_row_fails_its_run_naming_file_row_and_item(tmp_path, kind):
    change, why = BAD_ROWS[kind]
    sweep, path = sweep_with_bad_row(tmp_path, change)
    c = build_conclusion(sweep)
    (failed,) = c.failed
    assert (failed.arm, failed.seed) == ("b", 1)
    assert str(path) in failed.error and f"line {ROW}" in failed.error and why in failed.error
    if kind != "not json":
        item = "'3'" if kind == "duplicate id" else "'4'"
        assert f"item {item}" in failed.error
    # the other runs keep their per-item scores: no quiet fall back to seed means
    (comparison,) = c.comparisons
    assert comparison.method != "welch_seed_means" and comparison.n_items == 64


def test_a_file_that_is_not_the_runs_is_an_error(tmp_path):
    sweep, path = sweep_with_bad_row(
        tmp_path, lambda row: json.dumps({**row, "exact_match": 1.0 - row["exact_match"]})
    )
    (failed,) = build_conclusion(sweep).failed
    assert str(path) in failed.error and "average" in failed.error


def test_a_null_score_does_not_crash_conclude(tmp_path):
    sweep, path = sweep_with_bad_row(tmp_path, BAD_ROWS["null"][0])
    proc = conclude_in_subprocess(str(sweep))
    assert proc.returncode == 1, proc.stderr  # a failed run: incomplete, not a crash
    assert "Traceback" not in proc.stderr
    out = " ".join(proc.stdout.split())  # the console wraps long lines
    assert "FAILED b seed 1" in out and f"line {ROW} (item '4')" in out
    md = (sweep / "conclusion.md").read_text()
    assert "## Failed runs" in md and "is null" in md
