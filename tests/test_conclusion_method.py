"""conclusion.md says what was done: the test and alpha, what p(> m) is, which numbers are
adjusted, the p-value the verdict rests on, methods in words, and how uncertain the minimum
detectable effect is (issue 27, item 3). Fabricated sweep dirs through the real conclusion."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from evsys.conclusion.inference import ONE_ARM, PAIRED, POOLED, UNPAIRED, WELCH, WILSON
from evsys.conclusion.text import METHOD_WORDS
from evsys.conclusion.write import write_conclusion
from tests.test_conclusion_items import write_item_sweep

METRIC = {"name": "eval/addition/exact_match", "mode": "max", "min_effect": 0.0}


def conclude(root: Path, arms: dict[str, np.ndarray], **experiment) -> tuple[object, str]:
    sweep = write_item_sweep(root, arms, **experiment)
    conclusion = write_conclusion(sweep)
    return conclusion, (sweep / "conclusion.md").read_text()


def shares(*ps: float, n_seeds: int = 3, n_items: int = 128, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((n_seeds, n_items)) < p).astype(float) for p in ps]


def test_the_tie_reproduction_reads_inconclusive_with_a_real_interval(tmp_path):
    """Issue 27's reproduction through `conclude`: 6 different items right per seed against 3,
    2 seeds, 256 items. It read "supported, 95% CI [0.01172, 0.01172], p=0" and "could detect
    0 or more"."""
    a, b = np.zeros((2, 256)), np.zeros((2, 256))
    a[0, 0:6], a[1, 6:12], b[0, 20:23], b[1, 23:26] = 1.0, 1.0, 1.0, 1.0
    c, md = conclude(tmp_path, {"a": a, "b": b})
    assert c.verdict == "inconclusive"
    (comparison,) = c.comparisons
    lo, hi = comparison.ci95
    assert lo < 0 < hi
    assert "could detect 0" not in md and "[0.01172, 0.01172]" not in md
    assert "The verdict rests on p(> 0) = 0.16 of a vs b (raw: the only comparison)." in md


def test_the_method_section_names_test_alpha_and_adjustment(tmp_path):
    arms = dict(zip(("base", "x", "y"), shares(0.5, 0.55, 0.75), strict=True))
    metric = {**METRIC, "min_effect": 0.02}
    c, md = conclude(tmp_path, arms, baseline="base", success_metric=metric)
    method = md.split("## Method", 1)[1]
    assert "generalized pivotal test" in method and "alpha = 0.05" in method
    assert "with m = 0.02 (the minimum effect), are doubled one-sided p-values" in method
    assert "95% CIs, p and p(> m) are unadjusted" in method
    assert "Holm columns are adjusted over the 2 comparisons" in method
    best = c.comparisons[0]
    assert c.verdict_p == best.p_above_holm
    assert (
        f"The verdict rests on p(> 0.02) = {best.p_above_holm:.2g} of y vs base "
        "(Holm-adjusted over the 2 arms compared with the baseline)." in method
    )


def test_best_beats_all_shows_the_raw_p_it_decides_on(tmp_path):
    """A claim that the best beats all decides on the largest raw p(> m): the table shows
    that column and the method section names the value."""
    arms = dict(zip(("a", "b", "c"), shares(0.4, 0.45, 0.8, seed=1), strict=True))
    c, md = conclude(tmp_path, arms, success_metric={**METRIC, "pool_seeds": False})
    weakest = max(c.comparisons, key=lambda x: x.p_above)
    assert c.verdict == "supported" and c.verdict_p == weakest.p_above
    header = next(line for line in md.splitlines() if line.startswith("| comparison |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert "p(> m)" in columns and "p(> m), Holm" in columns
    row = next(line for line in md.splitlines() if line.startswith(f"| {weakest.name} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    shown = cells[columns.index("p(> m)")]
    assert shown == f"{weakest.p_above:.2g}"
    assert f"The verdict rests on p(> 0) = {shown} of {weakest.name} (raw, the largest of" in md


def test_methods_and_the_missing_baseline_read_as_words(tmp_path):
    arms = dict(zip(("a", "b"), shares(0.5, 0.6), strict=True))
    _, md = conclude(tmp_path, arms)
    assert "- Baseline: (none: the best arm vs every other arm)" in md
    assert "runner-up" not in md
    assert "paired by seed and by item" in md
    assert not re.search(r"\b(paired|unpaired)_\w+|welch_seed_means|seeds_items", md)
    # every method code the statistics return has its words
    assert set(METHOD_WORDS) == {PAIRED, POOLED, UNPAIRED, WELCH, ONE_ARM, WILSON}


def test_the_mde_states_its_uncertainty(tmp_path):
    arms = dict(zip(("a", "b"), shares(0.5, 0.45, seed=2), strict=True))
    c, md = conclude(tmp_path, arms, success_metric={**METRIC, "min_effect": 0.05})
    (row,) = c.power
    assert row.mde_low < row.mde < row.mde_high
    line = next(line for line in md.splitlines() if line.startswith("- power: a vs b"))
    assert f"detects about {row.mde:.4g} at 80% power with 3 seeds" in line
    assert f"95% range {row.mde_low:.4g} to {row.mde_high:.4g}" in line


def test_an_exact_difference_never_reads_detects_zero(tmp_path):
    """Every item right on every seed against none: no spread at all, but 32 items of a 0/1
    share still leave Agresti & Min's 1 / (32 + 2) of sd, so the detectable effect is the
    normal one on it, never "could detect 0 or more"."""
    c, md = conclude(tmp_path, {"a": np.ones((2, 32)), "b": np.zeros((2, 32))})
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert c.verdict == "supported" and c.power[0].mde == pytest.approx(z / 34)
    assert "could detect 0" not in md and "detects about 0 " not in md


def test_seed_level_metrics_name_welch(tmp_path):
    """No per-item scores (a loss, here the records only): the page names Welch's t-test."""
    from tests.test_conclusion import write_sweep

    sweep = write_sweep(tmp_path, {"low": [0.5, 0.52, 0.51], "high": [0.9, 0.92, 0.91]})
    write_conclusion(sweep)
    method = (sweep / "conclusion.md").read_text().split("## Method", 1)[1]
    assert "- Test: Welch's t-test on seed means" in method and "pivotal" not in method
