"""The price of protecting ties, for any test (benchmarks/tie_frontier.py, docs/statistics.md
"Ties and the floor under the seed term"): a linear program over all tests that keep their level
at every ratio of seed variance to item noise. It reproduces the t's exact 5% when nothing is
protected; with the floor's z as the protection the level at theta = 0 cannot pass 1.4% (1 df)
or 2.4% (2 df), and evsys's own rule stays under that bound."""

from __future__ import annotations

import pytest
from scipy import stats

from evsys.conclusion.known_noise import ALPHA, _rejection_rate, floor_ratio
from tests.conftest import load_benchmark

frontier = load_benchmark("tie_frontier")

Z = float(stats.norm.ppf(1 - ALPHA / 2))
BINS = 40  # agrees with 200 bins to 4 digits at these df


def test_with_nothing_protected_the_best_test_has_the_full_level():
    assert frontier.largest_level_at_zero(1, 0.0, BINS) == pytest.approx(ALPHA, abs=1e-4)


@pytest.mark.parametrize(("df", "bound"), [(1, 0.0142), (2, 0.0238)])
def test_protecting_ties_bounds_the_level_where_seeds_add_nothing(df, bound):
    largest = frontier.largest_level_at_zero(df, Z, BINS)
    assert largest == pytest.approx(bound, abs=3e-4)
    evsys_rule = _rejection_rate(df, floor_ratio(df), 0.0, ALPHA)  # one of the tests bounded
    assert evsys_rule <= largest + 1e-4
