import math

import pytest

from evsys.conclusion.statistics import probability_of_improvement, summarize

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


def test_probability_of_improvement_counts_ties_half():
    # pairs: (1,1) tie, (1,0) win, (2,1) win, (2,0) win -> 3.5 / 4
    assert probability_of_improvement([1, 2], [1, 0], "max") == 0.875
    assert probability_of_improvement([1, 2], [1, 0], "min") == 0.125


def test_probability_of_improvement_of_constant_groups_and_one_seed():
    # the live part of the tests of the removed Welch compare(): its prob_improvement
    assert probability_of_improvement([1.0, 1.0], [0.0, 0.0, 0.0]) == 1.0
    assert probability_of_improvement([0.5, 0.5], [0.5, 0.5]) == 0.5
    assert probability_of_improvement([0.9], [0.5, 0.6]) == 1.0


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        probability_of_improvement(A, B, "maximise")
