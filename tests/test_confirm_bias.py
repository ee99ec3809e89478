"""The winner's curse, simulated through evsys's own selection and statistics
(evsys/conclusion/confirmation.py): among arms of equal true means, the one the selection
stage picks looks better than its comparison arm on the seeds it was picked on, and the same
pair on fresh seeds does not. No training: scores are drawn as seeds x items."""

from __future__ import annotations

import math

import numpy as np

from evsys.conclusion.arms import ArmScores
from evsys.conclusion.confirmation import Selected, confirmation_fields, select_pair
from evsys.records import Plan

ARMS = ("a", "b", "c", "d", "base")  # four candidates and a baseline, all of the same mean
N_ITEMS, SEED_SD, ITEM_SD = 20, 0.5, 1.0
SIMULATIONS = 200
# E[max of 4 standard normals] (Harter 1961): the selected arm's expected lead, in SDs of an
# arm's mean, over a baseline of the same true mean
EXPECTED_MAX_OF_4 = 1.0294


def _plan() -> Plan:
    metric = {"name": "eval/sim/score", "mode": "max", "min_effect": 0.0}
    confirm = {"repeats": 2, "seeds": [3, 4]}
    return Plan("sim", "sim", metric, planned=[], baseline="base", confirm=confirm)


def _scores(rng: np.random.Generator, seeds: tuple[int, ...]) -> dict[str, ArmScores]:
    """Every arm on `seeds`, each score = seed effect + item noise; no arm is truly better."""
    items = tuple(f"q{i}" for i in range(N_ITEMS))
    scores = {}
    for arm in ARMS:
        seed_effect = rng.normal(0.0, SEED_SD, size=(len(seeds), 1))
        values = seed_effect + rng.normal(0.0, ITEM_SD, size=(len(seeds), N_ITEMS))
        scores[arm] = ArmScores(arm, seeds, values, items)
    return scores


def test_the_selection_estimate_is_biased_upward_and_the_confirmed_one_is_not():
    rng = np.random.default_rng(0)
    plan = _plan()
    selected, confirmed = [], []
    for _ in range(SIMULATIONS):
        selection = _scores(rng, (0, 1, 2))
        fresh = _scores(rng, (3, 4))  # the confirmation's seeds, never seen by the selection
        record = confirmation_fields(plan, selection, fresh, "selection")["confirmation"]
        assert record["against"] == "base" and record["selected"] != "base"
        selected.append(record["selection"]["diff"])
        confirmed.append(record["confirmed"]["diff"])
    for name, diffs in (("selection", selected), ("confirmed", confirmed)):
        mean, se = np.mean(diffs), np.std(diffs, ddof=1) / math.sqrt(len(diffs))
        print(f"{name}: mean difference {mean:.3f} (simulation SE {se:.3f})")
    # the true difference is 0: the selection's mean is far above it (4 simulation SEs), the
    # confirmation's within 3 of it (a 0.3% chance of a false alarm)
    se_selected = np.std(selected, ddof=1) / math.sqrt(SIMULATIONS)
    se_confirmed = np.std(confirmed, ddof=1) / math.sqrt(SIMULATIONS)
    assert np.mean(selected) > 4 * se_selected
    arm_sd = math.sqrt(SEED_SD**2 / 3 + ITEM_SD**2 / (3 * N_ITEMS))  # of an arm's mean, 3 seeds
    assert abs(np.mean(selected) - EXPECTED_MAX_OF_4 * arm_sd) < 3 * se_selected
    assert abs(np.mean(confirmed)) < 3 * se_confirmed
    # and the shrinkage the conclusion reports is that bias, on average
    assert np.mean(np.subtract(selected, confirmed)) > 4 * se_selected


def test_a_prediction_is_confirmed_against_the_arm_it_names():
    rng = np.random.default_rng(1)
    scores = _scores(rng, (0, 1, 2))
    named = Plan("p", "p", _plan().success_metric, [], prediction={"better": "c", "than": "a"})
    assert select_pair(named, scores) == Selected("c", "a")
    versus_all = Plan("p", "p", _plan().success_metric, [], prediction={"better": "c"})
    best_other = max((a for a in scores if a != "c"), key=lambda a: scores[a].mean)
    assert select_pair(versus_all, scores) == Selected("c", best_other)
