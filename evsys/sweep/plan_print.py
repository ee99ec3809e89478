"""The plan as the sweep prints it before launching: the hypothesis, the success metric and
a table of the jobs (one row per job, or per arm for a big plan) with what each will do."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from evsys.records import Plan, PlannedJob
from evsys.sweep.plan import shown_overrides

SHOWN_JOBS = 100  # a bigger plan is printed one row per arm, its seeds together


def print_plan(plan: Plan, pending: list[PlannedJob], console: Console | None = None) -> None:
    console = console or Console(width=max(100, Console().width))
    pending_dirs = {job.dir for job in pending}
    if len(plan.planned) > SHOWN_JOBS:
        table = _arms_table(plan, pending_dirs)
    else:
        table = Table(title=f"Experiment {plan.name} ({plan.id})")
        for column in ("#", "arm", "seed", "overrides", "status"):
            table.add_column(column)
        for index, job in enumerate(plan.planned):
            status = "to run" if job.dir in pending_dirs else "completed (skipped)"
            table.add_row(str(index), job.arm, str(job.seed), shown_overrides(job), status)
    if plan.hypothesis:
        console.print(f"[bold]Hypothesis:[/] {plan.hypothesis}")
    better = "higher" if plan.mode == "max" else "lower"
    level, most = plan.success_metric.get("threshold"), "least" if plan.mode == "max" else "most"
    reach = "" if level is None else f"; each arm should reach at {most} {level:g}"
    console.print(
        f"[bold]Success metric:[/] {plan.metric_name} ({plan.mode}: {better} is better{reach})"
    )
    console.print(table)
    console.print(f"{len(pending)} of {len(plan.planned)} jobs to run")


def _arms_table(plan: Plan, pending_dirs: set[str]) -> Table:
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
        shown = shown_overrides(jobs[0], but=("seed=",))
        table.add_row(arm, f"{len(seeds)}: {seeds[0]} .. {seeds[-1]}", shown, status)
    return table
