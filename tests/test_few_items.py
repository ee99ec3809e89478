"""A 0/1 share on few items (issue 27 item 6): Wilson's interval on the effective trials
covers at least 94% at 20, 50 and 100 items near 0, at 0.5 and near 1, with 2-3 seeds, where
the normal interval covered 83-92% at 20 items; it stays inside [0, 1] and has width at 0/n.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evsys.conclusion.few_items import FEW_ITEMS, wilson_interval, wilson_tail
from evsys.conclusion.inference import WILSON, ArmScores, arm_interval
from evsys.conclusion.threshold import threshold_result

EM = (0.0, 1.0)


def arm(values: np.ndarray) -> ArmScores:
    n_seeds, n_items = values.shape
    return ArmScores("a", tuple(range(n_seeds)), values, tuple(f"q{i}" for i in range(n_items)))


def draw(rng, share: float, n_items: int, n_seeds: int) -> np.ndarray:
    """0/1 scores whose expected mean over items and seeds is exactly `share`: an item's
    chance is a mix of its difficulty (Beta, concentration 2: most items nearly always right
    or nearly always wrong) and the seed's skill (Beta, concentration 20), 4:1."""
    difficulty = rng.beta(2 * share, 2 * (1 - share), n_items)
    skill = rng.beta(20 * share, 20 * (1 - share), n_seeds)
    chance = 0.8 * difficulty[None, :] + 0.2 * skill[:, None]
    return (rng.random((n_seeds, n_items)) < chance).astype(float)


def coverage(share: float, n_items: int, n_seeds: int, sims: int, bounds=EM) -> float:
    rng = np.random.default_rng(27)
    hits = 0
    for _ in range(sims):
        lo, hi = arm_interval(arm(draw(rng, share, n_items, n_seeds)), bounds).ci95
        hits += lo <= share <= hi
    return hits / sims


GRID = [(n, p, s) for n in (20, 50, 100) for p in (0.05, 0.5, 0.95) for s in (2, 3)]


@pytest.mark.parametrize("n_items,share,n_seeds", GRID)
def test_few_item_intervals_cover(n_items, share, n_seeds):
    """200 sims: 98-100% in every cell at 2,000; 0.94 less 2.5 binomial SEs (0.04) at 200."""
    sims = 200
    assert coverage(share, n_items, n_seeds, sims) >= 0.94 - 2.5 * math.sqrt(0.94 * 0.06 / sims)


@pytest.mark.parametrize("share", [0.05, 0.95])
def test_the_normal_interval_undercovers_at_twenty_items(share):
    """What the Wilson interval fixes: the same draws without the share's bounds (so the
    normal pivot interval) cover 83-84% with 2 seeds (91-92% with 3)."""
    assert coverage(share, 20, 2, 200, bounds=None) < 0.90


@pytest.mark.slow
@pytest.mark.parametrize("n_items,share,n_seeds", GRID)
def test_few_item_intervals_cover_slow(n_items, share, n_seeds):
    """2,000 sims: within 0.94 less 2.5 SEs (0.013)."""
    sims = 2000
    assert coverage(share, n_items, n_seeds, sims) >= 0.94 - 2.5 * math.sqrt(0.94 * 0.06 / sims)


@pytest.mark.parametrize("n_seeds", [2, 3])
@pytest.mark.parametrize("successes", [0, 20])
def test_all_or_nothing_has_a_wilson_interval_inside_the_bounds(successes, n_seeds):
    """0/20 and 20/20 on every seed: no variance to read, so the 20 items are the trials
    (Wilson at n = 20: 0 to 0.161), not a zero-width interval."""
    values = np.full((n_seeds, 20), successes / 20)
    i = arm_interval(arm(values), EM)
    assert i.method == WILSON and i.effective_trials == 20
    lo, hi = i.ci95
    assert 0.0 <= lo < hi <= 1.0
    assert hi - lo == pytest.approx(wilson_interval(0.0, 20)[1]) == pytest.approx(0.1611, abs=1e-4)
    assert (lo == 0.0) if successes == 0 else (hi == 1.0)


def test_every_few_item_interval_stays_inside_the_bounds():
    rng = np.random.default_rng(0)
    for share in (0.02, 0.5, 0.98):
        for _ in range(50):
            i = arm_interval(arm(draw(rng, share, 20, 2)), EM)
            assert 0.0 <= i.ci95[0] <= i.mean <= i.ci95[1] <= 1.0 and i.ci95[0] < i.ci95[1]


def test_wilson_only_for_a_binary_share_on_few_items():
    rng = np.random.default_rng(1)
    binary = draw(rng, 0.5, 20, 3)
    assert arm_interval(arm(binary), EM).method == WILSON
    assert arm_interval(arm(binary), None).method != WILSON  # not a share
    assert arm_interval(arm(binary * 0.5 + 0.25), EM).method != WILSON  # not 0/1
    many = draw(rng, 0.5, FEW_ITEMS, 3)
    assert arm_interval(arm(many), EM).method != WILSON


@pytest.mark.parametrize("successes", [0, 1])
def test_all_or_nothing_on_many_items_is_not_certain(successes):
    """0/1000 on every seed: the items are the trials (Wilson: 0 to 0.0038), not a zero-width
    interval claiming the share is exactly 0."""
    i = arm_interval(arm(np.full((3, 1000), float(successes))), EM)
    assert i.method == WILSON and i.effective_trials == 1000
    assert i.ci95[1] - i.ci95[0] == pytest.approx(wilson_interval(0.0, 1000)[1], abs=1e-12)
    assert i.ci95[1] - i.ci95[0] == pytest.approx(0.00383, abs=1e-5)


def test_the_threshold_test_is_the_score_test_the_interval_inverts():
    """An arm's threshold verdict agrees with its Wilson interval: the p-value at an
    interval's bound is alpha (doubled one-sided), and 0/20 never clears 0."""
    i = arm_interval(arm(draw(np.random.default_rng(2), 0.3, 20, 3)), EM)
    lo, hi = i.ci95
    assert 2 * wilson_tail(i.mean, i.effective_trials, lo, +1) == pytest.approx(0.05)
    assert 2 * wilson_tail(i.mean, i.effective_trials, hi, -1) == pytest.approx(0.05)
    nothing = arm(np.zeros((3, 20)))
    (row,) = threshold_result([nothing], 0.0, "max", EM).arms
    assert row.status == "undecided"
    (row,) = threshold_result([nothing], 0.2, "max", EM).arms
    assert row.status == "misses" and row.p_miss < 0.05
