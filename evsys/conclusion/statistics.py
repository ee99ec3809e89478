"""Descriptive statistics of a sweep: one summary per run group (and per cell of continual
score matrices), and the probability that one group's seed beats another's.

Pure functions over plain numbers; no files, no rounding. The conclusion builds on them; the
verdict's intervals and tests are evsys/conclusion/inference.py's.

Conventions:
- `std` uses ddof=1 (the sample standard deviation); with one seed there is none (None).
- 95% intervals use Student's t. A group's interval needs n >= 2.
- Probability of improvement is taken over every cross pair of seeds (a from the first
  group, b from the second): the fraction where a beats b, ties counting 1/2 ("beats" as the
  metric's mode orients it). It is defined for any n >= 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

from evsys.conclusion.inference import orientation

CONFIDENCE = 0.95


@dataclass(frozen=True)
class GroupSummary:
    n: int
    mean: float
    std: float | None  # ddof=1; None when n < 2
    min: float
    max: float
    ci95: tuple[float, float] | None  # Student t interval of the mean; None when n < 2
    values: dict[int, float]  # seed -> value


def summarize(values: Mapping[int, float]) -> GroupSummary:
    """Summary of one run group from its per-seed values."""
    if not values:
        raise ValueError("cannot summarize a group with no values")
    xs = [float(v) for v in values.values()]
    n = len(xs)
    mean = math.fsum(xs) / n
    std = _sample_std(xs, mean) if n >= 2 else None
    ci95 = None
    if std is not None:
        half = _t_quantile(n - 1) * std / math.sqrt(n)
        ci95 = (mean - half, mean + half)
    ordered = {int(seed): float(values[seed]) for seed in sorted(values)}
    return GroupSummary(n, mean, std, min(xs), max(xs), ci95, ordered)


def summarize_matrices(
    matrices: Sequence[Sequence[Sequence[float]]],
) -> tuple[list[list[float]], list[list[float | None]]]:
    """Cell-wise mean and std (ddof=1; None when n < 2) of equally shaped matrices, e.g. a
    continual chain's score matrix from each seed."""
    if not matrices:
        raise ValueError("cannot summarize no matrices")
    shape = [len(row) for row in matrices[0]]
    if any([len(row) for row in matrix] != shape for matrix in matrices):
        raise ValueError("matrices of different shapes cannot be summarized cell by cell")
    means, stds = [], []
    for r, width in enumerate(shape):
        cells = [summarize(dict(enumerate(m[r][c] for m in matrices))) for c in range(width)]
        means.append([cell.mean for cell in cells])
        stds.append([cell.std for cell in cells])
    return means, stds


def probability_of_improvement(
    first: Sequence[float], second: Sequence[float], mode: str = "max"
) -> float:
    """Fraction of (first, second) seed pairs where first is better; ties count 1/2."""
    sign = orientation(mode)
    score = 0.0
    for a in first:
        for b in second:
            d = sign * (a - b)
            score += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return score / (len(first) * len(second))


def _sample_std(xs: Sequence[float], mean: float) -> float:
    if min(xs) == max(xs):  # exactly 0, not the rounding noise of fsum(xs) / n
        return 0.0
    return math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def _t_quantile(df: float) -> float:
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
