"""The verdict of an adaptive (seeds-until-decided) experiment: its group-sequential
decisions, not a fixed-n test at the last look (which the peeking would make too lenient)."""

from __future__ import annotations

from typing import Any

from evsys.conclusion.model import Conclusion


def adaptive_verdict(adaptive: dict[str, Any], conclusion: Conclusion) -> dict[str, Any]:
    """verdict and reason from the last round's statuses, combined as the verdict's family
    is: "some arm beats the baseline" needs one supported comparison; any other claim needs
    every comparison supported, and one refuted comparison refutes it. Returns the fields of
    the conclusion it replaces (verdict, reason, fixed_n_reason, verdict_basis, verdict_p);
    none before the first round."""
    rounds = adaptive.get("rounds") or []
    if not rounds:
        return {}
    last = rounds[-1]
    status = last["status"]
    values = list(status.values())
    exploratory_baseline = conclusion.kind == "exploratory" and conclusion.baseline
    if not values:
        verdict = "inconclusive"
    elif exploratory_baseline:
        verdict = (
            "supported"
            if "supported" in values
            else "refuted"
            if all(v == "refuted" for v in values)
            else "inconclusive"
        )
    else:
        verdict = (
            "supported"
            if all(v == "supported" for v in values)
            else "refuted"
            if "refuted" in values
            else "inconclusive"
        )
    shown = "; ".join(f"{name}: {value}" for name, value in status.items()) or "none"
    reason = (
        f"{verdict} (group-sequential, {len(rounds)} round(s), {last['n_seeds']} seeds per arm "
        f"at the last look): {shown}. Stopped: {last['reason']}"
    )
    basis = (
        "the group-sequential decisions of the last look: each comparison against its look's "
        "nominal level (Lan-DeMets O'Brien-Fleming spending, Holm over the open comparisons)"
    )
    return {
        "verdict": verdict,
        "reason": reason,
        "fixed_n_reason": conclusion.reason,
        "verdict_basis": basis,
        "verdict_p": None,
    }
