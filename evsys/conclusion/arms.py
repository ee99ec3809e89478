"""An arm's scores (seeds x items), and the seed variance pooled over arms that share seeds.

Pure numpy; evsys.conclusion.inference re-exports ArmScores. docs/statistics.md explains the
pooling: when every arm of a family ran the same seeds (a randomized-block design with the
seeds as blocks), the variance of one seed's mean difference between two arms is estimated
once for the whole family, from the arm-by-seed interaction of the table of seed means, with
(k - 1)(n - 1) degrees of freedom instead of each pair's own n - 1 (as Dunnett's and Tukey's
procedures pool the error mean square). It assumes sphericity: every pair's seed differences
have the same variance. Whether to pool is decided by the design (the arms and seeds that
ran), never by the scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evsys.conclusion.variance import residual_ms

POOL_MIN_ARMS = 3  # two arms have a single difference: nothing to pool


@dataclass(frozen=True)
class ArmScores:
    """Scores of one arm: values[s, i] is seed seeds[s] on item items[i]."""

    arm: str
    seeds: tuple[int, ...]
    values: np.ndarray  # seeds x items, or seeds x 1 when items is None
    items: tuple[str, ...] | None = None  # None: only seed-level values are known

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=float)
        if values.ndim == 1:  # seed-level values given as a vector
            values = values[:, None]
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.items is not None:
            object.__setattr__(self, "items", tuple(str(i) for i in self.items))
        _check_arm(self)

    @classmethod
    def from_items(cls, arm: str, scores: Mapping[int, Mapping[str, float]]) -> ArmScores:
        """From {seed: {item: score}} (what the per-item score files hold); every seed must
        score the same items."""
        seeds = sorted(scores)
        items = sorted(scores[seeds[0]]) if seeds else []
        if any(sorted(scores[s]) != items for s in seeds):
            raise ValueError(f"arm {arm!r}: seeds scored different items")
        values = np.array([[scores[s][i] for i in items] for s in seeds], dtype=float)
        return cls(arm, tuple(seeds), values, tuple(items))

    @classmethod
    def seed_level(cls, arm: str, values: Mapping[int, float]) -> ArmScores:
        """From {seed: value} when no per-item scores exist (tests fall back to Welch)."""
        seeds = sorted(values)
        return cls(arm, tuple(seeds), np.array([[values[s]] for s in seeds], dtype=float))

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def has_items(self) -> bool:
        return self.items is not None


def _check_arm(arm: ArmScores) -> None:
    v = arm.values
    if v.ndim != 2 or v.shape[0] != len(arm.seeds) or v.size == 0:
        raise ValueError(f"arm {arm.arm!r}: values must be seeds x items, got shape {v.shape}")
    if arm.items is None and v.shape[1] != 1:
        raise ValueError(f"arm {arm.arm!r}: without item ids values must be seeds x 1")
    if arm.items is not None and len(arm.items) != v.shape[1]:
        raise ValueError(f"arm {arm.arm!r}: {len(arm.items)} item ids for {v.shape[1]} columns")
    items_unique = arm.items is None or len(set(arm.items)) == len(arm.items)
    if len(set(arm.seeds)) != len(arm.seeds) or not items_unique:
        raise ValueError(f"arm {arm.arm!r}: seeds and items must be unique")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"arm {arm.arm!r}: scores must be finite numbers")


@dataclass(frozen=True)
class SeedPool:
    """The seed variance of a family of arms that ran the same seeds on the same items.

    Model of the arms x seeds table of seed means: M[a, s] = mu_a + g_s + w[a, s] with
    Var(w[a, s]) = scale_a * sigma2, where scale_a is arm a's own per-item noise (the residual
    mean square of its seeds x items scores: hundreds of df, so taken as known). Arms near a
    bound of a 0/1 metric vary less; the scale carries that. sigma2 is the weighted
    arm-by-seed interaction mean square, with (k - 1)(n - 1) df; with equal scales it is the
    ordinary one, and twice it is the mean over all pairs of each pair's own estimate."""

    sigma2: float
    scales: Mapping[str, float]
    seeds: tuple[int, ...]
    items: tuple[str, ...]

    @property
    def n_arms(self) -> int:
        return len(self.scales)

    @property
    def df(self) -> int:
        return (self.n_arms - 1) * (len(self.seeds) - 1)

    def seed_var(self, first: str, second: str) -> float:
        """The variance of one seed's mean difference between two of the arms."""
        return (self.scales[first] + self.scales[second]) * self.sigma2

    def covers(self, first: ArmScores, second: ArmScores) -> bool:
        """Whether both arms ran the pool's seeds on its items (the pool applies to them)."""
        return all(
            a.arm in self.scales and a.seeds == self.seeds and a.items == self.items
            for a in (first, second)
        )

    def note(self) -> str:
        return (
            f"seed variance pooled over the {self.n_arms} arms that ran the same "
            f"{len(self.seeds)} seeds ({self.df} df, each arm's share scaled by its per-item "
            "noise; assumes the seed differences vary alike otherwise)"
        )


def seed_pool(arms: Sequence[ArmScores]) -> SeedPool | None:
    """The pooled seed variance of `arms`, or None when the design does not allow pooling:
    fewer than 3 arms, fewer than 2 seeds or items, seed-level scores only, or arms that ran
    different seeds or scored different items."""
    if len(arms) < POOL_MIN_ARMS:
        return None
    first = arms[0]
    same = all(a.has_items and a.seeds == first.seeds and a.items == first.items for a in arms)
    if not same or min(first.values.shape) < 2:
        return None
    scales = np.array([residual_ms(a.values) for a in arms])
    if not np.all(scales > 0):  # an arm with the same scores on every seed: no scale
        return None
    table = np.array([a.values.mean(axis=1) for a in arms])  # arms x seeds
    sigma2 = weighted_interaction_ms(table, 1.0 / scales)
    by_arm = {a.arm: float(x) for a, x in zip(arms, scales, strict=True)}
    return SeedPool(sigma2, by_arm, first.seeds, first.items or ())


def weighted_interaction_ms(table: np.ndarray, weights: np.ndarray) -> float:
    """The arm-by-seed interaction mean square of an arms x seeds table under row weights
    (weighted least squares of the additive model mu_a + g_s: each row centred, then the
    weighted mean of the centred rows removed per seed)."""
    centred = table - table.mean(axis=1, keepdims=True)
    resid = centred - (weights[:, None] * centred).sum(axis=0) / weights.sum()
    k, n = table.shape
    return float((weights[:, None] * resid**2).sum() / ((k - 1) * (n - 1)))
