"""Planning the seed budget from the observed variance: the smallest effect each comparison
could have detected (80% power, two-sided 5%), and the seeds a target effect would need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evsys.conclusion.inference import FamilyTest
from evsys.conclusion.model import PowerRow
from evsys.conclusion.plan_decision import decide_plan
from evsys.conclusion.runs import collect_runs
from evsys.conclusion.scores import arm_scores
from evsys.conclusion.variance import mde, mde_range, seeds_needed
from evsys.records import Plan

POWER = 0.8


def power_summary(tests: Sequence[FamilyTest], target: float | None = None) -> list[PowerRow]:
    """Per comparison: its minimum detectable effect now and, for `target`, the seeds per arm
    it would need (None: more seeds alone would not do: the item term does not shrink)."""
    rows = []
    for test in tests:
        c = test.comparison
        if c.components is None:
            continue  # no variance estimate (one seed): nothing to plan from
        needed = seeds_needed(c.components, target, power=POWER) if target else None
        low, high = mde_range(c.components, power=POWER)
        rows.append(
            PowerRow(
                comparison=c.name,
                n_seeds=min(c.n_seeds),
                mde=mde(c.components, power=POWER),
                target=target or None,
                seeds_needed=needed,
                mde_low=low,
                mde_high=high,
            )
        )
    return rows


def sweep_power(sweep_dir: Path, effect: float) -> list[PowerRow]:
    """power_summary of a sweep dir's verdict comparisons for a target `effect`."""
    plan = Plan.load(sweep_dir).compared()  # the selection stage; data orders are replicates
    runs = collect_runs(sweep_dir, plan)
    scores = arm_scores(runs["completed"])
    decision = decide_plan(plan, scores) if len(scores) >= 2 else None
    return power_summary(decision.tests, effect) if decision else []
