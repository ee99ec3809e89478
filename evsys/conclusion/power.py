"""Planning the seed budget from the observed variance: the smallest effect each comparison
could have detected (80% power, two-sided 5%), and the seeds a target effect would need."""

from __future__ import annotations

from collections.abc import Sequence

from evsys.conclusion.inference import FamilyTest
from evsys.conclusion.variance import mde, seeds_needed

POWER = 0.8


def power_summary(tests: Sequence[FamilyTest], target: float | None = None) -> list[dict]:
    """Per comparison: its minimum detectable effect now and, for `target`, the seeds per arm
    it would need (None: more seeds alone would not do: the item term does not shrink)."""
    rows = []
    for test in tests:
        c = test.comparison
        if c.components is None:
            continue  # no variance estimate (one seed): nothing to plan from
        row = {
            "comparison": c.name,
            "n_seeds": min(c.n_seeds),
            "mde": mde(c.components, power=POWER),
        }
        if target:
            row["target"] = target
            row["seeds_needed"] = seeds_needed(c.components, target, power=POWER)
        rows.append(row)
    return rows
