"""The pretest table of evsys.conclusion.known_noise, recomputed: with each df's pretest level
the test keeps its level at every ratio of seed variance to item noise (normal model,
numerical integration), and pooling two grid steps more often would not (the table is not
needlessly conservative; the level is flat near alpha, so one step is within the integration's
error)."""

from __future__ import annotations

import pytest

from evsys.conclusion.known_noise import (
    ALPHA,
    PRETEST_LEVEL,
    PRETEST_LEVEL_MANY_DF,
    level_over_ratios,
    pretest_level,
)
from evsys.conclusion.variance import Term, pivot_terms

TOLERANCE = 1e-4  # the integration's error


@pytest.mark.parametrize("df", [*PRETEST_LEVEL, 8, 16])
def test_the_pretest_keeps_the_level_at_every_ratio(df):
    assert level_over_ratios(df, pretest_level(df)) <= ALPHA + TOLERANCE


@pytest.mark.parametrize("df", [1, 2, 3])
def test_pooling_more_often_would_break_the_level(df):
    assert level_over_ratios(df, PRETEST_LEVEL[df] - 0.05) > ALPHA + 2 * TOLERANCE


def test_many_df_use_the_last_level():
    assert pretest_level(40) == pretest_level(2.0e9) == PRETEST_LEVEL_MANY_DF
    assert pretest_level(2.7) == PRETEST_LEVEL[2]  # Welch's df: the table's value below


def test_a_seed_term_below_its_floor_becomes_the_floor_and_others_keep_their_df():
    tie = Term(plus=0.0, df=1.0, floor=0.01)
    (known,) = pivot_terms([tie])
    assert known.plus == 0.01 and known.df == float("inf")
    spread = Term(plus=0.02, df=2.0, floor=0.01)
    (own,) = pivot_terms([spread])
    assert (own.plus, own.df, own.floor) == (0.02, 2.0, 0.0)  # the t on the seeds' own spread
