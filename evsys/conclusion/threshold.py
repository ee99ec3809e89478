"""A success metric's threshold: which arms reach it (at least it for a `max` metric, at most
it for a `min` one), and the verdict of a single run that states one.

Each arm is one test of its own mean against the threshold, with the interval machinery of
every comparison (evsys/conclusion/inference.py arm_interval: seeds x items when the runs left
per-item scores, Wilson's score test for a 0/1 share on few items, else a t interval over
seed means), doubled one-sided as the comparisons'
p_above / p_below, so p < alpha is exactly the 95% interval lying on one side of the
threshold. The arms form one Holm family ("which arms clear it" is k claims):

- clears: Holm-adjusted p_reach < alpha (the whole interval is on the good side);
- misses: Holm-adjusted p_miss < alpha (the whole interval is on the bad side);
- undecided: the interval straddles the threshold, or one seed (no seed variance) or less.

A single run's verdict is its arm's: supported / refuted / inconclusive for clears / misses /
undecided. Pure: ArmScores in, ThresholdResult (evsys/conclusion/model.py) out.
"""

from __future__ import annotations

from collections.abc import Sequence

from evsys.conclusion.few_items import wilson_tail
from evsys.conclusion.inference import (
    ALPHA,
    ArmScores,
    Bounds,
    Interval,
    arm_interval,
    holm,
    orientation,
)
from evsys.conclusion.model import ThresholdArm, ThresholdResult
from evsys.conclusion.variance import pivot_tail
from evsys.plural import count

CLEARS, MISSES, UNDECIDED = "clears", "misses", "undecided"
VERDICTS = {CLEARS: "supported", MISSES: "refuted", UNDECIDED: "inconclusive"}


def direction(mode: str) -> str:
    """How an arm reaches the threshold, in words: "at least" (max) or "at most" (min)."""
    return "at least" if orientation(mode) > 0 else "at most"


def threshold_result(
    arms: Sequence[ArmScores], threshold: float, mode: str, bounds: Bounds | None
) -> ThresholdResult:
    """Every arm tested against the threshold, in the given order, Holm over the arms."""
    sign = orientation(mode)
    intervals = [arm_interval(arm, bounds) for arm in arms]
    reach = [_p_side(i, threshold, sign) for i in intervals]
    miss = [_p_side(i, threshold, -sign) for i in intervals]
    rows = [
        _row(i, *ps) for i, *ps in zip(intervals, reach, holm(reach), miss, holm(miss), strict=True)
    ]
    clearing = [row.arm for row in rows if row.status == CLEARS]
    return ThresholdResult(threshold, direction(mode), rows, clearing)


def single_run_verdict(result: ThresholdResult) -> dict[str, str]:
    """verdict, kind, claim and reason of an experiment with one arm and a threshold."""
    (row,) = result.arms
    claim = f"{row.arm} reaches {result.direction} {_num(result.value)} (stated before the run)"
    verdict = VERDICTS[row.status]
    if row.ci95 is None:
        why = f"its mean {_num(row.mean)} has no interval ({row.n_seeds} seed: no test)"
    elif row.status == UNDECIDED:
        why = f"its {_interval_text(row)}: the interval contains {_num(result.value)}"
    else:  # the interval lies above the threshold when it clears "at least" or misses "at most"
        above = (row.status == CLEARS) == (result.direction == "at least")
        p = row.p_reach_holm if row.status == CLEARS else row.p_miss_holm
        side = "above" if above else "below"
        why = f"its {_interval_text(row)} lies {side} {_num(result.value)}, p={p:.2g}"
    reason = f"{verdict}: does {row.arm} reach {result.direction} {_num(result.value)}? {why}"
    return {"verdict": verdict, "kind": "preregistered", "claim": claim, "reason": reason}


def _p_side(interval: Interval, threshold: float, side: int) -> float | None:
    """p-value of "the arm's mean lies above (side +1) or below (side -1) the threshold"
    (doubled one-sided, as inference.p_greater), by the test its interval inverts; None
    without a seed variance estimate (one seed)."""
    if interval.ci95 is None or interval.components is None:
        return None
    if interval.effective_trials is not None:  # Wilson's interval: its score test
        tail = wilson_tail(interval.mean, interval.effective_trials, threshold, side)
    else:
        tail = pivot_tail(side * (interval.mean - threshold), interval.components.terms())
    return min(1.0, 2 * tail)


def _row(interval: Interval, p_reach, p_reach_holm, p_miss, p_miss_holm) -> ThresholdArm:
    status = UNDECIDED
    if p_reach_holm is not None and p_reach_holm < ALPHA:
        status = CLEARS
    elif p_miss_holm is not None and p_miss_holm < ALPHA:
        status = MISSES
    return ThresholdArm(
        arm=interval.arm,
        mean=interval.mean,
        ci95=list(interval.ci95) if interval.ci95 else None,
        n_seeds=interval.n_seeds,
        n_items=interval.n_items,
        p_reach=p_reach,
        p_reach_holm=p_reach_holm,
        p_miss=p_miss,
        p_miss_holm=p_miss_holm,
        status=status,
    )


def _interval_text(row: ThresholdArm) -> str:
    items = f", {count(row.n_items, 'item')}" if row.n_items else ""
    lo, hi = row.ci95 or (row.mean, row.mean)
    seeds = count(row.n_seeds, "seed")
    return f"mean {_num(row.mean)} (95% CI [{_num(lo)}, {_num(hi)}]; {seeds}{items})"


def _num(x: float) -> str:
    return f"{x:.4g}"
