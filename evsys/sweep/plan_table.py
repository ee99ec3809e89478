"""The plan as a terminal prints it before anything runs: the hypothesis, the values every job
sets (printed once, under the hypothesis, so a number the hypothesis states can be read against
what runs), the success metric, and a table of every job with what sets it apart and whether
it runs or is already done."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evsys.plural import count
from evsys.records import BOOKKEEPING_OVERRIDES, Plan, PlannedJob


def print_plan(plan: Plan, pending: list[PlannedJob], console: Console | None = None) -> None:
    console = console or Console(width=max(100, Console().width))
    table = Table(title=f"Experiment {plan.name} ({plan.id})")
    for column in ("#", "arm", "seed", "overrides", "status"):
        table.add_column(column)
    own = [_shown_overrides(job) for job in plan.planned]
    shared = [o for o in own[0] if all(o in others for others in own)] if own else []
    pending_dirs = {job.dir for job in pending}
    for index, (job, overrides) in enumerate(zip(plan.planned, own, strict=True)):
        status = "to run" if job.dir in pending_dirs else "completed (skipped)"
        apart = " ".join(o for o in overrides if o not in shared) or "–"
        table.add_row(str(index), escape(job.arm), str(job.seed), escape(apart), status)
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


def _shown_overrides(job: PlannedJob) -> list[str]:
    """The job's overrides as typed, less evsys's bookkeeping and its seed (a column)."""
    return [
        override
        for override in job.overrides
        if not override.startswith((*BOOKKEEPING_OVERRIDES, "seed="))
    ]
