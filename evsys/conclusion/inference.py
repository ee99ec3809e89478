"""Verdict statistics: intervals and tests of arms scored per seed and per item.

Pure functions over numpy arrays: no files, no evsys imports but evsys.conclusion.variance (the
variance terms and their pivot) and evsys.conclusion.arms (ArmScores, the seed pool);
deterministic (no resampling). docs/statistics.md explains the choices and shows the
calibration tables.

API (the integrator wires these in; `evsys.conclusion.decision` holds the verdict on top):

    ArmScores(arm, seeds, values, items=None)   one arm: values[s, i] = score of seed s on item i;
                                                items=None means seed-level values only (seeds x 1)
    ArmScores.from_items(arm, {seed: {item: score}}) / ArmScores.seed_level(arm, {seed: value})
    arm_interval(arm, bounds=None) -> Interval  the arm's mean with a 95% interval
    compare(first, second, mode, bounds, pair_seeds=True, pool=None) -> Comparison
                                                oriented difference, interval, p-value
    seed_pool(arms) -> SeedPool | None          the seed variance pooled over arms that ran
                                                the same seeds (evsys.conclusion.arms)
    p_greater(c, margin) / p_less(c, margin)    p-values of "diff > margin" / "diff < margin"
    holm(p_values) -> adjusted p-values         Holm (1979) step-down, FWER
    family(comparisons, margin) -> FamilyTest per comparison: raw and Holm-adjusted p-values
    mde(components, ...) / seeds_needed(components, effect, ...)   power at 80%, alpha 0.05

Model. A score is y[a, s, i] = mu_a + u[a, s] + b_i + c[a, i] + e[a, s, i]: seeds s and items i
are both random samples (two-way crossed random effects). The difference of two arms' grand
means then varies with the seeds drawn AND with the items drawn (c: an arm is better on some
items). Its variance is a sum of independent terms,

    V = sum over seed sets of seed_var / n_seeds  +  item_var / n_items

- seed_var: the variance over seeds of a seed's mean score (of the per-seed differences when
  both arms ran the same seeds: pairing by seed cancels what a seed does to both arms; two
  seed sets make one term with Welch's df). It holds the per-item noise e too, so it is
  right with no estimate of "the seed component" itself. From 2-5 seeds, 0/1 scores near 0
  or 1 tie exactly often enough that an estimate of 0 is not knowledge: when the estimate is
  implausibly far below that noise (the residual mean square / n_items, known from hundreds
  of df), the test takes the noise itself, known (evsys.conclusion.known_noise; a
  preliminary test whose level is kept at every ratio of seed variance to noise).
- item_var: the arm-by-item interaction, from the ANOVA mean squares of the items minus their
  residual (pairing by item cancels the items' difficulty b_i). With zero seed variance this
  term still carries the uncertainty: 1/256 vs 0/256 on every seed is not a difference.

Tests and intervals use the generalized pivotal quantity of V (Tsui & Weerahandi 1989): each
estimated term v with df k stands for v * k / chi2_k, and the p-value is the normal tail
averaged over those chi-squares on a fixed grid (deterministic). With one seed term and no
item term this is exactly Student's t; it stays calibrated at 2-5 seeds where Student's t with
Satterthwaite's df (estimated from the same few seeds) is anti-conservative (up to ~10% at
alpha 0.05, see the docs).

Conventions (as evsys.statistics): a difference is oriented so positive means `first` is
better; p-values are two-sided; 95% intervals are equal-tailed and clipped to the declared
bounds (clipping keeps the interval's duality with the test: it excludes a value inside the
bounds exactly when the test rejects it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from evsys.conclusion.arms import ArmScores, SeedPool, seed_pool
from evsys.conclusion.few_items import (
    binary,
    effective_trials,
    least_difference_variance,
    uses_wilson,
    wilson_interval,
)
from evsys.conclusion.variance import (
    ALPHA,
    Bounds,
    VarianceComponents,
    components_of,
    mde,
    pivot_interval,
    pivot_tail,
    residual_ms,
    seed_components,
    seeds_needed,
)

__all__ = [  # the API, with what evsys.conclusion.variance contributes to it
    "ALPHA",
    "ArmScores",
    "Bounds",
    "Comparison",
    "FamilyTest",
    "Interval",
    "SeedPool",
    "VarianceComponents",
    "arm_interval",
    "compare",
    "family",
    "holm",
    "mde",
    "orientation",
    "p_greater",
    "p_less",
    "seed_pool",
    "seeds_needed",
]

MODES = ("max", "min")
PAIRED, POOLED, UNPAIRED, WELCH, ONE_ARM, WILSON = (
    "paired_seeds_items",
    "paired_pooled_seeds_items",
    "unpaired_seeds_items",
    "welch_seed_means",
    "seeds_items",
    "wilson_seeds_items",
)


@dataclass(frozen=True)
class Interval:
    """An arm's mean with its 95% interval."""

    arm: str
    mean: float
    ci95: Bounds | None  # None when the seed-to-seed variance cannot be estimated (1 seed)
    se: float | None
    method: str  # ONE_ARM (seeds x items), WILSON (0/1 share, few items) or WELCH (seed means)
    n_seeds: int
    n_items: int | None
    clipped: bool = False  # the interval reached a declared bound
    components: VarianceComponents | None = None
    effective_trials: float | None = None  # WILSON's n_eff (evsys.conclusion.few_items)


@dataclass(frozen=True)
class Comparison:
    """`first` minus `second`, oriented so that positive means `first` is better."""

    first: str
    second: str
    diff: float
    ci95: Bounds | None  # None when a seed variance cannot be estimated
    p_value: float | None  # two-sided, H0: diff = 0
    se: float | None
    df: float | None  # Satterthwaite df, for reading only (the test uses the pivot)
    method: str  # PAIRED, UNPAIRED or WELCH
    n_seeds: tuple[int, int]
    n_items: int | None  # items both arms scored; None for WELCH
    paired: bool  # paired by seed (by item too unless WELCH)
    components: VarianceComponents | None = None
    clipped: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.first} vs {self.second}"


@dataclass(frozen=True)
class FamilyTest:
    """One comparison of a family with raw and Holm-adjusted p-values: against 0 (two-sided),
    and the directional ones against the margin (doubled one-sided, so level alpha matches the
    95% interval: p_above < alpha <=> lower bound > margin)."""

    comparison: Comparison
    p_raw: float | None
    p_holm: float | None
    p_above: float | None  # evidence that diff > margin
    p_above_holm: float | None
    p_below: float | None  # evidence that diff < margin
    p_below_holm: float | None


# ------------------------------------------------------------------------- one arm, two arms
def arm_interval(arm: ArmScores, bounds: Bounds | None = None) -> Interval:
    """The arm's mean with a 95% interval over seeds and items (a t interval over seed means
    when the arm has no per-item scores; Wilson's on the effective trials for a 0/1 share on
    fewer than FEW_ITEMS items, evsys.conclusion.few_items)."""
    n_seeds, n_items = arm.values.shape
    method = ONE_ARM if arm.has_items and n_items > 1 else WELCH
    comps = components_of(arm.values) if method == ONE_ARM else seed_components([arm.values])
    mean = arm.mean
    if n_seeds < 2:
        return Interval(arm.arm, mean, None, None, method, n_seeds, _items_or_none(arm))
    pivot = pivot_interval(mean, comps.terms())
    se = math.sqrt(comps.variance())
    if method == ONE_ARM and uses_wilson(arm.values, bounds):
        n_eff = effective_trials(arm.values, (pivot[1] - pivot[0]) / 2)
        ci = wilson_interval(mean, n_eff)
        return Interval(arm.arm, mean, ci, se, WILSON, n_seeds, n_items, False, comps, n_eff)
    ci, clipped = _clip(pivot, bounds)
    return Interval(arm.arm, mean, ci, se, method, n_seeds, _items_or_none(arm), clipped, comps)


def compare(
    first: ArmScores,
    second: ArmScores,
    mode: str = "max",
    bounds: Bounds | None = None,
    pair_seeds: bool = True,
    pool: SeedPool | None = None,
) -> Comparison:
    """The oriented difference of two arms' means: paired by item (and by seed when both ran
    the same seeds and pair_seeds), or Welch on seed means when either arm has no per-item
    scores. `bounds` are the metric's bounds; the difference's are (lo - hi, hi - lo).

    Pairing by seed removes what a seed does to both arms but leaves n - 1 df for the seed
    term instead of about 2(n - 1): it pays when same-seed runs are correlated enough
    (docs/statistics.md has the numbers); pair_seeds=False analyses them as independent.
    `pool` (seed_pool() of the family's arms) replaces the pair's own seed variance by the
    family's pooled one, with its (k - 1)(n - 1) df, when both arms are in it."""
    sign = orientation(mode)
    diff_bounds = None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])
    items, notes = _shared_items(first, second)
    if items is None:
        return _welch(first, second, sign, diff_bounds, notes)
    a, b = _columns(first, items), _columns(second, items)
    # 0/1 shares are never known to be exactly equal (evsys.conclusion.few_items)
    least = least_difference_variance(len(items)) if binary(a) and binary(b) else 0.0
    if first.seeds == second.seeds and pair_seeds:
        pool = pool if pool is not None and pool.covers(first, second) else None
        return _paired(first, second, sign * (a - b), diff_bounds, notes, pool, least)
    return _unpaired(first, second, sign * a, sign * b, diff_bounds, notes, least)


def _paired(first, second, d, bounds, notes, pool: SeedPool | None, least: float) -> Comparison:
    comps, method = replace(components_of(d), least=least), PAIRED
    if pool is not None:  # the family's seed variance, with (k - 1)(n - 1) df
        seeds = ((pool.seed_var(first.arm, second.arm), d.shape[0]),)
        comps, method = replace(comps, seed_terms=seeds, seed_pool=pool.n_arms - 1), POOLED
    return _comparison(first, second, float(d.mean()), comps, method, True, bounds, notes)


def _unpaired(first, second, a: np.ndarray, b: np.ndarray, bounds, notes, least) -> Comparison:
    # Seeds differ: each arm's seed term on its own; items still pair (item_var from the
    # per-item mean differences, minus the residual noise those means carry).
    seed = replace(seed_components([a, b]), least=least)
    resid = [residual_ms(x) for x in (a, b)]
    noise = math.fsum(r / x.shape[0] for r, x in zip(resid, (a, b), strict=True))
    item_var = max(0.0, float(np.var(a.mean(axis=0) - b.mean(axis=0), ddof=1)) - noise)
    comps = replace(seed, item_var=item_var, n_items=a.shape[1], item_noise=noise)
    diff = float(a.mean() - b.mean())
    why = "different seed sets" if first.seeds != second.seeds else "seeds not linked"
    notes = (*notes, f"{why}: not paired by seed")
    return _comparison(first, second, diff, comps, UNPAIRED, False, bounds, notes)


def _welch(first, second, sign: int, bounds, notes) -> Comparison:
    # The legacy fallback: seed means only, so item sampling is not accounted for.
    comps = seed_components([first.values, second.values])
    diff = sign * (first.mean - second.mean)
    notes = (*notes, "no per-item scores shared: Welch t-test on seed means")
    if min(len(first.seeds), len(second.seeds)) < 2:
        return _untested(first, second, diff, comps, WELCH, False, notes)
    se, df = math.sqrt(comps.variance()), comps.df()
    if se == 0.0:  # no spread at all: the difference is exact
        ci, p = (diff, diff), (0.0 if diff != 0 else 1.0)
    else:
        half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
        ci, p = (diff - half, diff + half), float(2 * stats.t.sf(abs(diff) / se, df))
    return _tested(first, second, diff, comps, (WELCH, False), notes, (ci, p), bounds)


def _comparison(first, second, diff, comps, method, paired, bounds, notes) -> Comparison:
    if min(len(first.seeds), len(second.seeds)) < 2:
        return _untested(first, second, diff, comps, method, paired, notes)
    terms = comps.terms()
    ci, p = pivot_interval(diff, terms), min(1.0, 2 * pivot_tail(abs(diff), terms))
    return _tested(first, second, diff, comps, (method, paired), notes, (ci, p), bounds)


def _tested(first, second, diff, comps, how, notes, ci_p, bounds) -> Comparison:
    (method, paired), (ci, p) = how, ci_p
    ci, clipped = _clip(ci, bounds)
    return Comparison(
        first=first.arm,
        second=second.arm,
        diff=diff,
        ci95=ci,
        p_value=p,
        se=math.sqrt(comps.variance()),
        df=comps.df(),
        method=method,
        n_seeds=(len(first.seeds), len(second.seeds)),
        n_items=comps.n_items,
        paired=paired,
        components=comps,
        clipped=clipped,
        notes=tuple(notes),
    )


def _untested(first, second, diff, comps, method, paired, notes) -> Comparison:
    # one seed: the seed-to-seed variance is unknown, not zero
    notes = (*notes, "one seed: the seed-to-seed variance is unknown, so there is no test")
    tested = _tested(first, second, diff, comps, (method, paired), notes, ((0, 0), 0), None)
    return replace(tested, ci95=None, p_value=None, se=None, df=None)


def p_greater(c: Comparison, margin: float = 0.0) -> float | None:
    """p-value of "diff > margin" (doubled one-sided: < alpha iff the 95% lower bound > margin)."""
    return _directional(c, c.diff - margin)


def p_less(c: Comparison, margin: float = 0.0) -> float | None:
    """p-value of "diff < margin" (doubled one-sided: < alpha iff the 95% upper bound < margin)."""
    return _directional(c, margin - c.diff)


def _directional(c: Comparison, excess: float) -> float | None:
    if c.p_value is None or c.components is None:
        return None
    if c.method == WELCH:  # Student t with Welch's df, as the fallback's interval
        se, df = c.se or 0.0, c.df or 1.0
        if se == 0.0:
            return 0.0 if excess > 0 else 1.0
        return min(1.0, float(2 * stats.t.sf(excess / se, df)))
    return min(1.0, 2 * pivot_tail(excess, c.components.terms()))


# ------------------------------------------------------------------------------ multiplicity
def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm (1979) adjusted p-values (FWER); None (untestable) counts as 1 and stays None."""
    ps = [1.0 if p is None else float(p) for p in p_values]
    order = sorted(range(len(ps)), key=lambda j: ps[j])
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, j in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[j]))
        adjusted[j] = running
    return [None if p is None else a for p, a in zip(p_values, adjusted, strict=True)]


def family(comparisons: Sequence[Comparison], margin: float = 0.0) -> list[FamilyTest]:
    """Raw and Holm-adjusted p-values of a family of comparisons, against 0 and, in each
    direction, against `margin` (the minimum effect)."""
    raw = [c.p_value for c in comparisons]
    above = [p_greater(c, margin) for c in comparisons]
    below = [p_less(c, margin) for c in comparisons]
    cols = zip(raw, holm(raw), above, holm(above), below, holm(below), strict=True)
    return [FamilyTest(c, *col) for c, col in zip(comparisons, cols, strict=True)]


def orientation(mode: str) -> int:
    """+1 when the metric is maximised, -1 when minimised: sign * (a - b) > 0 means a is better."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return 1 if mode == "max" else -1


# ------------------------------------------------------------------------------------ helpers
def _shared_items(first: ArmScores, second: ArmScores) -> tuple[list[str] | None, tuple]:
    if not (first.has_items and second.has_items):
        return None, ()
    theirs = set(second.items or ())
    shared = [i for i in first.items or () if i in theirs]
    if len(shared) < 2:
        return None, (f"{first.arm} and {second.arm} share {len(shared)} scored items",)
    if len(shared) < max(len(first.items or ()), len(second.items or ())):
        return shared, (f"compared on the {len(shared)} items both arms scored",)
    return shared, ()


def _columns(arm: ArmScores, items: Sequence[str]) -> np.ndarray:
    index = {item: j for j, item in enumerate(arm.items or ())}
    return arm.values[:, [index[i] for i in items]]


def _items_or_none(arm: ArmScores) -> int | None:
    return arm.values.shape[1] if arm.has_items else None


def _clip(ci: Bounds, bounds: Bounds | None) -> tuple[Bounds, bool]:
    if bounds is None:
        return ci, False
    lo, hi = max(ci[0], bounds[0]), min(ci[1], bounds[1])
    return (lo, hi), (lo, hi) != ci
