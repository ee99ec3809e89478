"""Confirming the winner (experiment.confirm): which arms the confirmation re-runs, and the
verdict from its fresh seeds alone beside the selection stage's estimate.

The best of k arms is chosen partly for its luck, so the selection stage's estimate of its
effect is biased upward and its interval too optimistic (the winner's curse). The confirmation
re-runs the selected arm and its comparison arm (the baseline of its cell, else the runner-up)
on seeds the selection never used; its difference is one planned comparison (no correction,
nothing selected on its data), and the shrinkage is the selection's estimate minus it.
The sweeper (evsys/sweep/confirm.py) and the conclusion both select through `select_pair`,
so the arms re-run are the arms the conclusion reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evsys.conclusion.decision import single_comparison
from evsys.conclusion.inference import ArmScores, Comparison, compare, family, orientation
from evsys.conclusion.pairing import paired_by_seed, seed_links
from evsys.conclusion.plan_decision import arm_configs, missing_named_arm
from evsys.conclusion.scores import metric_bounds
from evsys.plural import count
from evsys.records import Plan

CONFIRMED, PENDING, NOT_RUN = "confirmed", "pending", "not run"


@dataclass(frozen=True)
class Selected:
    """The arm the selection stage picked and the arm it is confirmed against."""

    arm: str
    against: str


def select_pair(plan: Plan, scores: Mapping[str, ArmScores]) -> Selected | str:
    """The selection stage's best arm and its comparison arm, from the selection's scores;
    or why there is none. With a prediction: its arm against the arm it names (for "all":
    the best of the others); with a baseline: the best arm that is not a baseline, against
    its cell's baseline (across cells: the one furthest ahead of its own baseline); else the
    best arm against the runner-up."""
    if missing := missing_named_arm(plan, scores):
        return f"nothing to confirm: {missing}"
    sign = orientation(plan.mode)
    ranking = sorted(scores, key=lambda arm: (-sign * scores[arm].mean, arm))
    if len(ranking) < 2:
        return "nothing to confirm: fewer than two arms completed the selection stage"
    if plan.prediction:  # stated in advance: the predicted arm against its named rival
        better, than = plan.prediction["better"], plan.prediction.get("than", "all")
        return Selected(better, than if than != "all" else next(a for a in ranking if a != better))
    if plan.baseline is None:
        return Selected(ranking[0], ranking[1])
    of = plan.baselines or dict.fromkeys(ranking, plan.baseline)
    pairs = [Selected(a, of[a]) for a in ranking if of.get(a, a) != a and of[a] in scores]
    if not pairs:
        return "nothing to confirm: every completed arm is a baseline"
    ahead = lambda p: sign * (scores[p.arm].mean - scores[p.against].mean)  # noqa: E731
    return max(pairs, key=ahead) if plan.baselines else pairs[0]


def estimate(
    pair: Selected, scores: Mapping[str, ArmScores], plan: Plan
) -> tuple[Comparison, Any] | None:
    """The pair's comparison on `scores` (one planned test vs the minimum effect), or None
    when either arm has no scores there."""
    if pair.arm not in scores or pair.against not in scores:
        return None
    bounds = metric_bounds(plan.metric_name)
    # paired by seed only where the design links the two arms' seeds, as in the selection
    links = seed_links(arm_configs(plan, {pair.arm: None, pair.against: None}))
    paired = paired_by_seed(links, pair.arm, pair.against)
    c = compare(scores[pair.arm], scores[pair.against], plan.mode, bounds, pair_seeds=paired)
    return c, family([c], plan.min_effect)[0]


def confirmation_fields(
    plan: Plan, selection: Mapping[str, ArmScores], confirmed: Mapping[str, ArmScores], reason: str
) -> dict[str, Any]:
    """The conclusion's fields a confirmation replaces: its `confirmation` record, and the
    verdict, reason, basis and p from the confirmation's seeds alone. `reason`: the selection
    stage's own (kept in the record)."""
    design = plan.confirm or {}
    record = {"repeats": design.get("repeats"), "seeds": design.get("seeds")}
    record["selection_reason"] = reason
    pair = select_pair(plan, selection)
    if isinstance(pair, str):
        return _unconfirmed(record | {"status": NOT_RUN, "summary": pair})
    record |= {"selected": pair.arm, "against": pair.against}
    record["selection"] = _estimate_record(estimate(pair, selection, plan))
    found = estimate(pair, confirmed, plan)
    if found is None or min(found[0].n_seeds) < 2:
        done = sum(len(confirmed[a].seeds) for a in (pair.arm, pair.against) if a in confirmed)
        why = f"{done} of {count(2 * len(record['seeds'] or []), 'confirmation run')} completed"
        summary = f"the confirmation of {pair.arm} vs {pair.against} is not complete: {why}"
        return _unconfirmed(record | {"status": PENDING, "confirmed": None, "summary": summary})
    c, test = found
    verdict, why, basis = single_comparison(test, plan.min_effect)
    record["confirmed"] = _estimate_record(found)
    record["shrinkage"] = record["selection"]["diff"] - c.diff
    record |= {"status": CONFIRMED, "summary": _shrinkage_words(record)}
    seeds = count(c.n_seeds[0], "fresh seed")
    return {
        "confirmation": record,
        "verdict": verdict,
        "reason": f"{verdict} (confirmed on {seeds}): {c.name}: {why}",
        "verdict_basis": basis.text() + ", on the confirmation's seeds only" if basis else None,
        "verdict_p": basis.p if basis else None,
    }


def _unconfirmed(record: dict[str, Any]) -> dict[str, Any]:
    """Nothing confirmed: inconclusive, resting on no test (the selection's p is no basis)."""
    return {
        "confirmation": record | {"shrinkage": None},
        "verdict": "inconclusive",
        "reason": f"inconclusive: {record['summary']}",
        "verdict_basis": None,
        "verdict_p": None,
    }


def _estimate_record(found: tuple[Comparison, Any]) -> dict[str, Any]:
    c, test = found
    return {
        "diff": c.diff,
        "ci95": list(c.ci95) if c.ci95 else None,
        "p_above": test.p_above,
        "n_seeds": c.n_seeds[0],
        "n_items": c.n_items,
    }


def _shrinkage_words(record: dict[str, Any]) -> str:
    before, after = record["selection"]["diff"], record["confirmed"]["diff"]
    moved = "shrank" if after < before else "grew"
    return (
        f"{record['selected']} vs {record['against']}: the selection stage estimated "
        f"{before:.4g}, the fresh seeds {after:.4g} (it {moved} by {abs(before - after):.4g}). "
        "The selection's estimate is of the arm picked for being best on those same seeds, "
        "so it is biased upward (the winner's curse); the verdict rests on the fresh seeds alone."
    )


def confirmation_lines(record: dict[str, Any]) -> list[str]:
    """The confirmation as markdown lines: both estimates side by side, and what they say."""
    lines = ["## Confirmation on fresh seeds", ""]
    if record.get("status") != CONFIRMED:
        return lines + [f"{record['summary']}.", ""]
    lines += [
        f"The selected arm {record['selected']} against {record['against']} "
        f"(difference, positive: {record['selected']} better):",
        "",
        "| stage | seeds | difference | 95% CI | p(> m) |",
        "|---|---:|---:|---|---:|",
    ]
    for stage in ("selection", "confirmed"):
        e = record[stage]
        ci = "none" if e["ci95"] is None else f"[{e['ci95'][0]:.4g}, {e['ci95'][1]:.4g}]"
        p = "n/a" if e["p_above"] is None else f"{e['p_above']:.2g}"
        label = (
            "selection (biased: picked on these seeds)"
            if stage == "selection"
            else (f"confirmation (fresh seeds {', '.join(map(str, record['seeds']))})")
        )
        lines.append(f"| {label} | {e['n_seeds']} | {e['diff']:.4g} | {ci} | {p} |")
    return lines + ["", record["summary"], "", f"Selection stage: {record['selection_reason']}", ""]
