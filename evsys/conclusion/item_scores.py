"""A run's per-item scores of the success metric, read and checked row by row.

A scores file (`<run dir>/scores/<label>.jsonl`, one JSON object per line: `item` plus each
metric) either holds the success metric on every row, as a finite number, once per item id,
averaging to the value the record holds, or it is malformed: then the run is reported as
failed with the file, row and item (evsys/conclusion/runs.py), never quietly analysed another
way. A file that does not exist, or whose rows hold no value of the metric at all (a harness
metric that is not a mean over documents), leaves the run with seed-level values only.

No heavy imports: plain json and math.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from evsys.errors import DataError
from evsys.jsonl import numbered_rows
from evsys.metric_kinds import benchmark_metric
from evsys.records import item_scores_path

RECORD_TOLERANCE = 1e-5  # the record's value is rounded to 6 decimals


def read_metric_items(run_dir: Path, metric: str, recorded: float) -> dict[str, float] | None:
    """{item: score} of `metric` in the run's scores file; None when the run has none (no
    file, or no row holds the metric). Raises DataError naming the file, row and item when
    the file is malformed or does not average to the `recorded` value."""
    where = benchmark_metric(metric)  # (label, the metric as each row names it)
    path = item_scores_path(run_dir, where[0]) if where else None
    if path is None or not path.is_file():
        return None
    rows = numbered_rows(path)
    if not any(where[1] in row for _, row in rows):
        return None
    scores: dict[str, float] = {}
    first_row: dict[str, int] = {}
    for number, row in rows:
        item = row.get("item")
        at = f"{path}, line {number} (item {item!r})"
        if item is None:
            raise DataError(f"{at}: no 'item' id")
        if str(item) in scores:
            raise DataError(f"{at}: item id also on line {first_row[str(item)]}")
        scores[str(item)] = _score(row, where[1], at)
        first_row[str(item)] = number
    mean = math.fsum(scores.values()) / len(scores)
    if not math.isclose(mean, recorded, abs_tol=RECORD_TOLERANCE):
        raise DataError(
            f"{path}: the {len(scores)} items average {mean:.6g}, but the run's record holds "
            f"{metric} = {recorded:.6g} (the file is not this run's)"
        )
    return scores


def _score(row: dict, name: str, at: str) -> float:
    if name not in row:
        raise DataError(f"{at}: no {name!r} score (other rows have one)")
    value = row[name]
    # json reads NaN and Infinity as floats; a bool is not a score
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise DataError(f"{at}: {name!r} is {json.dumps(value)}, not a finite number")
    return float(value)
