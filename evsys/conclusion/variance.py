"""Variance of a mean or of a difference of means, over seeds and items, and its pivot.

Pure numpy/scipy; used by evsys.conclusion.inference (see its docstring for the model). A
variance is a list of Terms (an estimate with its degrees of freedom); tests and intervals
average the normal tail over the generalized pivotal quantity of the sum (Tsui & Weerahandi
1989): each estimated term v with df k stands for v * k / chi2_k. A seed term has a known floor
(the noise its items put into a seed's mean); when its estimate is implausibly far below it (a
tie), the term is the floor, known (evsys.conclusion.known_noise: pivot_terms). Planning (mde,
seeds_needed) uses Student's t with Satterthwaite (1946) df of the same terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import special, stats

from evsys.conclusion.known_noise import floor_ratio

ALPHA = 0.05
Bounds = tuple[float, float]
KNOWN_DF = 200.0  # a variance term this precise is treated as known (chi-square/df ~ 1)
GRID = {1: 161, 2: 49, 3: 21}  # pivot grid points per random term, by number of terms
PROBIT = 8.0  # the grid spans u = Phi(-8) .. Phi(8) of each chi-square


@dataclass(frozen=True)
class VarianceComponents:
    """What the variance of a mean (or of a difference of means) is made of (the model is in
    the evsys.conclusion.inference docstring); also the input of power planning."""

    seed_terms: tuple[tuple[float, int], ...]  # (seed_var, n_seeds) per independent seed set
    item_var: float = 0.0  # arm-by-item variance per item (0 when unknown or absent)
    n_items: int | None = None  # None: seed-level data, item sampling not accounted for
    item_noise: float = 0.0  # per-item noise inside the item mean square (subtracted)
    # seed contrasts the seed variance is pooled over: k - 1 for a family of k arms that ran
    # the same seeds (evsys.conclusion.arms.SeedPool), 1 for a pair's own; df = that x (n - 1)
    seed_pool: int = 1
    # per seed set, the variance one seed's mean must have from the per-item noise alone
    # (residual mean square / n_items; known: hundreds of df); () for seed-level data
    seed_floors: tuple[float, ...] = ()
    # the variance taken as known when the scores show none at all (0/1 scores that never
    # differ: evsys.conclusion.few_items.least_difference_variance)
    least: float = 0.0

    def terms(self, n_seeds: int | None = None) -> list[Term]:
        """The variance of the mean as terms; n_seeds replaces every seed set's size. Two
        seed sets (unpaired arms) make one term with Welch's df, so that with no item term
        the test is Welch's t-test."""
        floors = self.seed_floors or (0.0,) * len(self.seed_terms)
        seeds = [
            Term(
                var / (n_seeds or n),
                float(self.seed_pool * ((n_seeds or n) - 1)),
                0.0,
                f / (n_seeds or n),
            )
            for (var, n), f in zip(self.seed_terms, floors, strict=True)
        ]
        if len(seeds) > 1:
            # Welch's df of the estimates themselves: the floors are known, not estimated
            df = satterthwaite([t._replace(floor=0.0) for t in seeds])
            plus, floor = math.fsum(t.plus for t in seeds), math.fsum(t.floor for t in seeds)
            seeds = [Term(plus, df, 0.0, floor)]
        out = list(seeds)
        if self.n_items and self.n_items > 1 and (self.item_var > 0 or self.item_noise > 0):
            # the noise part shrinks with seeds; the arm-by-item part does not
            scale = min(n for _, n in self.seed_terms) / (n_seeds or 1) if n_seeds else 1.0
            item_noise = self.item_noise * scale / self.n_items
            out.append(
                Term(self.item_var / self.n_items + item_noise, self.n_items - 1.0, item_noise)
            )
        if self.least > 0 and not any(t.plus > 0 or t.floor > 0 for t in out):
            # the scores show no variance at all: not knowledge, but too few of them
            out[0] = out[0]._replace(floor=self.least)
        return out

    def variance(self, n_seeds: int | None = None) -> float:
        return math.fsum(t.value for t in self.terms(n_seeds))

    def df(self, n_seeds: int | None = None) -> float:
        """Satterthwaite (1946) degrees of freedom of the variance (for reading and planning;
        the tests use the pivot)."""
        return satterthwaite(self.terms(n_seeds))


class Term(NamedTuple):
    """One variance term: an estimate `plus` with `df` degrees of freedom, less a known
    `minus` (the noise an item mean square carries), and never below a known `floor` (the
    noise a seed mean carries); its value is max(floor, plus - minus)."""

    plus: float
    df: float
    minus: float = 0.0
    floor: float = 0.0

    @property
    def value(self) -> float:
        return max(self.floor, self.plus - self.minus)

    @property
    def estimated(self) -> bool:
        """Whether the estimate, not the known floor, makes the value (then its df count)."""
        return self.plus - self.minus > self.floor and self.df > 0


# ------------------------------------------------------------------------ variance components
def components_of(x: np.ndarray) -> VarianceComponents:
    """Two-way (seeds x items) components of one matrix: the scores of one arm, or the paired
    differences of two arms."""
    n_seeds, n_items = x.shape
    seed_var = float(np.var(x.mean(axis=1), ddof=1)) if n_seeds > 1 else 0.0
    if n_items < 2:
        return VarianceComponents(((seed_var, n_seeds),))
    # E[var of item means] = item_var + residual / n_seeds; with one seed there is no
    # residual to subtract (and no test is run then anyway).
    resid = residual_ms(x)
    item_var = max(0.0, float(np.var(x.mean(axis=0), ddof=1)) - resid / n_seeds)
    floors = (resid / n_items,)  # a seed's mean carries the noise of its items at least
    return VarianceComponents(
        ((seed_var, n_seeds),), item_var, n_items, resid / n_seeds, seed_floors=floors
    )


def seed_components(matrices: Sequence[np.ndarray]) -> VarianceComponents:
    """One seed term per matrix (seeds x items, or seeds x 1 for seed-level values), each
    floored by the noise of its items (none for seed-level values)."""
    terms = []
    for x in matrices:
        means = x.mean(axis=1)
        terms.append((float(np.var(means, ddof=1)) if len(means) > 1 else 0.0, len(means)))
    floors = tuple(residual_ms(x) / x.shape[1] for x in matrices)
    return VarianceComponents(tuple(terms), seed_floors=floors)


def residual_ms(x: np.ndarray) -> float:
    n_seeds, n_items = x.shape
    if n_seeds < 2 or n_items < 2:
        return 0.0
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    return float((resid**2).sum() / ((n_seeds - 1) * (n_items - 1)))


def satterthwaite(terms: Sequence[Term]) -> float:
    total = math.fsum(t.value for t in terms)
    denom = math.fsum(t.plus**2 / t.df for t in terms if t.estimated)
    if total == 0 or denom == 0:
        return math.inf
    return total**2 / denom


# ------------------------------------------------------------------ the generalized pivot
def pivot_tail(x: float, terms: Sequence[Term]) -> float:
    """P(N(0, V) > x) averaged over the pivot of V. One-sided; callers double it."""
    sd, weights, at_zero = _pivot_sd(pivot_terms(terms))
    exact = 0.0 if x > 0 else (0.5 if x == 0 else 1.0)
    if not sd.size:  # no variance at all: the difference is exact
        return exact
    return float(np.dot(weights, special.ndtr(-x / sd))) + at_zero * exact


def pivot_interval(center: float, terms: Sequence[Term]) -> Bounds:
    """center +- h, with h the 1 - alpha/2 quantile of the pivot (so the interval and the
    two-sided test agree)."""
    tested = pivot_terms(terms)
    sd, weights, _ = _pivot_sd(tested)
    if not sd.size:
        return (center, center)
    start = math.sqrt(math.fsum(t.value for t in tested) or float(sd.max() ** 2))
    half = _tail_quantile(sd, weights, ALPHA / 2, start)
    return (center - half, center + half)


def pivot_terms(terms: Sequence[Term]) -> tuple[Term, ...]:
    """The terms the pivot runs on: a seed term whose estimate is implausibly small for the
    per-item noise it holds becomes that noise, known (a tie of 0/1 seed means); any other
    seed term is its own estimate with its df, an exact t under normal scores
    (evsys.conclusion.known_noise has the rule and its level)."""
    return tuple(_tested(t) for t in terms)


def _tested(t: Term) -> Term:
    if t.floor <= 0:
        return t
    if t.plus <= 0 or t.df <= 0 or t.plus < floor_ratio(t.df) * t.floor:
        return Term(t.floor, math.inf)
    return t._replace(floor=0.0)


def _tail_quantile(sd: np.ndarray, weights: np.ndarray, target: float, h: float) -> float:
    """The h > 0 where the pivot's tail sum(w * Phi(-h / sd)) equals target: Newton's method
    kept inside a bracket that every step narrows (the tail is decreasing and convex in h, so
    it converges in a few steps where a bracketing root finder needs a dozen tails)."""
    lo, hi = 0.0, math.inf
    for _ in range(200):
        r = h / sd
        gap = float(np.dot(weights, special.ndtr(-r))) - target
        lo, hi = (h, hi) if gap > 0 else (lo, h)
        slope = -float(np.dot(weights, np.exp(-0.5 * r * r) / sd)) / math.sqrt(2 * math.pi)
        step = h - gap / slope if slope < 0 else math.nan
        if hi == math.inf:  # heavy tails at 2 seeds: t_1 needs ~12.7 se
            new = step if step > h else 4.0 * h
        else:
            new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(new - h) <= 1e-12 * h:
            return new
        h = new
    return h


@lru_cache(maxsize=4096)
def _pivot_sd(terms: tuple[Term, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """The pivot's sqrt(V) where V > 0 with their weights, and the weight of V = 0 (computed
    once per set of terms: an interval evaluates the tail a dozen times)."""
    vs, weights = _pivot_variances(terms)
    positive = vs > 0
    return np.sqrt(vs[positive]), weights[positive], float(weights[~positive].sum())


@lru_cache(maxsize=4096)
def _pivot_variances(terms: tuple[Term, ...]) -> tuple[np.ndarray, np.ndarray]:
    """V and its weights on a product grid over the pivot: each estimated term becomes
    max(floor, plus * df / chi2_df - minus); terms with df >= KNOWN_DF count as known. The grid is
    uniform on the probit scale (trapezoid rule against normal weights), so the far tails
    that decide p-values of 0.001 at 2 seeds are resolved, not lumped into one quantile."""
    random = [t for t in terms if t.plus > 0 and t.df < KNOWN_DF]
    fixed = [t for t in terms if t not in random]
    known = math.fsum(t.value for t in fixed)
    vs, weights = np.array([known]), np.array([1.0])
    n = GRID.get(len(random), 12)
    for t in random:
        w, wt = _chi2_grid(n, t.df)
        term = np.maximum(t.floor, t.plus / w - t.minus)
        vs = (vs[:, None] + term[None, :]).ravel()
        weights = (weights[:, None] * wt[None, :]).ravel()
    return vs, weights


@lru_cache(maxsize=256)
def _chi2_grid(n: int, df: float) -> tuple[np.ndarray, np.ndarray]:
    """chi2_df / df at n points uniform in z in [-PROBIT, PROBIT] (u = Phi(z)), and weights."""
    z = np.linspace(-PROBIT, PROBIT, n)
    weights = stats.norm.pdf(z)
    w = stats.chi2.ppf(special.ndtr(z), df) / df
    w = np.where(z < -5.0, stats.chi2.isf(special.ndtr(-z), df) / df, w)  # ppf loses digits
    return w, weights / weights.sum()


# ------------------------------------------------------------------------------------- power
def mde(
    components: VarianceComponents,
    n_seeds: int | None = None,
    alpha: float = ALPHA,
    power: float = 0.8,
) -> float:
    """Minimum detectable effect (two-sided level alpha, given power) of the design the
    components came from, or of the same design with `n_seeds` seeds per arm. Normal-t
    approximation with Satterthwaite df (the test itself uses the pivot)."""
    var, df = components.variance(n_seeds), components.df(n_seeds)
    if not math.isfinite(df):
        df = 1e9
    q = float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))
    return q * math.sqrt(var)


def mde_range(
    components: VarianceComponents,
    n_seeds: int | None = None,
    alpha: float = ALPHA,
    power: float = 0.8,
    level: float = 0.95,
) -> Bounds:
    """How uncertain mde() is: the minimum detectable effect were the variance known and at
    the (1 - level) / 2 and (1 + level) / 2 points of its pivot (from 2-5 seeds these are
    far apart: the variance behind the mde is itself an estimate on a few df)."""
    vs, weights = _pivot_variances(tuple(components.terms(n_seeds)))
    order = np.argsort(vs)
    cumulative = np.cumsum(weights[order])
    tail = (1 - level) / 2
    lo, hi = (vs[order][min(np.searchsorted(cumulative, q), len(vs) - 1)] for q in (tail, 1 - tail))
    q = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return q * math.sqrt(lo), q * math.sqrt(hi)


def seeds_needed(
    components: VarianceComponents,
    effect: float,
    alpha: float = ALPHA,
    power: float = 0.8,
    max_seeds: int = 1000,
) -> int | None:
    """Fewest seeds per arm whose minimum detectable effect is <= `effect`; None when even
    `max_seeds` are not enough (the item term does not shrink with seeds: more items then)."""
    if effect <= 0:
        raise ValueError("effect must be positive")
    lo = 2
    if mde(components, max_seeds, alpha, power) > effect:
        return None
    hi = max_seeds
    while lo < hi:  # mde decreases with seeds
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mde(components, mid, alpha, power) <= effect else (mid + 1, hi)
    return lo
