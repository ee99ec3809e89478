"""The calibration grid's targets (issue 27, items 4 and 6) on a few of its cells, with the grid's
own simulator and evsys's own decide (benchmarks/statistics_grid.py; docs/statistics.md has the
whole grid at 1,000 sims per cell). Fewer sims here, so every target carries the simulation's
error at that count: a one-sided 99% margin (z = 2.33) of the binomial rate, or of the paired
difference of power (the methods see the same sweeps)."""

from __future__ import annotations

import math

import pytest

from tests.conftest import load_benchmark

grid = load_benchmark("statistics_grid")

Z = 2.33  # one-sided 99%: a target is missed only when the cell is clearly beyond it


def _margin(rate: float, n: int) -> float:
    return Z * math.sqrt(rate * (1 - rate) / n)


def assert_targets(r: dict, targets: tuple[str, ...] = ("aa", "power", "coverage", "arm")):
    """A/A <= 5%, power >= max(Welch, paired t) - 0.03, coverage in [0.94, 0.97], the arm's
    interval >= 0.94: each up to the simulation error of r's sim count."""
    sims, cell, p = r["sims"], r["cell"], r["power"]
    if "aa" in targets:
        assert r["aa"] <= 0.05 + _margin(0.05, sims), (cell, r["aa"])
    if "power" in targets:
        rival = max(p["welch"], p["paired t"])
        assert p["evsys"] >= rival - 0.03 - Z * r["power_gap_se"], (cell, p)
    if "coverage" in targets:
        lo, hi = 0.94 - _margin(0.95, 2 * sims), 0.97 + _margin(0.95, 2 * sims)
        assert lo <= r["coverage"] <= hi, (cell, r["coverage"])
    if "arm" in targets:
        assert r["arm_coverage"] >= 0.94 - _margin(0.95, sims), (cell, r["arm_coverage"])


def test_unlinked_seeds_keep_welchs_power_and_their_level():
    """Item 4's case: arms whose same-numbered seeds share nothing (another architecture or
    data) are compared as independent seeds, so they keep the seed term's df: power within
    0.03 of Welch's on seed means (paired by seed it was 0.16 vs 0.25 in the issue), A/A at
    most 5%, 95% intervals that cover."""
    assert_targets(
        grid.run_cell(grid.Cell("seeds dominate (unlinked)", "continuous", 20, 2, 3), 120)
    )


def test_linked_seeds_are_paired_and_beat_welch():
    """Same-numbered seeds that share initialisation and data order are paired by seed, which
    pays when the seeds dominate: well above Welch, level and coverage kept."""
    r = grid.run_cell(grid.Cell("seeds dominate", "continuous", 20, 2, 3), sims=120)
    assert_targets(r)
    assert r["power"]["evsys"] > r["power"]["welch"] + 0.03


def test_a_rare_share_on_20_items_keeps_its_level_and_its_arm_interval_covers():
    """Item 6 in the grid: a 0/1 share of 3% on 20 items and 2 seeds (ties, zero seed
    variance): A/A at most 5% and the arm's Wilson interval covers."""
    r = grid.run_cell(grid.Cell("both", "0/1 rare", 20, 2, 2), sims=150)
    assert_targets(r, ("aa", "arm"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "cell",
    [
        grid.Cell("seeds dominate (unlinked)", "continuous", 20, 2, 5),
        grid.Cell("seeds dominate", "continuous", 50, 2, 3),
        grid.Cell("seeds dominate (unlinked)", "continuous", 100, 3, 3),  # the case
    ],
    ids=lambda c: f"{c.scenario}-{c.metric}-{c.n_items}items-{c.n_arms}arms-{c.n_seeds}seeds",
)
def test_grid_cells_meet_the_targets(cell):
    assert_targets(grid.run_cell(cell, sims=400))


@pytest.mark.slow
def test_a_near_certain_share_on_20_items_keeps_its_level_and_its_arm_interval_covers():
    r = grid.run_cell(grid.Cell("both", "0/1 near-certain", 20, 2, 3), sims=400)
    assert_targets(r, ("aa", "arm"))
