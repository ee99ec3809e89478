"""Browse the experiment registry (also `python -m evsys.experiments`).

evsys experiments [--root outputs]          every experiment, as a table
evsys experiments show ID [--root outputs]  its lineage (parent_experiment_id chain) and
                                            conclusion.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evsys import registry

DEFAULT_ROOT = "outputs"
HEADERS = {"parent_experiment_id": "parent"}


def main(argv: list[str] | None = None, prog: str = "python -m evsys.experiments") -> int:
    args = _parser(prog).parse_args(argv)
    root = getattr(args, "root", DEFAULT_ROOT)
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough that the table does not wrap
        console = Console(width=200)
    if args.command == "show":
        return show(root, args.id, console)
    print_experiments(root, console)
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    # --root on both levels, so it may come before or after the subcommand
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", default=argparse.SUPPRESS, help=f"outputs root (default: {DEFAULT_ROOT})"
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", parents=[common], help="every experiment (the default)")
    show_parser = commands.add_parser("show", parents=[common], help="print a conclusion")
    show_parser.add_argument("id", help="experiment id")
    return parser


def print_experiments(outputs_root: str | Path, console: Console) -> None:
    """The registry as a table, oldest first."""
    rows = registry.list_experiments(outputs_root)
    if not rows:
        console.print(
            f"no experiments registered in {registry.registry_path(outputs_root)}", markup=False
        )
        return
    table = Table(title=Text(f"experiments in {registry.registry_path(outputs_root)}"))
    columns = (
        "id", "name", "status", "best_arm", "verdict", "parent_experiment_id", "created_at",
        "sweep_dir",
    )  # fmt: skip
    for column in columns:
        table.add_column(HEADERS.get(column, column.replace("_", " ")), overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(row[c])) if row[c] is not None else "–" for c in columns))
    console.print(table)


def show(outputs_root: str | Path, experiment_id: str, console: Console) -> int:
    """Print the experiment's conclusion.md; 1 when the id is unknown."""
    try:
        row = registry.get(outputs_root, experiment_id)
    except registry.ExperimentNotFound as exc:
        print(f"evsys.experiments: {exc}", file=sys.stderr)
        return 1
    print_lineage(outputs_root, row)
    conclusion = Path(row["sweep_dir"] or "") / "conclusion.md"
    if conclusion.is_file():
        # plain print: the markdown stays copy-pasteable and nothing is read as rich markup
        print(conclusion.read_text(encoding="utf-8"), end="")
    else:
        console.print(
            f"{experiment_id}: status {row['status']}, no conclusion yet ({conclusion})",
            markup=False,
        )
    return 0


def print_lineage(outputs_root: str | Path, row: dict) -> None:
    """The experiment and its ancestors, one line each: which best model each one started from."""
    chain = registry.lineage(outputs_root, row["id"])
    print(f"lineage of {row['id']} (newest first):")
    for depth, ancestor in enumerate(chain):
        if ancestor.get("missing"):
            print(f"  {'  ' * depth}<- {ancestor['id']} (not in this registry)")
            continue
        arrow = "<- " if depth else ""
        outcome = f"best arm {ancestor['best_arm']}" if ancestor["best_arm"] else "no best arm"
        print(
            f"  {'  ' * depth}{arrow}{ancestor['id']} [{ancestor['status']}] {outcome}; "
            f"verdict: {ancestor['verdict'] or '–'}; {ancestor['sweep_dir'] or ''}"
        )
    print()


if __name__ == "__main__":
    sys.exit(main())
