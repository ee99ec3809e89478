"""The verdict's decision for a sweep's plan: which arms it names, and `decide` called with
the plan's metric, mode, minimum effect, baseline and prediction. The conclusion, the power
planner and the adaptive rounds all decide through here, so they test the same comparisons."""

from __future__ import annotations

from collections.abc import Mapping

from evsys.conclusion.decision import Decision, decide
from evsys.conclusion.inference import ArmScores
from evsys.conclusion.pairing import pairing_text, seed_links
from evsys.conclusion.scores import metric_bounds
from evsys.records import Plan


def missing_named_arm(plan: Plan, arms: Mapping[str, ArmScores]) -> str | None:
    """Why the plan's baseline or prediction cannot be tested on `arms`, or None."""
    named = [("the baseline", plan.baseline)] if plan.baseline and not plan.baselines else []
    # a baseline split by matrix axes: its arm in every cell (evsys/sweep/plan.py)
    named += [("the baseline", arm) for arm in sorted(set((plan.baselines or {}).values()))]
    if plan.prediction:
        named.append(("the predicted arm", plan.prediction["better"]))
        if plan.prediction.get("than", "all") != "all":
            named.append(("the arm it is predicted to beat", plan.prediction["than"]))
    for role, arm in named:
        if arm not in arms:
            return f"{role} {arm} has no completed seed to compare"
    return None


def decide_plan(plan: Plan, arms: Mapping[str, ArmScores]) -> Decision | None:
    """The plan's decision on `arms`, or None when an arm the plan names has no scores (see
    missing_named_arm). Fewer than two arms decide "nothing to compare"."""
    if missing_named_arm(plan, arms) is not None:
        return None
    bounds = metric_bounds(plan.metric_name)
    pool = plan.success_metric.get("pool_seeds")  # None: auto (decide's default)
    links = seed_links(arm_configs(plan, arms))
    return decide(
        list(arms.values()),
        plan.mode,
        plan.min_effect,
        plan.baselines or plan.baseline,
        plan.prediction,
        bounds,
        pair_seeds=links,
        pool_seeds=None if pool is None else bool(pool),
    )


def arm_configs(plan: Plan, arms: Mapping[str, object]) -> dict[str, dict | None]:
    """Each of `arms`' identity_config as planned, None where the plan recorded none: what the
    pairing by seed is decided from (evsys.conclusion.pairing). The job of its lowest seed, so
    that a key interpolated from the seed (data.seed: ${seed}) compares like with like."""
    configs: dict[str, dict | None] = dict.fromkeys(arms)
    for job in sorted(plan.planned, key=lambda job: job.seed):
        if job.arm in configs and configs[job.arm] is None and job.identity_config:
            configs[job.arm] = job.identity_config
    return configs


def plan_pairing(plan: Plan, arms: Mapping[str, object]) -> str | None:
    """How the plan's comparisons are paired by seed and why (None for fewer than 2 arms)."""
    return pairing_text(arm_configs(plan, arms)) if len(arms) > 1 else None
