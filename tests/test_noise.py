"""Where the noise comes from (evsys/conclusion/noise.py): the variance components of a
crossed arms x seeds x orders x items design recovered from simulated scores with known
components, and the SNR and seed planning built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evsys.conclusion.noise import noise_components
from evsys.conclusion.variance import mde

TRUE = {  # variances of the simulated model's random terms
    "seed": 0.04, "order": 0.02, "seed_x_order": 0.01,
    "item": 0.5, "arm_x_item": 0.1, "residual": 0.3,
}  # fmt: skip
SHAPE = (3, 4, 4, 100)  # arms, seeds, orders, items
SIMULATIONS = 300


def simulate(rng: np.random.Generator, shape=SHAPE, arm_means=(0.0, 0.3, 0.6)) -> np.ndarray:
    """scores[a, s, d, i] of the module docstring's model with the TRUE variances."""
    a, s, d, n = shape
    sd = {k: math.sqrt(v) for k, v in TRUE.items()}
    return (
        np.asarray(arm_means[:a])[:, None, None, None]
        + sd["seed"] * rng.standard_normal((a, s, 1, 1))
        + sd["order"] * rng.standard_normal((a, 1, d, 1))
        + sd["seed_x_order"] * rng.standard_normal((a, s, d, 1))
        + sd["item"] * rng.standard_normal((1, 1, 1, n))
        + sd["arm_x_item"] * rng.standard_normal((a, 1, 1, n))
        + sd["residual"] * rng.standard_normal((a, s, d, n))
    )


def test_components_recovered_on_average_within_their_simulation_error():
    """Each estimate's mean over simulations lies within 4 standard errors (of that mean, from
    the simulations' own spread) of the true component: the estimator is unbiased (the true
    values are far enough from 0 that clipping a negative estimate almost never happens)."""
    rng = np.random.default_rng(0)
    estimates = {name: [] for name in TRUE}
    for _ in range(SIMULATIONS):
        found = noise_components(simulate(rng))
        for name in TRUE:
            estimates[name].append(getattr(found, name))
    for name, true in TRUE.items():
        values = np.asarray(estimates[name])
        tolerance = 4 * values.std(ddof=1) / math.sqrt(SIMULATIONS)
        assert abs(values.mean() - true) < tolerance, (name, values.mean(), true, tolerance)
        assert tolerance < 0.3 * true  # the check is tight enough to catch a wrong divisor


def test_noise_signal_and_snr_of_the_arms():
    """noise: the std of a run's mean within an arm (seed + order + seed x order + residual /
    items); signal: the spread between the arms' means; snr their ratio."""
    rng = np.random.default_rng(1)
    found = [noise_components(simulate(rng)) for _ in range(200)]
    run_var = TRUE["seed"] + TRUE["order"] + TRUE["seed_x_order"] + TRUE["residual"] / SHAPE[3]
    noise_var = np.mean([f.noise**2 for f in found])
    assert noise_var == pytest.approx(run_var, rel=0.1)
    assert np.mean([f.signal for f in found]) == pytest.approx(0.6, abs=0.1)
    assert found[0].snr == pytest.approx(found[0].signal / found[0].noise)


def test_seed_level_metric_has_no_item_terms():
    """A metric recorded once per run: seed, order and their interaction (with the items'
    noise inside it) are estimated, the item terms are not."""
    rng = np.random.default_rng(2)
    runs = simulate(rng).mean(axis=3, keepdims=True)
    found = noise_components(runs, has_items=False)
    assert found.item is None and found.arm_x_item is None and found.residual is None
    assert found.seed is not None and found.order is not None and found.noise > 0


def test_one_data_order_gives_no_order_term():
    """Without data orders crossed (data.order_seed unset: order follows the seed) the seed term
    holds both; the order term is not estimated."""
    rng = np.random.default_rng(3)
    found = noise_components(simulate(rng, shape=(2, 6, 1, 100)))
    assert found.order is None and found.seed_x_order is None
    assert found.seed > 0


def test_seeds_needed_reuse_the_power_planning_of_a_paired_item_difference():
    """The difference's components give the MDE at the study's runs per arm, and seeds_needed
    is the fewest runs per arm whose MDE reaches the effect."""
    found = noise_components(simulate(np.random.default_rng(4)))
    now = found.mde()
    assert now == pytest.approx(mde(found.difference(), power=0.8))
    needed = found.seeds_needed(now / 2)
    assert needed is not None and needed > found.runs_per_arm
    assert found.mde(needed) <= now / 2 < found.mde(needed - 1)
