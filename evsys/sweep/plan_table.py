"""The plan as a terminal prints it before anything runs: hypothesis, success metric, and a
table of every job with its overrides and whether it runs or is already done."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evsys.records import BOOKKEEPING_OVERRIDES, Plan, PlannedJob


def print_plan(plan: Plan, pending: list[PlannedJob], console: Console | None = None) -> None:
    console = console or Console(width=max(100, Console().width))
    table = Table(title=f"Experiment {plan.name} ({plan.id})")
    for column in ("#", "arm", "seed", "overrides", "status"):
        table.add_column(column)
    pending_dirs = {job.dir for job in pending}
    for index, job in enumerate(plan.planned):
        status = "to run" if job.dir in pending_dirs else "completed (skipped)"
        shown = " ".join(o for o in job.overrides if not o.startswith(BOOKKEEPING_OVERRIDES))
        table.add_row(str(index), escape(job.arm), str(job.seed), escape(shown), status)
    if plan.hypothesis:
        console.print(f"[bold]Hypothesis:[/] {escape(plan.hypothesis)}")  # as written
    better = "higher" if plan.mode == "max" else "lower"
    level, most = plan.success_metric.get("threshold"), "least" if plan.mode == "max" else "most"
    reach = "" if level is None else f"; each arm should reach at {most} {level:g}"
    console.print(
        f"[bold]Success metric:[/] {plan.metric_name} ({plan.mode}: {better} is better{reach})"
    )
    console.print(table)
    console.print(f"{len(pending)} of {len(plan.planned)} jobs to run")
