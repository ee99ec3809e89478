"""Where the noise comes from: variance components of one metric on a crossed design, its
signal-to-noise ratio, and the seeds a difference between two arms would need.

The design is arms x init seeds x data orders x items, every cell filled (a variance study:
`+experiment=variance_study`); scores[a, s, d, i] is item i's score in the run of arm a with
init seed s and data order d (one item, i = 0, for a metric recorded per run only). The model,
with every term but the arm means random and independent:

    y[a,s,d,i] = mu_a + seed[a,s] + order[a,d] + seed_x_order[a,s,d]
                 + item[i] + arm_x_item[a,i] + residual[a,s,d,i]

The components are its variances, estimated by the method of moments (ANOVA on the balanced
design; a negative estimate is clipped to 0): within each arm the run means form a seeds x
orders table whose mean squares give seed (init), order and their interaction; each arm's runs
x items table gives the residual, the arms x items table of item means the item and arm x item
terms. Every estimate pools the arms. Pure numpy; docs/statistics.md#where-the-noise-comes-from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evsys.conclusion.variance import VarianceComponents, mde, residual_ms, seeds_needed

POWER = 0.8  # as evsys.conclusion.power plans
LOW_SNR = 1.0  # below it one seed's std exceeds the whole spread between the arms


@dataclass(frozen=True)
class NoiseComponents:
    """One metric's variance components (None: the design cannot estimate it) and its SNR.

    seed, order and seed_x_order are variances of a run's mean score (seed_x_order of a metric
    without per-item scores holds the items' noise too); item, arm_x_item and
    residual are variances of one item's score (each adds its value / n_items to a run's
    mean). noise is the std of a run's mean within an arm (a new seed and order), signal the
    spread (max - min) of the arms' means, snr = signal / noise."""

    n_arms: int
    n_seeds: int
    n_orders: int
    n_items: int | None  # None: no per-item scores
    seed: float | None
    order: float | None
    seed_x_order: float | None
    item: float | None
    arm_x_item: float | None
    residual: float | None
    arm_means: tuple[float, ...]
    noise: float | None
    signal: float | None

    @property
    def snr(self) -> float | None:
        if self.signal is None or not self.noise:
            return None if self.signal is None or self.signal == 0 else math.inf
        return self.signal / self.noise

    @property
    def runs_per_arm(self) -> int:
        return self.n_seeds * self.n_orders

    def difference(self) -> VarianceComponents | None:
        """The variance components of the difference of two arms' means (independent seeds,
        the same items), in the form evsys's power planning takes; None without two runs."""
        if self.noise is None:
            return None
        runs, resid = self.runs_per_arm, self.residual or 0.0
        if not self.n_items:
            return VarianceComponents(((2 * self.noise**2, runs),))
        return VarianceComponents(
            ((2 * self.noise**2, runs),),
            item_var=2 * (self.arm_x_item or 0.0),
            n_items=self.n_items,
            item_noise=2 * resid / runs,
            seed_floors=(2 * resid / self.n_items,),
        )

    def mde(self, n_seeds: int | None = None) -> float | None:
        """The smallest difference between two arms that n_seeds runs per arm (default: this
        study's) detect with 80% power (two-sided 5%)."""
        components = self.difference()
        return None if components is None else mde(components, n_seeds, power=POWER)

    def seeds_needed(self, effect: float) -> int | None:
        """Runs per arm (each a new seed) that detect a difference of `effect` with 80%
        power; None when no number of seeds does (items limit it) or nothing is estimated."""
        components = self.difference()
        if components is None or effect <= 0:
            return None
        return seeds_needed(components, effect, power=POWER)


def noise_components(scores: np.ndarray, has_items: bool = True) -> NoiseComponents:
    """The components of scores[arm, seed, order, item] (see the module docstring);
    has_items=False: one value per run (scores[..., 0]), the item terms are None."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 4 or 0 in scores.shape:
        raise ValueError(f"scores must be arms x seeds x orders x items, got {scores.shape}")
    n_arms, n_seeds, n_orders, n_items = scores.shape
    runs = scores.mean(axis=3)  # arms x seeds x orders
    residual = _residual(scores) if has_items and n_items > 1 else None
    seed, order, seed_x_order, run_var = _run_terms(runs, residual, n_items)
    item, arm_x_item = _item_terms(scores, residual) if residual is not None else (None, None)
    arm_means = tuple(float(m) for m in runs.mean(axis=(1, 2)))
    noise = None if run_var is None else math.sqrt(run_var)
    signal = max(arm_means) - min(arm_means) if n_arms > 1 else None
    return NoiseComponents(
        n_arms, n_seeds, n_orders, n_items if has_items else None,
        seed, order, seed_x_order, item, arm_x_item, residual, arm_means,
        noise, signal,
    )  # fmt: skip


def _run_terms(
    runs: np.ndarray, residual: float | None, n_items: int
) -> tuple[float | None, float | None, float | None, float | None]:
    """seed, order, seed x order from each arm's seeds x orders table of run means, and the
    variance of a run's mean with a new seed and order (the noise, squared). (The plain
    variance of the study's run means would understate it: its runs share seeds and orders.)"""
    _, n_seeds, n_orders = runs.shape
    item_noise = residual / n_items if residual is not None else None
    if n_seeds > 1 and n_orders > 1:
        interaction = float(np.mean([residual_ms(table) for table in runs]))
        seed_ms = n_orders * _pooled_var(runs.mean(axis=2))
        order_ms = n_seeds * _pooled_var(runs.mean(axis=1))
        # per run only: the interaction holds the items' noise too, and is reported so
        beyond_items = interaction if item_noise is None else _clip(interaction - item_noise)
        seed = _clip((seed_ms - interaction) / n_orders)
        order = _clip((order_ms - interaction) / n_seeds)
        return seed, order, beyond_items, seed + order + interaction
    # one of the two never varied: what varies is all there is, less the items' noise
    varying = _pooled_var(runs.reshape(runs.shape[0], -1))
    if varying is None:
        return None, None, None, None
    value = _clip(varying - (item_noise or 0.0))
    return (value, None, None, varying) if n_seeds > 1 else (None, value, None, varying)


def _item_terms(scores: np.ndarray, residual: float) -> tuple[float, float | None]:
    """item and arm x item from the arms x items table of item means (over each arm's runs)."""
    n_arms, n_seeds, n_orders, _ = scores.shape
    per_run = residual / (n_seeds * n_orders)  # the noise left in an item's mean over runs
    item_means = scores.mean(axis=(1, 2))  # arms x items
    if n_arms == 1:
        return _clip(float(np.var(item_means[0], ddof=1)) - per_run), None
    interaction = residual_ms(item_means)  # E = arm_x_item + per_run
    item = float(np.var(item_means.mean(axis=0), ddof=1)) - interaction / n_arms
    return _clip(item), _clip(interaction - per_run)


def _residual(scores: np.ndarray) -> float | None:
    """The runs x items interaction mean square within each arm, pooled (None: one run)."""
    n_arms, n_seeds, n_orders, n_items = scores.shape
    if n_seeds * n_orders < 2:
        return None
    tables = scores.reshape(n_arms, n_seeds * n_orders, n_items)
    return float(np.mean([residual_ms(table) for table in tables]))


def _pooled_var(rows: np.ndarray) -> float | None:
    """The variance within each row (ddof 1), averaged over rows (all of one size)."""
    if rows.shape[1] < 2:
        return None
    return float(np.var(rows, axis=1, ddof=1).mean())


def _clip(value: float) -> float:
    return max(0.0, float(value))
