"""The plan as a terminal prints it before anything runs: the hypothesis, the overrides every
job sets (printed once, under the hypothesis, so a number the hypothesis states can be read
against what runs), the success metric, and a table of every job (of every arm, for a plan of
more than SHOWN_JOBS jobs) with what sets it apart and whether it runs or is already done."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evsys.plural import count
from evsys.records import BOOKKEEPING_OVERRIDES, Plan, PlannedJob

SHOWN_JOBS = 100  # a bigger plan is printed one row per arm, its seeds together


def print_plan(plan: Plan, pending: list[PlannedJob], console: Console | None = None) -> None:
    console = console or Console(width=max(100, Console().width))
    pending_dirs = {job.dir for job in pending}
    shared = shared_overrides(plan)
    if len(plan.planned) > SHOWN_JOBS:
        table = _arms_table(plan, pending_dirs, shared)
    else:
        table = Table(title=f"Experiment {plan.name} ({plan.id})")
        for column in ("#", "arm", "seed", "overrides", "status"):
            table.add_column(column)
        for index, job in enumerate(plan.planned):
            status = "to run" if job.dir in pending_dirs else "completed (skipped)"
            shown = escape(_apart(job, shared))
            table.add_row(str(index), escape(job.arm), str(job.seed), shown, status)
        for arm in _confirmation_arms(plan):  # its jobs are known once the above are done
            seeds = ", ".join(map(str, plan.confirm["seeds"]))
            table.add_row("–", escape(f"({arm})"), seeds, "confirmation: fresh seeds", "pending")
    if plan.hypothesis:
        console.print(f"[bold]Hypothesis:[/] {escape(plan.hypothesis)}")  # as written
    if shared:
        console.print(f"[bold]Every job sets:[/] {escape(' '.join(shared))}")
    better = "higher" if plan.mode == "max" else "lower"
    level, most = plan.success_metric.get("threshold"), "least" if plan.mode == "max" else "most"
    reach = "" if level is None else f"; each arm should reach at {most} {level:g}"
    console.print(
        f"[bold]Success metric:[/] {plan.metric_name} ({plan.mode}: {better} is better{reach})"
    )
    console.print(table)
    console.print(f"{len(pending)} of {count(len(plan.planned), 'job')} to run")
    if plan.confirm:
        console.print(escape(confirmation_line(plan)))


def confirmation_line(plan: Plan) -> str:
    """The confirmation stage as planned: its jobs are known once the selection is done."""
    seeds = plan.confirm["seeds"]
    best, against = _confirmation_arms(plan)
    return (
        f"Confirmation stage (pending: its arms are selected once the jobs above are done): "
        f"{best} and {against} re-run on the fresh seeds {seeds}: "
        f"{count(2 * len(seeds), 'job')} more, not counted above"
    )


def _confirmation_arms(plan: Plan) -> tuple[str, ...]:
    """The confirmation's two arms as known before the selection: in words."""
    if not plan.confirm:
        return ()
    return ("the best arm", f"the baseline {plan.baseline}" if plan.baseline else "the runner-up")


def _arms_table(plan: Plan, pending_dirs: set[str], shared: list[str]) -> Table:
    """One row per arm: how many seeds, which, its overrides and how many are to run."""
    table = Table(title=f"Experiment {plan.name} ({plan.id}): {len(plan.planned)} jobs by arm")
    for column in ("arm", "seeds", "overrides", "status"):
        table.add_column(column)
    by_arm: dict[str, list[PlannedJob]] = {}
    for job in plan.planned:
        by_arm.setdefault(job.arm, []).append(job)
    for arm, jobs in by_arm.items():
        seeds = sorted(job.seed for job in jobs)
        to_run = sum(job.dir in pending_dirs for job in jobs)
        status = f"{to_run} to run, {len(jobs) - to_run} completed (skipped)"
        shown = escape(_apart(jobs[0], shared))
        table.add_row(escape(arm), f"{len(seeds)}: {seeds[0]} .. {seeds[-1]}", shown, status)
    return table


def shown_overrides(job: PlannedJob, but: tuple[str, ...] = ()) -> str:
    """The job's overrides that say what it trains (not bookkeeping, nor `but`)."""
    return " ".join(_trained(job, but))


def shared_overrides(plan: Plan) -> list[str]:
    """The overrides every job of the plan sets (its seed aside), in the first job's order."""
    own = [_trained(job, ("seed=",)) for job in plan.planned]
    return [o for o in own[0] if all(o in others for others in own)] if own else []


def _apart(job: PlannedJob, shared: list[str]) -> str:
    """What sets the job apart: its overrides less the shared ones and its seed (a column)."""
    return " ".join(o for o in _trained(job, ("seed=",)) if o not in shared) or "–"


def _trained(job: PlannedJob, but: tuple[str, ...]) -> list[str]:
    return [o for o in job.overrides if not o.startswith((*BOOKKEEPING_OVERRIDES, *but))]
