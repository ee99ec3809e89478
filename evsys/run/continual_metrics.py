"""Continual-learning metrics of a score matrix: pure functions, no files, no models.

R[row][benchmark] holds a metric after each row ("start", then one row per stage). The
metrics are GEM's (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018): average final score,
backward transfer (BWT), forward transfer (FWT), forgetting, and the worst single drop.
"""

from __future__ import annotations

METRICS = ("exact_match", "loss")  # the two matrices; exact match is the headline one
HIGHER_IS_BETTER = {"exact_match": True, "loss": False}


def score_matrix(rows: list[dict], benchmarks: list[str], metric: str) -> list[list[float]]:
    """R[row][benchmark] of one metric; rows: start, then one per stage."""
    return [[row[f"eval/{b}/{metric}"] for b in benchmarks] for row in rows]


def chain_metrics(
    matrix: list[list[float]], stage_columns: list[int], higher_is_better: bool = True
) -> dict:
    """Continual metrics of a (1 + T) x benchmarks matrix (GEM; Chaudhry et al. 2018).

    stage_columns[k-1] is the column of stage k's dataset. Differences are oriented so that
    positive BWT/FWT is good and positive forgetting/max_drop is bad, for loss as well.
    """
    sign = 1.0 if higher_is_better else -1.0
    score = [[sign * value for value in row] for row in matrix]  # higher is better from here
    stages = len(stage_columns)
    learned = list(dict.fromkeys(stage_columns))
    return {
        "avg_final": _mean([matrix[stages][c] for c in learned]),
        "bwt": _mean([score[stages][c] - score[k][c] for k, c in _stages(stage_columns)[:-1]]),
        "fwt": _mean([score[k - 1][c] - score[0][c] for k, c in _stages(stage_columns)[1:]]),
        "forgetting": _forgetting(score, stage_columns),
        **_max_drop(score),
    }


def _stages(stage_columns: list[int]) -> list[tuple[int, int]]:
    """(row of stage k's result, column of its dataset) for k = 1..T."""
    return list(enumerate(stage_columns, start=1))


def _forgetting(score: list[list[float]], stage_columns: list[int]) -> dict[int, float]:
    """Per column not trained in the last stage: best score since it was first learned, minus
    the final score (Chaudhry et al.'s f_j, over rows from its first training to T-1)."""
    last = len(stage_columns)
    first_learned: dict[int, int] = {}
    for k, column in _stages(stage_columns):
        first_learned.setdefault(column, k)
    return {
        column: max(score[row][column] for row in range(first, last)) - score[last][column]
        for column, first in first_learned.items()
        if column != stage_columns[-1]
    }


def _max_drop(score: list[list[float]]) -> dict:
    """The worst fall of any benchmark caused by one stage (row k-1 to row k); 0 if none fell."""
    drop, where = 0.0, None
    for k in range(1, len(score)):
        for column, (before, after) in enumerate(zip(score[k - 1], score[k], strict=True)):
            if before - after > drop:
                drop, where = before - after, (k, column)
    return {"max_drop": drop, "max_drop_at": where}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def flat_metrics(summary: dict) -> dict[str, float]:
    """record.metrics keys: continual/<metric> (exact match), continual/loss/<metric>."""
    flat = {}
    for metric, prefix in (("exact_match", "continual/"), ("loss", "continual/loss/")):
        values = summary["metrics"][metric]
        for name in ("avg_final", "bwt", "fwt", "max_drop"):
            if values[name] is not None:  # BWT/FWT need two stages
                flat[prefix + name] = round(values[name], 6)
        for benchmark, value in values["forgetting"].items():
            flat[f"{prefix}forgetting/{benchmark}"] = round(value, 6)
    return flat
