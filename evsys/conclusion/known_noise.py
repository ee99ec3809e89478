"""When a seed term is taken to be the per-item noise it is known to carry at least.

A seed's mean score carries its items' noise: the residual mean square / n_items, known from
hundreds of df (the seed term's floor, evsys.conclusion.variance). The seed term's own estimate
S has only n - 1 df; under normal scores the t on S is exact whatever the seed component, but
0/1 scores on few items tie: S = 0 while the items alone imply a spread, and the t then claims
certainty from nothing. So when S falls below c_k * floor (c_k the 1 - pre_k quantile of
chi2_k / k: S is implausibly small for a term that holds the floor), the test takes the seed
term to BE its floor (known), and otherwise the t on S: a preliminary test of the seed
component (Bozivich, Bancroft & Hartley 1956), one-sided, at a level pre_k.

Pooling where S is small is anti-conservative when the seed component is real but S came out
small; pre_k is the smallest pretest level (on a 0.025 grid) whose test keeps level <= alpha for
every ratio theta of seed variance to floor (level_over_ratios integrates it, in the normal
model: mean ~ N(0, (1 + theta) F), S ~ (1 + theta) F chi2_k / k). The power is then within 0.016
of the t's at every theta, and ties get the interval the items' noise implies
(docs/statistics.md, "Ties and the floor under the seed term"; tests/test_known_noise.py
recomputes the table).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import integrate, stats

ALPHA = 0.05
# df of the seed term -> the pretest level pre_k (level_over_ratios <= alpha, 0.025 grid)
PRETEST_LEVEL = {1: 0.775, 2: 0.65, 3: 0.575, 4: 0.55, 5: 0.55, 6: 0.525}
PRETEST_LEVEL_MANY_DF = 0.525  # df > 6 (8 and 16 checked)
RATIOS = np.concatenate([[0.0], np.geomspace(0.02, 200.0, 60)])  # theta, where level peaks


def pretest_level(df: float) -> float:
    """pre_k for a seed term with df degrees of freedom (fractional df, e.g. Welch's, take the
    table's value at the df below: fewer df, the larger pre_k, the safer)."""
    k = max(1, math.floor(min(df, 1e6)))
    return PRETEST_LEVEL.get(k, PRETEST_LEVEL_MANY_DF)


@lru_cache(maxsize=256)  # asked on every tail and interval the pivot computes
def floor_ratio(df: float) -> float:
    """c_k: the seed term is taken as its floor when S < c_k * floor."""
    df = min(df, 1e6)  # Welch's df of two exact seed terms is infinite
    return float(stats.chi2.ppf(1.0 - pretest_level(df), df) / df)


def level_over_ratios(df: int, pre: float, alpha: float = ALPHA) -> float:
    """The largest two-sided rejection rate under no effect, over the ratios theta, of the
    test that uses the floor when S < c * floor and the t on S otherwise (units: floor = 1)."""
    c = float(stats.chi2.ppf(1.0 - pre, df) / df)
    return max(_rejection_rate(df, c, theta, alpha) for theta in RATIOS)


def _rejection_rate(df: int, c: float, theta: float, alpha: float) -> float:
    a, t_crit, z_crit = 1.0 + theta, stats.t.ppf(1 - alpha / 2, df), stats.norm.ppf(1 - alpha / 2)
    # S = a * w: below c the floor (1) is the variance, else S with the t's quantile
    pooled = stats.chi2.cdf(c * df / a, df) * 2 * stats.norm.sf(z_crit / math.sqrt(a))

    def t_part(w: float) -> float:
        return stats.chi2.pdf(w * df, df) * df * 2 * stats.norm.sf(t_crit * math.sqrt(w))

    top = float(stats.chi2.ppf(1 - 1e-12, df) / df)
    return pooled + integrate.quad(t_part, c / a, max(top, c / a), limit=200)[0]
