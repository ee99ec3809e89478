"""What protecting ties costs ANY test of a seed term at theta = 0 (issue 27, docs/statistics.md).

    python benchmarks/tie_frontier.py            # df 1-4, protection z and 1.41: about 3 min
    python benchmarks/tie_frontier.py --df 1,2 --protection 1.96 --theta 0.25,0.5,1,2
    python benchmarks/tie_frontier.py --df 1,2 --protection 1.96 --item-ratio 1,4

The seed term of a comparison: the mean difference d ~ N(0, a * F) and its estimate
S ~ a * F * chi2_k / k, where F is the per-item noise a seed mean holds at least (the floor,
known from hundreds of df) and a = 1 + theta >= 1 (theta: seed variance / floor). Units: F = 1.

A test protects ties at strength g0 when it never calls |d| < g0 significant, whatever S is
(g0 = z_0.975 = 1.96: never claim more than the floor's own z-test, the most a variance of at
least F allows). Among ALL such tests (randomized ones included, and critical values of any
shape in S) that keep their level <= alpha at every theta >= 0, this finds the largest level
at theta = 0: a linear program over the rejection probability of each (|d|, S) cell, level
constraints at 121 ratios theta from 0 to 3000, rejection non-decreasing in |d|. One minus it
bounds the coverage of the matching 95% interval from below at theta = 0, where a 0/1 share
on few items sits. (g0 = 0: the t, exact, 5%.)
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
from scipy import optimize, sparse, stats

ALPHA = 0.05
RATIOS = np.concatenate([[0.0], np.geomspace(0.003, 3000.0, 120)])  # theta


def cell_probabilities(
    df: int, a: float, d_edges: np.ndarray, s_edges: np.ndarray, r: float = 0.0
) -> np.ndarray:
    """P(|d| in bin i, S in bin j) under a = 1 + theta, flattened row-major (d, S); r: a known
    item term beside the seed term, in floors (d ~ N(0, a + r), S ~ a chi2_df / df)."""
    p_d = 2 * np.diff(stats.norm.cdf(d_edges / np.sqrt(a + r)))
    p_s = np.diff(stats.chi2.cdf(s_edges * df / a, df))
    return np.outer(p_d, p_s).ravel()


def largest_level_at_zero(
    df: int, g0: float, bins: int = 160, theta: float = 0.0, item_ratio: float = 0.0
) -> float:
    """The largest level at theta = 0 (or at `theta`) of a test that protects ties at g0 and
    keeps level <= ALPHA at every theta (bins: cells per axis; 120 and 200 agree to 4 digits).
    item_ratio: a known item term beside the seed term, in floors; the protection is then g0
    times the least standard deviation the difference can have, sqrt(1 + item_ratio)."""
    g0 *= math.sqrt(1.0 + item_ratio)
    if g0 > 0:  # the first |d| bin is [0, g0): never rejected
        d_edges = np.concatenate([[0.0, g0], g0 * np.geomspace(1.0, 400.0, bins)[1:], [np.inf]])
    else:
        d_edges = np.concatenate([[0.0], np.geomspace(1e-3, 400.0, bins), [np.inf]])
    s_edges = np.concatenate([[0.0], np.geomspace(1e-5, 1e6, bins), [np.inf]])
    n_d, n_s = len(d_edges) - 1, len(s_edges) - 1
    at_zero = cell_probabilities(df, 1.0 + theta, d_edges, s_edges, item_ratio)
    levels = np.array(
        [cell_probabilities(df, 1.0 + t, d_edges, s_edges, item_ratio) for t in RATIOS[1:]]
    )
    # rejection non-decreasing in |d| at each S: x[i, j] - x[i + 1, j] <= 0
    cells = sparse.eye(n_d * n_s, format="csr")
    monotone = cells[: (n_d - 1) * n_s] - cells[n_s:]
    a_ub = sparse.vstack([sparse.csr_matrix(levels), monotone, sparse.csr_matrix(at_zero)])
    b_ub = np.concatenate([np.full(len(levels), ALPHA), np.zeros(monotone.shape[0]), [ALPHA]])
    bounds = [(0, 0) if g0 > 0 and i == 0 else (0, 1) for i in range(n_d) for _ in range(n_s)]
    result = optimize.linprog(-at_zero, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if result.status != 0:
        raise RuntimeError(f"linear program failed: {result.message}")
    return float(-result.fun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--df", default="1,2,3,4", help="seed-term df (seeds - 1)")
    parser.add_argument("--protection", default="1.96,1.41", help="g0 values; 0 = the t")
    parser.add_argument("--theta", default="0", help="the ratios at which to maximise the level")
    parser.add_argument("--item-ratio", default="0", help="item term / floor values")
    parser.add_argument("--bins", type=int, default=160)
    args = parser.parse_args()
    print(
        "| seed term df | protection g0 | theta | item ratio | largest level | coverage at least |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    values = [args.df, args.protection, args.theta, args.item_ratio]
    for df, g0, theta, r in itertools.product(*(list(map(float, v.split(","))) for v in values)):
        level = largest_level_at_zero(int(df), g0, args.bins, theta, r)
        row = f"| {df:g} | {g0:.2f} | {theta:g} | {r:g} | {level:.4f} | {1 - level:.3f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
