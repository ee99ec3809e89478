"""The verdict on a hypothesis from several arms: preregistered (a prediction) or exploratory.

Pure: arms' scores in (evsys.conclusion.inference.ArmScores), a Decision out; the two families
on their own: versus_baseline (every arm vs a baseline) and best_versus_others. Rules, with
m = max(min_effect, 0), alpha = 0.05, each comparison oriented so positive is better, and
p_above / p_below the p-values of "diff > m" / "diff < m" (doubled one-sided, so p < alpha is
the 95% interval lying above / below m):

- Prediction `better` than `than` (one arm): one planned comparison, no correction.
  supported: p_above < alpha; refuted: p_below < alpha; else inconclusive.
- Prediction `better` than "all": an intersection-union claim (Berger 1982): supported when
  every comparison of `better` with another arm has p_above < alpha (raw: the conjunction
  needs no correction; Holm-adjusted ones would only be stricter);
  refuted when any Holm-adjusted p_below < alpha; else inconclusive.
- Exploratory, baseline set: every other arm vs the baseline is one Holm family (the best is
  picked from it, so its test must survive the family's correction). supported when the best
  arm's Holm-adjusted p_above < alpha; refuted when every arm has p_below < alpha (no arm
  beats the baseline by m: intersection-union again); else inconclusive. A baseline split by
  matrix axes is a mapping {arm: the baseline's arm in the same cell}: each arm is compared
  with its own cell's baseline, all of them still one family.
- Exploratory, no baseline: the best arm vs every other arm. supported when all p_above <
  alpha. Picking the best on the same data does not inflate this: a false claim needs the
  selected arm to beat a truly-best arm significantly, and the natural procedure keeps that
  error at alpha (Gutmann & Maymin 1987; Hsu 1996, ch. 4); the A/A sweeps in the tests check
  it. refuted when some Holm-adjusted p_below < alpha (an arm is confidently within m of the
  best; only possible when m > 0); else inconclusive.

Seed variance: when every arm ran the same seeds (3 or more arms), the claims that one arm
beats every other arm pool it over the arms (evsys.conclusion.arms.SeedPool: (k - 1)(n - 1)
df, assuming every pair's seed differences vary alike); the baseline family and a single
named rival keep each pair's own (one arm with a larger seed variance would bias every
comparison with the baseline alike). `pool_seeds` overrides this; docs/statistics.md has why.

A surprise is another arm significantly better than the predicted one (Holm over the other
arms vs the predicted arm); it is reported and never turns a prediction into supported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from evsys.conclusion.inference import (
    ALPHA,
    POOLED,
    WELCH,
    ArmScores,
    Bounds,
    Comparison,
    FamilyTest,
    SeedPool,
    compare,
    family,
    orientation,
    seed_pool,
)
from evsys.conclusion.pairing import SeedLinks, all_linked, paired_by_seed
from evsys.plural import count

ALL = "all"


@dataclass(frozen=True)
class Prediction:
    """A preregistered prediction: arm `better` beats arm `than` (or every other arm: "all")."""

    better: str
    than: str = ALL

    @classmethod
    def of(cls, value: Prediction | Mapping[str, str] | None) -> Prediction | None:
        if value is None or isinstance(value, Prediction):
            return value
        return cls(str(value["better"]), str(value.get("than", ALL)))


@dataclass(frozen=True)
class Decision:
    """The verdict and everything needed to explain it."""

    verdict: str  # supported | refuted | inconclusive
    kind: str  # "preregistered" or "exploratory"
    claim: str  # what supported would mean, in words
    reason: str  # one sentence: the verdict and the numbers behind it
    ranking: tuple[str, ...]  # arms by mean, best first
    best: str | None
    tests: tuple[FamilyTest, ...]  # the comparisons the verdict rests on, raw and Holm p
    surprises: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # fallbacks and caveats of the comparisons
    basis: Basis | None = None  # the p-value the verdict rests on; None: nothing was tested


@dataclass(frozen=True)
class Basis:
    """The one p-value a verdict rests on, and how it was taken."""

    name: str  # "p(> m)" or "p(< m)"
    p: float | None
    comparison: str
    how: str  # raw or Holm-adjusted, and the rule that makes it the deciding one

    def text(self) -> str:
        return f"{self.name} = {_p(self.p)} of {self.comparison} ({self.how})"


def decide(
    arms: Sequence[ArmScores],
    mode: str = "max",
    min_effect: float = 0.0,
    baseline: str | Mapping[str, str] | None = None,
    prediction: Prediction | Mapping[str, str] | None = None,
    bounds: Bounds | None = None,
    pair_seeds: bool | SeedLinks = True,
    pool_seeds: bool | None = None,
) -> Decision:
    """The verdict by the rules in the module docstring; `pair_seeds` as in compare(), or the
    design's seed links (evsys.conclusion.pairing: pair only arms whose seeds match).
    `pool_seeds`: pool the seed variance over the arms when all of them ran the same seeds
    (3 or more arms; evsys.conclusion.arms); None (auto) pools for the claims that one arm
    beats every other arm and not for the baseline family or one named rival."""
    pred = Prediction.of(prediction)
    if pool_seeds is None:
        pool_seeds = pred.than == ALL if pred is not None else baseline is None
    ctx = _context(arms, mode, min_effect, bounds, pair_seeds, pool_seeds)
    _check_names(ctx.arms, baseline, pred)
    if len(ctx.ranking) < 2:
        return ctx.nothing_to_compare()
    if pred is not None:
        return _preregistered(ctx, pred)
    if baseline is not None:
        return _exploratory_baseline(ctx, baseline)
    return _exploratory_best(ctx)


def versus_baseline(
    arms: Sequence[ArmScores],
    baseline: str,
    mode: str = "max",
    min_effect: float = 0.0,
    bounds: Bounds | None = None,
    pair_seeds: bool | SeedLinks = True,
    pool_seeds: bool = False,
) -> list[FamilyTest]:
    """Every other arm vs the baseline, best first: one Holm family (FWER over k - 1); not
    pooled by default (as decide's auto)."""
    ctx = _context(arms, mode, min_effect, bounds, pair_seeds, pool_seeds)
    _check_names(ctx.arms, baseline, None)
    return ctx.tests([(a, baseline) for a in ctx.ranking if a != baseline])


def best_versus_others(
    arms: Sequence[ArmScores],
    mode: str = "max",
    min_effect: float = 0.0,
    bounds: Bounds | None = None,
    pair_seeds: bool | SeedLinks = True,
    pool_seeds: bool = True,
) -> list[FamilyTest]:
    """The best arm (by mean) vs every other arm. "The best beats all" holds when every
    raw p_above < alpha (intersection-union: no correction): see the module docstring for why
    picking the best on the same data does not inflate that."""
    ctx = _context(arms, mode, min_effect, bounds, pair_seeds, pool_seeds)
    return ctx.tests([(ctx.ranking[0], a) for a in ctx.ranking[1:]])


def _context(arms, mode, min_effect, bounds, pair_seeds, pool_seeds) -> _Context:
    by_name = {a.arm: a for a in arms}
    if len(by_name) != len(arms):
        raise ValueError("arm names must be unique")
    sign = orientation(mode)
    ranking = tuple(sorted(by_name, key=lambda a: -sign * by_name[a].mean))
    pool = seed_pool(list(arms)) if pool_seeds and all_linked(pair_seeds, list(by_name)) else None
    m = max(float(min_effect), 0.0)
    return _Context(by_name, mode, m, bounds, ranking, pair_seeds, pool)


@dataclass(frozen=True)
class _Context:
    arms: Mapping[str, ArmScores]
    mode: str
    m: float
    bounds: Bounds | None
    ranking: tuple[str, ...]
    pair_seeds: bool | SeedLinks = True
    pool: SeedPool | None = None  # the arms' pooled seed variance, when the design allows it

    def tests(self, pairs: Sequence[tuple[str, str]]) -> list[FamilyTest]:
        arms, links, how = self.arms, self.pair_seeds, (self.mode, self.bounds)
        pair = [(arms[a], arms[b], *how, paired_by_seed(links, a, b), self.pool) for a, b in pairs]
        return family([compare(*args) for args in pair], self.m)

    def decision(self, verdict, kind, claim, reason, tests, surprises=(), basis=None) -> Decision:
        best = self.ranking[0] if self.ranking else None
        return Decision(
            verdict=verdict,
            kind=kind,
            claim=claim,
            reason=reason,
            ranking=self.ranking,
            best=best,
            tests=tuple(tests),
            surprises=tuple(surprises),
            notes=_notes(tests, self.pool),
            basis=basis,
        )

    def nothing_to_compare(self) -> Decision:
        only = ", ".join(self.ranking) or "no arm"
        reason = f"inconclusive: nothing to compare, only {only}"
        return self.decision("inconclusive", "exploratory", "", reason, [])

    def effect(self) -> str:
        return f" by at least {_num(self.m)}" if self.m > 0 else ""


def _check_names(arms: Mapping, baseline, pred: Prediction | None) -> None:
    named = [baseline] if isinstance(baseline, str) else sorted(set((baseline or {}).values()))
    if pred is not None:
        named += [pred.better] + ([] if pred.than == ALL else [pred.than])
    unknown = [n for n in named if n not in arms]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; arms are {sorted(arms)}")
    if pred is not None and pred.better == pred.than:
        raise ValueError("a prediction compares two different arms")


# ----------------------------------------------------------------------------- preregistered
def _preregistered(ctx: _Context, pred: Prediction) -> Decision:
    x = pred.better
    others = [a for a in ctx.ranking if a != x]
    targets = others if pred.than == ALL else [pred.than]
    tests = ctx.tests([(x, y) for y in targets])
    against = "every other arm" if pred.than == ALL else pred.than
    claim = f"{x} beats {against}{ctx.effect()} (preregistered)"
    surprises = _surprises(ctx, x, others)
    rule = _all_above(tests, ctx.m) if pred.than == ALL else single_comparison(tests[0], ctx.m)
    verdict, why, basis = rule
    reason = f"{verdict}: the prediction that {x} beats {against}{ctx.effect()}: {why}"
    return ctx.decision(verdict, "preregistered", claim, reason, tests, surprises, basis)


def _surprises(ctx: _Context, x: str, others: Sequence[str]) -> list[str]:
    """Other arms that beat the predicted one (Holm over all of them, against 0)."""
    out = []
    for t in family([c.comparison for c in ctx.tests([(z, x) for z in others])], 0.0):
        c = t.comparison
        if c.diff > 0 and t.p_holm is not None and t.p_holm < ALPHA:
            out.append(
                f"surprise: {c.first} beats the predicted {x} by {_num(c.diff)} "
                f"(95% CI {_ci(c)}, p={_p(t.p_raw)}, Holm p={_p(t.p_holm)})"
            )
    return out


def single_comparison(t: FamilyTest, m: float) -> tuple[str, str, Basis | None]:
    c, how = t.comparison, "raw: one planned comparison, no correction"
    if t.p_above is None:
        return "inconclusive", _untestable(c), None
    if t.p_above < ALPHA:
        why = f"{_diff_text(c)} lies above {_margin(m)}, {_above(m)}={_p(t.p_above)}"
        return "supported", why, Basis(_above(m), t.p_above, c.name, how)
    if t.p_below is not None and t.p_below < ALPHA:
        why = f"{_diff_text(c)} lies below {_margin(m)}, {_below(m)}={_p(t.p_below)}"
        return "refuted", why, Basis(_below(m), t.p_below, c.name, how)
    why = f"{_diff_text(c)} contains {_margin(m)}, {_above(m)}={_p(t.p_above)}"
    return "inconclusive", why, Basis(_above(m), t.p_above, c.name, how)


def _all_above(tests: Sequence[FamilyTest], m: float) -> tuple[str, str, Basis | None]:
    """Intersection-union: every comparison must be above m; one confidently below refutes."""
    below = [t for t in tests if t.p_below_holm is not None and t.p_below_holm < ALPHA]
    if below:
        t = min(below, key=lambda t: t.p_below_holm)
        how = f"Holm-adjusted over {count(len(tests), 'comparison')}: one below refutes"
        why = f"against {t.comparison.second} {_diff_text(t.comparison)} " + (
            f"lies below {_margin(m)} (Holm {_below(m)}={_p(t.p_below_holm)})"
        )
        return "refuted", why, Basis(_below(m), t.p_below_holm, t.comparison.name, how)
    weakest = max(tests, key=lambda t: 1.0 if t.p_above is None else t.p_above)
    c = weakest.comparison
    if weakest.p_above is None:
        return "inconclusive", _untestable(c), None
    how = "raw: the only comparison"
    if len(tests) > 1:
        how = (
            f"raw, the largest of the {len(tests)} comparisons: every one must be below "
            f"{ALPHA:g}, an intersection-union test that needs no correction"
        )
    basis = Basis(_above(m), weakest.p_above, c.name, how)
    if weakest.p_above < ALPHA:
        return (
            "supported",
            (
                f"all {len(tests)} comparisons hold, the weakest against {c.second}: "
                f"{_diff_text(c)}, {_above(m)}={_p(weakest.p_above)}"
            ),
            basis,
        )
    why = f"against {c.second} {_diff_text(c)} contains {_margin(m)}, {_above(m)}="
    return "inconclusive", why + _p(weakest.p_above), basis


# ------------------------------------------------------------------------------- exploratory
def _exploratory_baseline(ctx: _Context, baseline: str | Mapping[str, str]) -> Decision:
    of = baseline if not isinstance(baseline, str) else dict.fromkeys(ctx.ranking, baseline)
    pairs = [(a, of[a]) for a in ctx.ranking if of.get(a, a) != a and of[a] in ctx.arms]
    if not pairs:  # every completed arm is a baseline (of its cell)
        return ctx.nothing_to_compare()
    tests = ctx.tests(pairs)
    # ranking order: the best non-baseline arm first; across cells, the one furthest ahead of
    # its own baseline (the best arm overall may lead only because its cell is easier)
    best = tests[0] if isinstance(baseline, str) else max(tests, key=lambda t: t.comparison.diff)
    c = best.comparison
    if not isinstance(baseline, str):
        baseline = "of its matrix cell"
    claim = f"the best arm beats the baseline {baseline}{ctx.effect()} (exploratory)"
    how = f"Holm-adjusted over the {count(len(tests), 'arm')} compared with the baseline"
    basis = Basis(_above(ctx.m), best.p_above_holm, c.name, how)
    if best.p_above_holm is None:
        verdict, why, basis = "inconclusive", _untestable(c), None
    elif best.p_above_holm < ALPHA:
        verdict = "supported"
        why = (
            f"{c.first}: {_diff_text(c)} lies above {_margin(ctx.m)}, "
            f"Holm {_above(ctx.m)}={_p(best.p_above_holm)} over {count(len(tests), 'arm')}"
        )
    elif all(t.p_below is not None and t.p_below < ALPHA for t in tests):
        verdict = "refuted"
        why = f"every arm's interval lies below {_margin(ctx.m)}; the best, {c.first}: " + (
            _diff_text(c)
        )
        weakest = max(tests, key=lambda t: t.p_below)
        how = f"raw, the largest of the {len(tests)}: every arm must lie below (intersection-union)"
        basis = Basis(_below(ctx.m), weakest.p_below, weakest.comparison.name, how)
    else:
        verdict = "inconclusive"
        why = (
            f"the best, {c.first}: {_diff_text(c)}, Holm {_above(ctx.m)}={_p(best.p_above_holm)} "
            f"over {count(len(tests), 'arm')}"
        )
    reason = f"{verdict} (exploratory): does an arm beat the baseline {baseline}? {why}"
    return ctx.decision(verdict, "exploratory", claim, reason, tests, (), basis)


def _exploratory_best(ctx: _Context) -> Decision:
    best = ctx.ranking[0]
    tests = ctx.tests([(best, a) for a in ctx.ranking[1:]])
    claim = f"the best arm beats every other arm{ctx.effect()} (exploratory)"
    verdict, why, basis = _all_above(tests, ctx.m)
    reason = f"{verdict} (exploratory): is {best}, the best arm, ahead of all others? {why}"
    return ctx.decision(verdict, "exploratory", claim, reason, tests, (), basis)


# ---------------------------------------------------------------------------------- wording
def _notes(tests: Sequence[FamilyTest], pool: SeedPool | None) -> tuple[str, ...]:
    pooled = pool is not None and any(t.comparison.method == POOLED for t in tests)
    notes = [pool.note()] if pooled else []
    for t in tests:
        c = t.comparison
        if c.method == WELCH:
            notes.append(f"{c.name}: item sampling not accounted for ({', '.join(c.notes)})")
        else:
            notes.extend(f"{c.name}: {n}" for n in c.notes)
    return tuple(dict.fromkeys(notes))


def _above(m: float) -> str:
    return f"p(> {_num(m)})"


def _below(m: float) -> str:
    return f"p(< {_num(m)})"


def _margin(m: float) -> str:
    return f"the minimum effect {_num(m)}" if m > 0 else "0"


def _untestable(c: Comparison) -> str:
    return f"{c.name} cannot be tested ({'; '.join(c.notes) or 'no variance estimate'})"


def _diff_text(c: Comparison) -> str:
    n = f"{c.n_seeds[0]} vs {c.n_seeds[1]} seeds"
    if c.n_seeds[0] == c.n_seeds[1]:
        n = count(c.n_seeds[0], "seed")
    items = f", {count(c.n_items, 'item')}" if c.n_items else ""
    return f"the difference {_num(c.diff)} (95% CI {_ci(c)}; {n}{items})"


def _ci(c: Comparison) -> str:
    return "none" if c.ci95 is None else f"[{_num(c.ci95[0])}, {_num(c.ci95[1])}]"


def _num(x: float) -> str:
    return f"{x:.4g}"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"
