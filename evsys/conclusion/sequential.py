"""Seeds until decided: a group-sequential design over planned looks, with alpha spending.

Pure functions. The design: a run plans looks at n_1 < ... < n_R seeds per arm; after each
look every still-open comparison of a fixed family (e.g. every arm vs the baseline, or the
prediction) is tested, and a comparison is decided once its p-value against the minimum effect
(two-sided, H0: diff = m; the sign says supported or refuted) falls below the look's nominal
level. The nominal levels come from Lan & DeMets (1983) spending with the O'Brien-Fleming-type
function alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)) over the information fraction
t = n_r / n_R, so early looks spend almost nothing and the last look is tested near alpha.
Boundaries are computed exactly for Brownian-motion statistics by recursive numerical
integration (Armitage, McPherson & Rowe 1969) and applied to the comparisons' p-values
("nominal p-value" use, Jennison & Turnbull 2000, ch. 3), which the tests check by
simulation at 2-5 seeds. Several comparisons share the error by Holm's step-down run inside
the sequential design (Maurer & Bretz 2013): at each look the open comparisons are ordered
by p and tested against the boundaries for alpha / (number still open), then
alpha / (one fewer), ...; a decided comparison stays decided.

A look at 2 seeds decides nothing: its seed term has 1 df, and on 0/1 scores two seeds tie
often enough that its p-values far in the tail (the 0.002 an early look needs) are several
times too small, while at 0.05 they are fine. Not testing at a look only lowers the error.

Why group-sequential rather than anytime-valid confidence sequences: at 2-5 seeds a
confidence sequence has to hold against every possible stopping time and is several times
wider; the number of looks here is small and known in advance, which is the case a spending
function is built for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

from evsys.conclusion.inference import ALPHA, Comparison, p_greater, p_less
from evsys.plural import count

MIN_DECISION_SEEDS = 3  # looks with fewer seeds decide nothing (see the module docstring)
STEP = 0.02  # grid step of the numerical integration (z units at full information)
HALF_WIDTH = 10.0


@dataclass(frozen=True)
class Look:
    """One planned look of a group-sequential design."""

    n_seeds: int
    information: float  # n_seeds / n_seeds at the last look
    spent: float  # cumulative alpha spent up to and including this look
    z: float  # two-sided boundary on the z scale
    nominal_alpha: float  # decide at this look when the two-sided p-value is <= this


@dataclass(frozen=True)
class SequentialStep:
    """What to do after a look."""

    look: int  # index into the planned looks, 0-based
    n_seeds: int
    status: dict[str, str]  # comparison name -> supported | refuted | undecided | inconclusive
    more_seeds: tuple[str, ...]  # arms in undecided comparisons (empty when stopping)
    stop: bool
    reason: str


def obrien_fleming_spent(t: float, alpha: float = ALPHA) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: alpha spent by information fraction t."""
    if t <= 0:
        return 0.0
    return float(2 * special.ndtr(-stats.norm.ppf(1 - alpha / 2) / math.sqrt(min(t, 1.0))))


def sequential_boundaries(looks: Sequence[int], alpha: float = ALPHA) -> tuple[Look, ...]:
    """Two-sided boundaries for looks at the given seed counts (increasing)."""
    looks = tuple(int(n) for n in looks)
    if not looks or any(b <= a for a, b in zip(looks, looks[1:], strict=False)) or looks[0] < 1:
        raise ValueError(f"looks must be increasing positive seed counts, got {looks}")
    return _boundaries(looks, float(alpha))


@lru_cache(maxsize=512)
def _boundaries(looks: tuple[int, ...], alpha: float) -> tuple[Look, ...]:
    info = [n / looks[-1] for n in looks]
    x = np.arange(-HALF_WIDTH, HALF_WIDTH + STEP / 2, STEP)
    density = None  # of the running sum S(t) = sqrt(t) Z(t) on x, still inside the bounds
    out, spent_before, t_before = [], 0.0, 0.0
    for n, t in zip(looks, info, strict=True):
        spent = obrien_fleming_spent(t, alpha)
        target = spent - spent_before
        sd = math.sqrt(t - t_before)
        if density is None:  # first look: S(t) ~ N(0, t)
            b = float(stats.norm.isf(target / 2)) * sd
        else:
            b = _crossing_bound(x, density, sd, target)
        z = b / math.sqrt(t)
        out.append(Look(n, t, spent, z, float(2 * special.ndtr(-z))))
        density = _next_density(x, density, sd, b)
        spent_before, t_before = spent, t
    return tuple(out)


def _crossing_bound(x: np.ndarray, density: np.ndarray, sd: float, target: float) -> float:
    """b with P(still inside before, |S| >= b now) = target."""

    def crossing(b: float) -> float:
        tails = special.ndtr((-b - x) / sd) + special.ndtr((x - b) / sd)
        return float(np.sum(density * tails) * STEP) - target

    if crossing(HALF_WIDTH) >= 0:  # nothing left to spend at this precision
        return HALF_WIDTH
    return optimize.brentq(crossing, 1e-9, HALF_WIDTH, xtol=1e-10)


def _next_density(x: np.ndarray, density: np.ndarray | None, sd: float, b: float) -> np.ndarray:
    if density is None:
        new = stats.norm.pdf(x / sd) / sd
    else:  # convolve with the increment's normal density
        kernel = stats.norm.pdf((x[:, None] - x[None, :]) / sd) / sd
        new = kernel @ density * STEP
    return np.where(np.abs(x) < b, new, 0.0)


def sequential_step(
    comparisons: Sequence[Comparison],
    looks: Sequence[int],
    look: int,
    min_effect: float = 0.0,
    decided: Mapping[str, str] | None = None,
    alpha: float = ALPHA,
) -> SequentialStep:
    """Decide the family's comparisons after look `look` (0-based) of the planned `looks`.

    `comparisons` are this look's (by name "first vs second"); `decided` holds the earlier
    looks' decisions (name -> supported/refuted), which stand and are not retested."""
    decided = dict(decided or {})
    m = max(float(min_effect), 0.0)
    names = list(dict.fromkeys([*decided, *(c.name for c in comparisons)]))
    status = {n: decided.get(n, "undecided") for n in names}
    open_ = sorted(
        (c for c in comparisons if c.name not in decided),
        key=lambda c: _p_against_margin(c, m),
    )
    n_rejected = len(decided)
    if int(looks[look]) < MIN_DECISION_SEEDS:
        open_ = []
    for c in open_:  # Holm step-down with spending boundaries at alpha / (number open)
        level = sequential_boundaries(looks, alpha / (len(names) - n_rejected))[look]
        if _p_against_margin(c, m) > level.nominal_alpha:
            break
        status[c.name] = "supported" if c.diff > m else "refuted"
        n_rejected += 1
    return _step(comparisons, looks, look, status)


def _step(comparisons, looks, look, status) -> SequentialStep:
    undecided = [n for n, s in status.items() if s == "undecided"]
    n_seeds = int(looks[look])
    if not undecided:
        return SequentialStep(look, n_seeds, status, (), True, "every comparison is decided")
    if look == len(looks) - 1:
        status = {n: ("inconclusive" if s == "undecided" else s) for n, s in status.items()}
        reason = (
            f"the last planned look ({count(n_seeds, 'seed')}): {len(undecided)} left inconclusive"
        )
        return SequentialStep(look, n_seeds, status, (), True, reason)
    arms = [a for c in comparisons if c.name in undecided for a in (c.first, c.second)]
    reason = f"{len(undecided)} undecided: {', '.join(undecided)}; next look {looks[look + 1]}"
    if n_seeds < MIN_DECISION_SEEDS:
        reason = f"a look at {count(n_seeds, 'seed')} decides nothing; " + reason
    return SequentialStep(look, n_seeds, status, tuple(dict.fromkeys(arms)), False, reason)


def _p_against_margin(c: Comparison, m: float) -> float:
    """Two-sided p-value of H0: diff = m (1 when the comparison cannot be tested)."""
    above, below = p_greater(c, m), p_less(c, m)
    if above is None or below is None:
        return 1.0
    return min(above, below)
