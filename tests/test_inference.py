"""The verdict statistics engine: by-hand cases, then calibration by simulation.

Calibration tests draw A/A sweeps (no arm truly better) from benchmarks/calibration.py's
simulator and check the "supported" rate against alpha within simulation error; the bigger
sweeps are marked slow."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats

from evsys.conclusion.arms import weighted_interaction_ms
from evsys.conclusion.decision import Prediction, best_versus_others, decide, versus_baseline
from evsys.conclusion.few_items import wilson_interval
from evsys.conclusion.inference import (
    PAIRED,
    POOLED,
    UNPAIRED,
    WELCH,
    ArmScores,
    VarianceComponents,
    arm_interval,
    compare,
    family,
    holm,
    mde,
    p_greater,
    p_less,
    seed_pool,
    seeds_needed,
)
from evsys.conclusion.sequential import (
    obrien_fleming_spent,
    sequential_boundaries,
    sequential_step,
)
from tests.conftest import load_benchmark

calibration = load_benchmark("calibration")

ITEMS = tuple(f"q{i}" for i in range(256))
EM = (0.0, 1.0)  # exact match bounds


def arm(name, values, seeds=None, items=None):
    values = np.asarray(values, dtype=float)
    seeds = tuple(range(values.shape[0])) if seeds is None else seeds
    items = tuple(f"q{i}" for i in range(values.shape[1])) if items is None else items
    return ArmScores(name, seeds, values, items)


def one_item_arms(n_seeds=3, n_items=256):
    hit = np.zeros((n_seeds, n_items))
    hit[:, 7] = 1.0  # item q7 right on every seed, nothing else
    return arm("a", hit), arm("b", np.zeros((n_seeds, n_items)))


def rate(hits, reps):
    return hits / reps, 2.5 * math.sqrt(0.05 * 0.95 / reps)


# ------------------------------------------------------------------------------- by hand
def test_one_item_every_seed_is_not_a_difference():
    # 1/256 vs 0/256 on every seed: zero seed variance, but the item sample is the whole story
    a, b = one_item_arms()
    c = compare(a, b, "max", EM)
    assert c.method == PAIRED and c.paired
    assert c.diff == pytest.approx(1 / 256)
    assert c.p_value == pytest.approx(2 * stats.norm.sf(1.0), abs=1e-6)  # z = 1
    assert c.ci95[0] < 0 < c.ci95[1]
    assert decide([a, b], bounds=EM).verdict == "inconclusive"
    assert decide([a, b], baseline="b", bounds=EM).verdict == "inconclusive"
    assert decide([a, b], prediction={"better": "a", "than": "b"}).verdict == "inconclusive"


def test_bounded_intervals_stay_inside_the_bounds():
    # 400 items: the normal interval, clipped (below FEW_ITEMS a 0/1 share gets Wilson's)
    a, b = one_item_arms(n_items=400)
    ia = arm_interval(a, EM)
    assert ia.ci95[0] == 0.0 and ia.clipped and ia.ci95[1] > ia.mean
    c = compare(b, a, "max", EM)
    assert -1.0 <= c.ci95[0] and c.ci95[1] <= 1.0
    ones = arm("one", np.ones((3, 400)))  # right on every item: Wilson's on the 400 items
    lo, hi = arm_interval(ones, EM).ci95
    assert hi == 1.0 and lo == pytest.approx(1 - wilson_interval(0.0, 400)[1], abs=1e-12)


def test_seed_level_pivot_is_student_t():
    values = {0: 0.50, 1: 0.55, 2: 0.61}
    i = arm_interval(ArmScores.seed_level("a", values), (0.0, 1.0))
    xs = list(values.values())
    exact = stats.t.interval(0.95, 2, loc=np.mean(xs), scale=stats.sem(xs))
    assert i.method == WELCH
    assert i.ci95 == pytest.approx(exact, rel=1e-9)


def test_paired_with_no_item_interaction_is_the_paired_t_test():
    # per-seed differences constant across items: only the seed term is left
    rng = np.random.default_rng(3)
    shift = rng.normal(0.1, 0.05, (4, 1))
    base = rng.random((4, 50))
    c = compare(arm("a", base + shift), arm("b", base))
    t = stats.ttest_1samp(shift.ravel(), 0.0)
    assert c.p_value == pytest.approx(t.pvalue, rel=2e-3)
    assert c.se == pytest.approx(stats.sem(shift.ravel()))


def test_seed_means_fall_back_to_welch():
    a = ArmScores.seed_level("a", {0: 1.0, 1: 2.0, 2: 3.0})
    b = ArmScores.seed_level("b", {0: 2.0, 1: 4.0, 2: 6.0, 3: 8.0})
    c = compare(a, b)
    w = stats.ttest_ind([1, 2, 3], [2, 4, 6, 8], equal_var=False)
    assert c.method == WELCH and c.n_items is None
    assert c.p_value == pytest.approx(w.pvalue, rel=1e-9)
    d = decide([a, b])
    assert any("item sampling not accounted for" in n for n in d.notes)


def test_mode_min_orients_the_difference():
    rng = np.random.default_rng(0)
    low, high = arm("low", rng.random((3, 20))), arm("high", rng.random((3, 20)) + 1)
    assert compare(low, high, "min").diff == pytest.approx(-compare(low, high, "max").diff)
    assert compare(low, high, "min").diff > 0


def test_losses_are_minimised():
    # a continuous, unbounded metric: the lower loss wins and intervals are not clipped
    rng = np.random.default_rng(12)
    base = rng.normal(2.0, 0.3, (1, 100))
    good = arm("good", base - 0.2 + rng.normal(0, 0.05, (3, 100)))
    bad = arm("bad", base + rng.normal(0, 0.05, (3, 100)))
    d = decide([bad, good], mode="min")
    assert (d.verdict, d.best) == ("supported", "good")
    c = d.tests[0].comparison
    assert c.diff == pytest.approx(0.2, abs=0.02) and not c.clipped


def test_one_seed_arm_has_no_interval():
    i = arm_interval(arm("a", np.ones((1, 8))), EM)
    assert (i.n_seeds, i.ci95, i.se) == (1, None, None)


def test_different_seed_sets_are_not_paired_by_seed():
    rng = np.random.default_rng(1)
    a = arm("a", rng.random((3, 40)), seeds=(0, 1, 2))
    b = arm("b", rng.random((3, 40)), seeds=(5, 6, 7))
    c = compare(a, b)
    assert c.method == UNPAIRED and not c.paired
    assert any("not paired by seed" in n for n in c.notes)
    assert 0 < c.p_value <= 1


def test_items_are_aligned_by_id_and_partial_overlap_is_noted():
    rng = np.random.default_rng(2)
    values = rng.random((2, 10))
    a = arm("a", values)
    b = arm("b", values[:, ::-1], items=tuple(f"q{i}" for i in range(10))[::-1])
    assert compare(a, b).diff == 0.0 and compare(a, b).p_value == 1.0
    c = arm("c", values[:, :6], items=tuple(f"q{i}" for i in range(6)))
    assert any("6 items" in n for n in compare(a, c).notes)
    d = arm("d", values[:, :1], items=("other",))
    assert compare(a, d).method == WELCH


def test_one_seed_has_no_test():
    a, b = arm("a", np.ones((1, 8))), arm("b", np.zeros((1, 8)))
    c = compare(a, b)
    assert c.p_value is None and c.ci95 is None
    assert any("one seed" in n for n in c.notes)
    d = decide([a, b])
    assert d.verdict == "inconclusive" and "cannot be tested" in d.reason


def test_an_exact_difference_is_significant():
    # 8/8 vs 0/8 on both seeds: significant, but 8 items do not make the difference exactly 1
    # (Agresti & Min's pseudo-items: sd 1 / (8 + 2))
    c = compare(arm("a", np.ones((2, 8))), arm("b", np.zeros((2, 8))), "max", EM)
    assert c.diff == 1.0 and c.p_value < 1e-20
    assert c.ci95 == pytest.approx((1.0 - stats.norm.ppf(0.975) / 10, 1.0))


def test_two_shares_right_on_every_item_are_not_exactly_equal():
    # a share near 1 on 20 items: both arms right everywhere on 2 seeds; the difference is
    # 0 with an interval of z / 22 on each side, not a zero-width one
    c = compare(arm("a", np.ones((2, 20))), arm("b", np.ones((2, 20))), "max", EM)
    assert c.diff == 0.0 and c.p_value == 1.0
    assert c.ci95 == pytest.approx((-stats.norm.ppf(0.975) / 22, stats.norm.ppf(0.975) / 22))


def test_directional_p_values_match_the_interval():
    rng = np.random.default_rng(4)
    a = arm("a", rng.random((3, 64)) + 0.2)
    b = arm("b", rng.random((3, 64)))
    c = compare(a, b)
    lo, hi = c.ci95
    assert p_greater(c, lo) == pytest.approx(0.05, abs=2e-3)
    assert p_less(c, hi) == pytest.approx(0.05, abs=2e-3)
    assert p_greater(c, 0.0) == pytest.approx(c.p_value) if c.diff > 0 else True


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.02, None]) == [0.04, None]
    assert holm([]) == []


def test_family_reports_raw_and_adjusted():
    rng = np.random.default_rng(5)
    base = arm("base", rng.random((3, 64)))
    comps = [compare(arm(f"x{j}", rng.random((3, 64))), base) for j in range(3)]
    tests = family(comps, margin=0.0)
    assert [t.p_holm for t in tests] == pytest.approx(holm([c.p_value for c in comps]))
    assert all(t.p_holm >= t.p_raw for t in tests)


def test_arm_scores_from_items_and_validation():
    a = ArmScores.from_items("a", {1: {"x": 1.0, "y": 0.0}, 0: {"y": 1.0, "x": 0.0}})
    assert a.seeds == (0, 1) and a.items == ("x", "y")
    assert a.values.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="different items"):
        ArmScores.from_items("a", {0: {"x": 1.0}, 1: {"y": 1.0}})
    with pytest.raises(ValueError, match="finite"):
        arm("a", [[1.0, float("nan")]])
    with pytest.raises(ValueError, match="unique"):
        ArmScores("a", (0, 0), np.zeros((2, 1)))


# ------------------------------------------------------------------------------- decide
def strong_arms():
    rng = np.random.default_rng(6)
    return calibration.simulate_arms(rng, 3, 3, effects=[0.0, 0.0, 2.0])


def test_prediction_supported_refuted_and_surprise():
    arms = strong_arms()  # a2 is far better than a0 and a1
    d = decide(arms, prediction={"better": "a2", "than": "all"}, bounds=EM)
    assert (d.verdict, d.kind) == ("supported", "preregistered")
    assert len(d.tests) == 2 and d.surprises == ()
    d = decide(arms, prediction=Prediction("a0", "a2"), bounds=EM)
    assert d.verdict == "refuted"
    assert any("a2 beats the predicted a0" in s for s in d.surprises)
    d = decide(arms, prediction={"better": "a0", "than": "a1"}, bounds=EM)
    assert d.verdict == "inconclusive" and d.surprises
    d = decide(arms, prediction={"better": "a2", "than": "a0"}, min_effect=0.9, bounds=EM)
    assert d.verdict == "refuted"  # a big win, but confidently smaller than 0.9


def test_exploratory_wording_and_baseline():
    arms = strong_arms()
    d = decide(arms, bounds=EM)
    assert (d.verdict, d.kind, d.best) == ("supported", "exploratory", "a2")
    assert "exploratory" in d.reason and "exploratory" in d.claim
    d = decide(arms, baseline="a0", bounds=EM)
    assert d.verdict == "supported" and d.tests[0].comparison.first == "a2"
    assert d.tests[0].p_above_holm >= d.tests[0].p_above
    weak = [a for a in arms if a.arm != "a2"]
    best_base = decide([arms[2], *weak], baseline="a2", bounds=EM)
    assert best_base.verdict == "refuted"  # every other arm is confidently below it


def test_the_two_families():
    arms = strong_arms()
    base = versus_baseline(arms, "a0", bounds=EM)
    assert [t.comparison.name for t in base] == ["a2 vs a0", "a1 vs a0"]
    assert base[0].p_holm == pytest.approx(min(1.0, 2 * base[0].p_raw))  # smallest p: x2
    best = best_versus_others(arms, bounds=EM)
    assert [t.comparison.first for t in best] == ["a2", "a2"]
    assert all(t.p_above < 0.05 for t in best)  # "a2 beats all": every comparison holds
    # the intersection-union rule uses the raw p-values; Holm's are never smaller
    assert all(t.p_above_holm >= t.p_above for t in best)


def test_prediction_against_all_reports_a_surprise():
    arms = strong_arms()
    d = decide(arms, prediction={"better": "a1", "than": "all"}, bounds=EM)
    assert d.verdict == "refuted"  # a2 is confidently ahead of a1
    assert len(d.surprises) == 1 and "a2 beats the predicted a1" in d.surprises[0]


def test_decide_checks_names():
    arms = strong_arms()
    with pytest.raises(ValueError, match="unknown arm"):
        decide(arms, baseline="nope")
    with pytest.raises(ValueError, match="different arms"):
        decide(arms, prediction={"better": "a1", "than": "a1"})
    assert decide(arms[:1]).verdict == "inconclusive"


def test_decision_is_json_ready():
    d = decide(strong_arms(), baseline="a0", bounds=EM)
    text = json.dumps(dataclasses.asdict(d))
    assert json.loads(text)["verdict"] == "supported"


def test_decide_is_deterministic():
    arms = strong_arms()
    assert decide(arms, baseline="a0") == decide(arms, baseline="a0")


# ------------------------------------------------------------------------ pooled seeds
def test_pooling_for_shared_seed_families_of_three_or_more_arms():
    rng = np.random.default_rng(13)
    arms = calibration.simulate_arms(rng, 4, 3, effects=[0.0, 0.0, 0.0, 1.0])
    d = decide(arms, bounds=EM)  # best beats all: pooled (auto)
    assert {t.comparison.method for t in d.tests} == {POOLED}
    assert any("pooled over the 4 arms" in n and "6 df" in n for n in d.notes)
    own = best_versus_others(arms, bounds=EM, pool_seeds=False)
    for pooled, alone in zip(d.tests, own, strict=True):
        seed_df = [t.df for t in pooled.comparison.components.terms()][0]
        assert seed_df == 6 and [t.df for t in alone.comparison.components.terms()][0] == 2
        # the df flow into planning: at 10 seeds the pooled seed term has 3 x 9 df
        assert pooled.comparison.components.terms(10)[0].df == 27
    assert {t.comparison.method for t in decide(arms, baseline="a0").tests} == {PAIRED}
    assert {t.comparison.method for t in decide(arms, baseline="a0", pool_seeds=True).tests} == {
        POOLED
    }
    assert seed_pool(arms[:2]) is None  # two arms: nothing to pool
    other = ArmScores("x", (7, 8, 9), arms[0].values, arms[0].items)
    assert seed_pool([*arms, other]) is None  # an arm ran other seeds
    assert seed_pool(calibration.first_seeds(arms, 1)) is None


def test_pooled_seed_variance_is_the_mean_of_the_pairs_own():
    rng = np.random.default_rng(14)
    table = rng.normal(size=(5, 4))
    pairs = [(a, b) for a in range(5) for b in range(a + 1, 5)]
    own = np.mean([np.var(table[a] - table[b], ddof=1) for a, b in pairs])
    assert 2 * weighted_interaction_ms(table, np.ones(5)) == pytest.approx(own)
    # weights: an arm with a tiny scale has its residuals fitted (weighted least squares)
    heavy = weighted_interaction_ms(table, np.array([1e9, 1, 1, 1, 1]))
    assert heavy > 0 and math.isfinite(heavy)


def test_pool_scales_each_arm_by_its_item_noise():
    # an arm near a bound of a 0/1 metric varies less: its share of the pool is smaller
    rng = np.random.default_rng(15)
    arms = calibration.simulate_arms(rng, 4, 3, effects=[0.0, 0.0, -3.0, -3.0])
    pool = seed_pool(arms)
    assert pool.scales["a2"] < pool.scales["a0"]
    assert pool.seed_var("a0", "a1") > pool.seed_var("a2", "a3")


def pooled_rates(n_arms, n_seeds, reps, effect, seed=0):
    """(A/A rate, power pooled, power welch) of "the best beats all" (no baseline)."""
    rng = np.random.default_rng([seed, n_arms, n_seeds])
    effects = np.zeros(n_arms)
    effects[-1] = effect
    false = power = welch = 0
    for _ in range(reps):
        false += decide(calibration.simulate_arms(rng, n_arms, n_seeds), bounds=EM).verdict == (
            "supported"
        )
        alt = calibration.simulate_arms(rng, n_arms, n_seeds, effects=effects)
        for d, won in ((decide(alt, bounds=EM), 1), (decide(calibration.seed_means(alt)), 0)):
            hit = d.verdict == "supported" and d.best == f"a{n_arms - 1}"
            power, welch = power + hit * won, welch + hit * (1 - won)
    return false / reps, power / reps, welch / reps


def test_pooled_best_beats_all_is_calibrated_and_beats_welch():
    # 4 arms, 3 seeds, no baseline: the cell where each pair's own 2 df lost to Welch
    false, power, welch = pooled_rates(4, 3, 120, calibration.EFFECT)
    assert false <= 0.05 + rate(0, 120)[1]
    assert power > welch + 0.05  # measured 0.20 vs 0.05 (docs/statistics.md)


@pytest.mark.slow
@pytest.mark.parametrize("n_arms,n_seeds", [(4, 2), (4, 3), (8, 3), (8, 5)])
def test_pooled_best_beats_all_big(n_arms, n_seeds):
    false, power, welch = pooled_rates(n_arms, n_seeds, 1000, calibration.EFFECT, seed=1)
    assert false <= 0.05 + rate(0, 1000)[1] and power >= welch


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["hetero-seeds", "hetero-strong"])
def test_pooled_with_one_noisier_arm_big(scenario):
    # sphericity violated: a0 has twice the seed sd (the decision's auto pools here)
    rng = np.random.default_rng([2, len(scenario)])
    hits = sum(
        decide(
            calibration.simulate_arms(rng, 4, 3, **calibration.SCENARIOS[scenario]), bounds=EM
        ).verdict
        == "supported"
        for _ in range(1000)
    )
    assert hits / 1000 <= 0.05 + rate(0, 1000)[1]


# --------------------------------------------------------------------------- sequential
def test_single_look_is_the_fixed_design():
    (look,) = sequential_boundaries([5])
    assert look.z == pytest.approx(1.959964, abs=1e-4)
    assert look.nominal_alpha == pytest.approx(0.05, abs=1e-6)


def test_boundaries_spend_what_the_function_says():
    looks = sequential_boundaries([2, 3, 4, 5])
    assert [b.spent for b in looks] == pytest.approx(
        [obrien_fleming_spent(n / 5) for n in (2, 3, 4, 5)]
    )
    z = [b.z for b in looks]
    assert z == sorted(z, reverse=True)  # strict early, lenient late
    # Monte Carlo: Brownian motion crosses at each look with the spent increments
    rng = np.random.default_rng(0)
    t = np.array([2, 3, 4, 5]) / 5
    paths = np.cumsum(rng.normal(size=(400_000, 4)) * np.sqrt(np.diff(t, prepend=0)), axis=1)
    crossed = np.abs(paths / np.sqrt(t)) >= np.array(z)
    first = np.cumsum(crossed, axis=1) == 1
    got = (first & crossed).mean(axis=0).cumsum()
    assert got == pytest.approx([b.spent for b in looks], abs=1.5e-3)


def test_sequential_step_stops_early_for_a_large_effect():
    rng = np.random.default_rng(7)
    arms = calibration.simulate_arms(rng, 2, 5, effects=[0.0, 3.0])
    looks = (3, 5)
    first = [a for a in arms]
    at3 = [ArmScores(a.arm, a.seeds[:3], a.values[:3], a.items) for a in first]
    step = sequential_step([compare(at3[1], at3[0])], looks, 0)
    assert step.stop and step.status == {"a1 vs a0": "supported"} and step.more_seeds == ()


def test_sequential_step_asks_for_seeds_then_gives_up():
    a, b = one_item_arms(2)
    step = sequential_step([compare(a, b)], (2, 3), 0)
    assert not step.stop and step.more_seeds == ("a", "b")
    assert step.status == {"a vs b": "undecided"}
    last = sequential_step([compare(a, b)], (2, 3), 1, decided={"x vs b": "supported"})
    assert last.stop and last.status == {"x vs b": "supported", "a vs b": "inconclusive"}


def test_sequential_decisions_stand_and_share_alpha():
    rng = np.random.default_rng(10)
    arms = calibration.simulate_arms(rng, 3, 5, effects=[0.0, 3.0, 3.0], seed_sd=0.05)
    seen = calibration.first_seeds(arms, 3)
    comps = [compare(seen[1], seen[0]), compare(seen[2], seen[0])]
    step = sequential_step(comps, (3, 5), 0)
    assert step.status == {"a1 vs a0": "supported", "a2 vs a0": "supported"} and step.stop
    # a decision stands: later data are not retested, the other comparison stays open
    null = calibration.first_seeds(calibration.simulate_arms(rng, 3, 5), 5)
    later = [compare(null[1], null[0]), compare(null[2], null[0])]
    step = sequential_step(later, (3, 5), 1, decided={"a1 vs a0": "supported"})
    assert step.status["a1 vs a0"] == "supported"
    assert step.status["a2 vs a0"] in ("inconclusive", "supported", "refuted")
    assert step.stop and step.more_seeds == ()  # the last look always stops


def test_a_two_seed_look_decides_nothing():
    rng = np.random.default_rng(11)
    arms = calibration.first_seeds(calibration.simulate_arms(rng, 2, 2, effects=[0, 5]), 2)
    step = sequential_step([compare(arms[1], arms[0])], (2, 4), 0)
    assert step.status == {"a1 vs a0": "undecided"} and step.more_seeds == ("a1", "a0")


# -------------------------------------------------------------------------------- power
def test_mde_and_seeds_needed_agree():
    comps = VarianceComponents(((0.004, 3),), item_var=0.02, n_items=256, item_noise=0.1)
    assert mde(comps, 10) < mde(comps, 5) < mde(comps, 3)
    n = seeds_needed(comps, mde(comps, 6) * 1.0001)
    assert n == 6
    floor = 2.8 * math.sqrt(comps.item_var / comps.n_items)  # the item term never shrinks
    assert seeds_needed(comps, floor * 0.9) is None
    assert seeds_needed(comps, floor * 1.2) is not None


def test_mde_of_seed_level_data_is_the_t_test_one():
    comps = compare(
        *[
            ArmScores.seed_level(n, v)
            for n, v in (("a", {0: 1, 1: 2, 2: 4}), ("b", {0: 0, 1: 2, 2: 3}))
        ]
    ).components
    se = math.sqrt(comps.variance())
    df = comps.df()
    assert mde(comps) == pytest.approx((stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * se)


@pytest.mark.slow
def test_power_at_the_mde_is_about_80_percent():
    # the planning formula against simulation, on Gaussian scores with all three terms
    rng = np.random.default_rng(9)
    # seed means vary by 0.01 = 0.005 (seed) + 1/200 (cell noise averaged over items)
    comps = VarianceComponents(((0.01, 5),), item_var=0.2, n_items=200, item_noise=1.0 / 5)
    effect, hits, reps = mde(comps), 0, 1000
    for _ in range(reps):
        seed = rng.normal(0, math.sqrt(0.005), (5, 1))
        d = effect + seed + rng.normal(0, math.sqrt(0.2), (1, 200)) + rng.normal(0, 1, (5, 200))
        hits += compare(arm("a", d), arm("b", np.zeros((5, 200)))).p_value < 0.05
    assert 0.7 <= hits / reps <= 0.9


# ----------------------------------------------------------------------- calibration
def aa_rate(n_arms, n_seeds, baseline, reps, effects=None, seed=0):
    rng = np.random.default_rng([seed, n_arms, n_seeds, int(baseline)])
    hits = 0
    for _ in range(reps):
        arms = calibration.simulate_arms(rng, n_arms, n_seeds, 128, effects)
        d = decide(arms, baseline="a0" if baseline else None, bounds=EM)
        hits += d.verdict == "supported"
    return rate(hits, reps)


@pytest.mark.integration
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
def test_aa_two_arms_is_calibrated(n_seeds):
    got, tol = aa_rate(2, n_seeds, False, 600)
    assert got <= 0.05 + tol


@pytest.mark.integration
@pytest.mark.parametrize("n_arms", [4, 8])
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
@pytest.mark.parametrize("baseline", [False, True])
def test_aa_many_arms_is_calibrated(n_arms, n_seeds, baseline):
    got, tol = aa_rate(n_arms, n_seeds, baseline, 120)
    assert got <= 0.05 + tol


@pytest.mark.integration
def test_best_of_two_tied_leaders_is_not_claimed():
    # least favourable for "the best beats all": two tied leaders, the rest far behind
    got, tol = aa_rate(4, 3, False, 400, effects=[0.0, 0.0, -3.0, -3.0])
    assert got <= 0.05 + tol


def test_power_at_least_welch():
    got = calibration.rates(2, 3, False, 150, calibration.EFFECT, 256)
    assert got["paired"] >= got["welch"]


def sequential_aa_rate(n_arms, baseline, looks, reps):
    rng = np.random.default_rng([n_arms, int(baseline), *looks])
    hits = 0
    for _ in range(reps):
        arms = calibration.simulate_arms(rng, n_arms, looks[-1], 128)
        decided = {}
        for r, n in enumerate(looks):
            seen = [ArmScores(a.arm, a.seeds[:n], a.values[:n], a.items) for a in arms]
            pairs = [(x, seen[0]) for x in seen[1:]] if baseline else [(seen[1], seen[0])]
            step = sequential_step([compare(x, y) for x, y in pairs], looks, r, 0.0, decided)
            decided = {k: v for k, v in step.status.items() if v in ("supported", "refuted")}
            if step.stop:
                break
        hits += bool(decided)  # any decision is an error under A/A
    return rate(hits, reps)


@pytest.mark.integration
@pytest.mark.parametrize("n_arms,baseline", [(2, False), (4, True)])
def test_sequential_aa_is_calibrated(n_arms, baseline):
    got, tol = sequential_aa_rate(n_arms, baseline, (2, 3, 5), 300)
    assert got <= 0.05 + tol


@pytest.mark.slow
@pytest.mark.parametrize("n_arms", [2, 4, 8])
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
@pytest.mark.parametrize("baseline", [False, True])
def test_aa_calibrated_big(n_arms, n_seeds, baseline):
    got, tol = aa_rate(n_arms, n_seeds, baseline, 2000, seed=1)
    assert got <= 0.05 + tol


@pytest.mark.slow
@pytest.mark.parametrize("n_seeds", [2, 3, 5])
def test_power_at_least_welch_big(n_seeds):
    got = calibration.rates(2, n_seeds, True, 1000, calibration.EFFECT, 256)
    assert got["paired"] >= got["welch"] - 0.01
