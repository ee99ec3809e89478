"""Statistics of a sweep: one summary per run group, and the Welch difference of two groups.

Pure functions over plain numbers; no files, no rounding. The conclusion builds on them.

Conventions:
- `std` uses ddof=1 (the sample standard deviation); with one seed there is none (None).
- 95% intervals use Student's t. A group's interval needs n >= 2.
- A difference is oriented so that positive means the first group is better: mean1 - mean2
  when the metric is maximised, mean2 - mean1 when it is minimised.
- The difference's interval and p-value are Welch's (unequal variances, Welch–Satterthwaite
  degrees of freedom); both need n >= 2 in each group. When both groups have zero variance
  the interval collapses to the point difference and p is 0 (a difference) or 1 (none),
  instead of the NaN a t statistic of x/0 would give.
- Probability of improvement is taken over every cross pair of seeds (a from the first
  group, b from the second): the fraction where a beats b, ties counting 1/2. It is defined
  for any n >= 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
MODES = ("max", "min")


@dataclass(frozen=True)
class GroupSummary:
    n: int
    mean: float
    std: float | None  # ddof=1; None when n < 2
    min: float
    max: float
    ci95: tuple[float, float] | None  # Student t interval of the mean; None when n < 2
    values: dict[int, float]  # seed -> value


@dataclass(frozen=True)
class Difference:
    diff: float  # oriented: positive means the first group is better
    ci95: tuple[float, float] | None  # Welch interval of diff; None when a group has n < 2
    p_value: float | None  # two-sided Welch t-test; None when a group has n < 2
    prob_improvement: float  # P(a seed of the first group beats a seed of the second)
    n_first: int
    n_second: int


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


def compare(first: Sequence[float], second: Sequence[float], mode: str = "max") -> Difference:
    """Welch difference `first - second`, oriented so positive means `first` is better."""
    sign = _orientation(mode)
    a, b = [float(x) for x in first], [float(x) for x in second]
    if not a or not b:
        raise ValueError("cannot compare groups with no values")
    diff = sign * (_mean(a) - _mean(b))
    prob = probability_of_improvement(a, b, mode)
    if len(a) < 2 or len(b) < 2:
        return Difference(diff, None, None, prob, len(a), len(b))
    ci95, p_value = _welch(a, b, diff)
    return Difference(diff, ci95, p_value, prob, len(a), len(b))


def probability_of_improvement(
    first: Sequence[float], second: Sequence[float], mode: str = "max"
) -> float:
    """Fraction of (first, second) seed pairs where first is better; ties count 1/2."""
    sign = _orientation(mode)
    score = 0.0
    for a in first:
        for b in second:
            d = sign * (a - b)
            score += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return score / (len(first) * len(second))


def _welch(
    a: Sequence[float], b: Sequence[float], diff: float
) -> tuple[tuple[float, float], float]:
    """Welch interval and p-value of an already oriented `diff` (the sign cancels out)."""
    va = _sample_std(a, _mean(a)) ** 2 / len(a)
    vb = _sample_std(b, _mean(b)) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:  # no spread at all: the difference is exact
        return (diff, diff), (0.0 if diff != 0 else 1.0)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = _t_quantile(df) * se
    p_value = float(2.0 * stats.t.sf(abs(diff) / se, df))
    return (diff - half, diff + half), p_value


def _orientation(mode: str) -> int:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return 1 if mode == "max" else -1


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def _sample_std(xs: Sequence[float], mean: float) -> float:
    if min(xs) == max(xs):  # exactly 0, not the rounding noise of fsum(xs) / n
        return 0.0
    return math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def _t_quantile(df: float) -> float:
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
