"""The interval of a share scored 0/1 on few items: Wilson's score interval on the effective
number of trials, and its dual test.

Below FEW_ITEMS items the normal interval of a share (mean +- h) is too narrow near 0 and 1
and has zero width at 0/n (Bowyer, Aitchison & Ivanova 2025). Wilson's (1927) interval fixes
both for independent trials; seeds x items are not independent (an item right on one seed is
likely right on the next), so the number of trials is the effective one (Kish's design
effect, as Korn & Graubard 1998 do for survey proportions): n_eff = p(1 - p) (z / h)^2, the n
whose binomial normal interval has the half-width h of the seeds-and-items pivot
(evsys.conclusion.variance). The pivot's h already carries the few seeds' degrees of freedom
and the floor under the seed term, so the seed-to-seed variation stays in the interval.
docs/statistics.md ("Few items") shows the coverage simulation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from evsys.conclusion.variance import ALPHA, Bounds

FEW_ITEMS = 300  # fewer items than this: a 0/1 share gets the Wilson interval
SHARE_BOUNDS = (0.0, 1.0)  # evsys.metric_kinds.BOUNDS[SHARE]
Z = float(stats.norm.ppf(1 - ALPHA / 2))


def uses_wilson(values: np.ndarray, bounds: Bounds | None) -> bool:
    """Whether an arm's seeds x items scores are a 0/1 share on fewer than FEW_ITEMS items, or
    a share at 0 or 1 on every score on any number of items (no variance to read: the normal
    interval would have zero width, certainty from nothing)."""
    n_items = values.shape[1]
    if bounds != SHARE_BOUNDS or n_items < 2 or not binary(values):
        return False
    return n_items < FEW_ITEMS or float(values.mean()) in (0.0, 1.0)


def binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def least_difference_variance(n_items: int) -> float:
    """The variance a difference of two 0/1 shares on the same n_items has at least: Agresti
    & Min's (2005) half a pseudo-item in each discordant cell of the paired 2 x 2 table, which
    gives 1 / (n + 2)^2. Without it, two arms right on every item (a share near 1 on 20
    items) show no variance at all, and a zero-width interval claims a difference of exactly
    0; with it the interval is z / (n + 2) wide on each side (0.089 at 20 items). It counts
    only where the scores show no variance at all (one discordant score gives a floor of
    its own, evsys.conclusion.known_noise)."""
    return 1.0 / (n_items + 2) ** 2


def effective_trials(values: np.ndarray, half_width: float) -> float:
    """n_eff = p(1 - p) (z / h)^2, at most seeds x items (the trials as if independent). At
    0/n or n/n there is no variance to read n_eff from: the items count, not seeds x items
    (the seeds re-score the same items, and nothing shows whether they would differ)."""
    n_seeds, n_items = values.shape
    p = float(values.mean())
    if p in (0.0, 1.0):
        return float(n_items)
    if half_width <= 0:
        return float(n_seeds * n_items)
    return min(float(n_seeds * n_items), p * (1 - p) * (Z / half_width) ** 2)


def wilson_interval(p: float, n: float) -> Bounds:
    """Wilson's score interval of a share p observed on n (effective) trials; inside [0, 1]."""
    z2 = Z * Z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at 0/n or n/n the bound itself is in the interval exactly (rounding would leave 1e-16)
    lo = 0.0 if p <= 0.0 else max(0.0, center - half)
    return (lo, 1.0 if p >= 1.0 else min(1.0, center + half))


def wilson_tail(p: float, n: float, p0: float, side: int) -> float:
    """One-sided p-value of "the share lies above p0" (side +1) or "below p0" (side -1) by
    the score test the Wilson interval inverts: the interval of p on n trials excludes p0
    exactly when this tail is below alpha / 2."""
    if (side > 0 and p0 >= 1.0) or (side < 0 and p0 <= 0.0):
        return 1.0  # nothing lies beyond a bound
    if p0 <= 0.0 or p0 >= 1.0:  # the other bound: a share lies above 0 unless it is 0
        return 1.0 if p == p0 else 0.0
    z = side * (p - p0) / math.sqrt(p0 * (1 - p0) / n)
    return float(special.ndtr(-z))
