"""The verdict: does the evidence support the hypothesis? (rules in evsys/conclusion/build.py)."""

from __future__ import annotations

from evsys.conclusion.text import interval, num, p_text


def verdict_of(
    ranking: list[str],
    comparisons: dict[str, dict],
    baseline: str | None,
    m: float,
    runs: dict[str, list[dict]],
) -> tuple[str, str]:
    """(verdict, one-sentence reason) by the rules in the module docstring; m >= 0."""
    if not ranking:
        n_failed, n_missing = len(runs["failed"]), len(runs["missing"])
        return "inconclusive", (
            f"inconclusive: no arm completed ({n_failed} runs failed, {n_missing} missing)"
        )
    if len(ranking) == 1:
        return "inconclusive", f"inconclusive: nothing to compare, only {ranking[0]} completed"
    if baseline and baseline not in ranking:
        return "inconclusive", (
            f"inconclusive: the baseline {baseline} has no completed seed to compare against"
        )
    if baseline == ranking[0]:
        return _baseline_best_verdict(comparisons["best_vs_runner_up"], m)
    key = "best_vs_baseline" if baseline else "best_vs_runner_up"
    return _challenger_verdict(comparisons[key], m, against_baseline=bool(baseline))


def _baseline_best_verdict(lead: dict, m: float) -> tuple[str, str]:
    """`lead` is baseline vs runner-up: does any arm beat the baseline?"""
    if lead["ci95"] is None:
        return "inconclusive", _no_variance_reason(lead)
    lo, hi = lead["ci95"]
    base, other, n = lead["first"], lead["second"], _n_text(lead)
    if lo > 0:
        return "refuted", (
            f"refuted: the baseline {base} ranks best, ahead of {other} by {num(lead['diff'])} "
            f"(95% CI {interval(lo, hi)}, p={p_text(lead['p_value'])}, {n})"
        )
    if lo > -m:
        return "refuted", (
            f"refuted: the baseline {base} ranks best and the 95% CI of {other}'s gain over it, "
            f"{interval(-hi, -lo)}, stays below the minimum effect {num(m)} ({n})"
        )
    return "inconclusive", (
        f"inconclusive: the baseline {base} ranks best, but the 95% CI of its lead over "
        f"{other}, {interval(lo, hi)}, contains 0 ({n})"
    )


def _challenger_verdict(comp: dict, m: float, against_baseline: bool) -> tuple[str, str]:
    """`comp` is best arm vs baseline (or runner-up): is the best arm better by at least m?"""
    if comp["ci95"] is None:
        return "inconclusive", _no_variance_reason(comp)
    lo, hi = comp["ci95"]
    best, other, n = comp["first"], comp["second"], _n_text(comp)
    other = f"the baseline {other}" if against_baseline else other
    ci, diff = interval(lo, hi), num(comp["diff"])
    if lo > m:
        above = f", above the minimum effect {num(m)}" if m > 0 else ""
        return "supported", (
            f"supported: {best} beats {other} by {diff} "
            f"(95% CI {ci}{above}; p={p_text(comp['p_value'])}, {n})"
        )
    if m > 0 and hi < m:
        return "refuted", (
            f"refuted: {best} beats {other} by only {diff} and the 95% CI of the difference, "
            f"{ci}, lies below the minimum effect {num(m)} ({n})"
        )
    if lo <= 0:
        return "inconclusive", (
            f"inconclusive: the 95% CI of the difference between {best} and {other}, "
            f"{ci}, contains 0 ({n})"
        )
    return "inconclusive", (
        f"inconclusive: the 95% CI of the difference between {best} and {other}, {ci}, "
        f"contains the minimum effect {num(m)} ({n})"
    )


def _no_variance_reason(comp: dict) -> str:
    if comp["n_first"] < 2 and comp["n_second"] < 2:
        return (
            f"inconclusive: only n=1 seed per arm ({comp['first']} vs {comp['second']}), "
            "so there is no variance estimate"
        )
    single = comp["first"] if comp["n_first"] < 2 else comp["second"]
    return (
        f"inconclusive: {single} has only n=1 seed, so there is no variance estimate for "
        f"{comp['first']} vs {comp['second']}"
    )


def _n_text(comp: dict) -> str:
    if comp["n_first"] == comp["n_second"]:
        return f"n={comp['n_first']} per arm"
    return f"n={comp['n_first']} vs {comp['n_second']}"
