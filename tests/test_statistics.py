import math

import pytest
from scipy import stats

from evsys.conclusion.statistics import compare, probability_of_improvement, summarize

A = [1.0, 2.0, 3.0]  # mean 2, std 1
B = [2.0, 4.0, 6.0, 8.0]  # mean 5, var 20/3
T_975_DF2 = 4.302652729749462  # Student t quantile 0.975 with 2 degrees of freedom


def test_summary_by_hand():
    s = summarize({2: 3.0, 0: 1.0, 1: 2.0})
    assert (s.n, s.mean, s.std, s.min, s.max) == (3, 2.0, 1.0, 1.0, 3.0)
    half = T_975_DF2 * 1.0 / math.sqrt(3)
    assert s.ci95 == pytest.approx((2.0 - half, 2.0 + half), rel=1e-9)
    assert list(s.values.items()) == [(0, 1.0), (1, 2.0), (2, 3.0)]  # sorted by seed


def test_summary_of_one_seed_has_no_spread():
    s = summarize({7: 0.5})
    assert (s.n, s.mean, s.std, s.ci95) == (1, 0.5, None, None)


def test_summary_of_constant_values_is_exact():
    s = summarize({0: 0.1, 1: 0.1, 2: 0.1})
    assert s.std == 0.0
    assert s.ci95[0] == pytest.approx(0.1) and s.ci95[1] == pytest.approx(0.1)


def test_summary_needs_values():
    with pytest.raises(ValueError):
        summarize({})


def test_welch_by_hand():
    # diff = 2 - 5 = -3; se^2 = 1/3 + (20/3)/4 = 2; df = 4 / ((1/3)^2/2 + (5/3)^2/3)
    d = compare(A, B, "max")
    assert d.diff == pytest.approx(-3.0)
    df = 4 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)
    assert df == pytest.approx(4.0754716981)
    half = stats.t.ppf(0.975, df) * math.sqrt(2)
    assert d.ci95 == pytest.approx((-3.0 - half, -3.0 + half))
    assert (d.n_first, d.n_second) == (3, 4)


@pytest.mark.parametrize(
    "a, b",
    [(A, B), ([0.9, 0.93, 0.88], [0.5, 0.55, 0.52]), ([0.1, 0.4, 0.2, 0.3, 0.35], [0.2, 0.25])],
)
def test_welch_matches_scipy(a, b):
    ref = stats.ttest_ind(a, b, equal_var=False)
    d = compare(a, b, "max")
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert d.ci95 == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_min_mode_flips_the_sign():
    up, down = compare(A, B, "max"), compare(A, B, "min")
    assert down.diff == pytest.approx(3.0)
    assert down.ci95 == pytest.approx((-up.ci95[1], -up.ci95[0]))
    assert down.p_value == pytest.approx(up.p_value)


def test_zero_variance_in_both_groups_gives_no_nan():
    d = compare([1.0, 1.0], [0.0, 0.0, 0.0])
    assert (d.diff, d.ci95, d.p_value, d.prob_improvement) == (1.0, (1.0, 1.0), 0.0, 1.0)
    same = compare([0.5, 0.5], [0.5, 0.5])
    assert (same.diff, same.ci95, same.p_value, same.prob_improvement) == (
        0.0,
        (0.0, 0.0),
        1.0,
        0.5,
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy warns about the constant group
def test_zero_variance_in_one_group_uses_the_other():
    d = compare([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])
    ref = stats.ttest_ind([1.0, 1.0, 1.0], [0.0, 1.0, 2.0], equal_var=False)
    assert d.p_value == pytest.approx(ref.pvalue)
    assert all(math.isfinite(x) for x in d.ci95)


def test_one_seed_gives_no_interval_and_no_p():
    d = compare([0.9], [0.5, 0.6])
    assert d.diff == pytest.approx(0.35)
    assert (d.ci95, d.p_value, d.prob_improvement) == (None, None, 1.0)


def test_probability_of_improvement_counts_ties_half():
    # pairs: (1,1) tie, (1,0) win, (2,1) win, (2,0) win -> 3.5 / 4
    assert probability_of_improvement([1, 2], [1, 0], "max") == 0.875
    assert probability_of_improvement([1, 2], [1, 0], "min") == 0.125


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        compare(A, B, "maximise")
