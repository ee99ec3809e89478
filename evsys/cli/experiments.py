"""Browse the experiment registry (also `python -m evsys.experiments`).

evsys experiments [--root outputs]          every experiment, as a table
evsys experiments --where KEY=VALUE ...     those whose metadata has KEY=VALUE (all of them)
evsys experiments [show ID] --json          the same as JSON, for scripts and agents
evsys experiments show ID [--root outputs]  its lineage (parent_experiment_id chain), its
                                            metadata and conclusion.md; ID may be a unique
                                            prefix of an id, or `latest`

The registry is <root>/experiments.sqlite; root: --root, else $EVSYS_OUTPUTS_ROOT, else
./outputs (where experiment.stores.outputs_root puts it by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evsys import registry
from evsys.conclusion.text import metadata_text
from evsys.errors import NotASweepDir
from evsys.provenance import DIFF_FILE, described
from evsys.records import Plan

DEFAULT_ROOT = "$EVSYS_OUTPUTS_ROOT, else ./outputs"  # registry.default_outputs_root()
HEADERS = {"parent_experiment_id": "parent", "device_hours": "device-h"}


def main(argv: list[str] | None = None, prog: str = "python -m evsys.experiments") -> int:
    args = _parser(prog).parse_args(argv)
    root = getattr(args, "root", None) or registry.default_outputs_root()
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough that the table does not wrap
        console = Console(width=200)
    try:
        if getattr(args, "json", False):
            return print_json(root, args.id if args.command == "show" else None, args)
        if args.command == "show":
            return show(root, args.id, console)
        print_experiments(root, console, getattr(args, "where", None) or [])
    except registry.RegistryError as exc:  # e.g. a corrupt registry: its file and the way out
        print(f"evsys.experiments: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    # --root on both levels, so it may come before or after the subcommand
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", default=argparse.SUPPRESS, help=f"outputs root (default: {DEFAULT_ROOT})"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON, for scripts"
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--where",
        action="append",
        type=_condition,
        default=argparse.SUPPRESS,
        metavar="KEY=VALUE",
        help="only experiments whose metadata has KEY=VALUE (repeat: all must hold)",
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        parents=[common, where],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", parents=[common, where], help="every experiment (the default)")
    show_parser = commands.add_parser("show", parents=[common], help="print a conclusion")
    show_parser.add_argument("id", help="experiment id, a unique prefix of one, or `latest`")
    return parser


def _condition(text: str) -> tuple[str, str]:
    """--where KEY=VALUE as (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. --where owner=ann)")
    return key, value


def matches(row: dict, conditions: Sequence[tuple[str, str]]) -> bool:
    """Every KEY=VALUE holds in the row's metadata."""
    metadata = row.get("metadata") or {}
    return all(key in metadata and metadata_text(metadata[key]) == v for key, v in conditions)


def print_experiments(
    outputs_root: str | Path, console: Console, where: Sequence[tuple[str, str]] = ()
) -> None:
    """The registry as a table, oldest first; with `where`, only the rows whose metadata match."""
    path = registry.registry_path(outputs_root).resolve()
    rows = [row for row in registry.list_experiments(outputs_root) if matches(row, where)]
    if not rows:
        wanted = " with " + ", ".join(f"{k}={v}" for k, v in where) if where else ""
        console.print(f"no experiments registered{wanted} in {path}", markup=False)
        return
    table = Table(title=Text(f"experiments in {path}"))
    columns = (
        "id", "name", "status", "best_arm", "verdict", "device_hours", "parent_experiment_id",
        "created_at", "metadata", "sweep_dir",
    )  # fmt: skip
    for column in columns:
        table.add_column(HEADERS.get(column, column.replace("_", " ")), overflow="fold")
    for row in rows:
        cells = {**row, "metadata": _metadata_cell(row.get("metadata") or {})}
        if row.get("device_hours") is not None:
            cells["device_hours"] = f"{row['device_hours']:.3g}"
        table.add_row(*(Text(str(cells[c])) if cells[c] is not None else "–" for c in columns))
    console.print(table)


def _metadata_cell(metadata: dict) -> str | None:
    return ", ".join(f"{k}={metadata_text(v)}" for k, v in metadata.items()) or None


def show(outputs_root: str | Path, experiment_id: str, console: Console) -> int:
    """Print the experiment's conclusion.md (a RegistryError when the id is unknown or an id
    prefix is ambiguous)."""
    row = registry.find(outputs_root, experiment_id)  # ExperimentNotFound: said by main
    print_lineage(outputs_root, row)
    if row.get("metadata"):
        print(f"metadata: {_metadata_cell(row['metadata'])}\n")
    if row.get("device_hours") is not None:
        print(f"cost: {row['device_hours']:.3g} device-hours (every arm's record summed)\n")
    _print_provenance(Path(row["sweep_dir"] or ""))
    conclusion = Path(row["sweep_dir"] or "") / "conclusion.md"
    if conclusion.is_file():
        # plain print: the markdown stays copy-pasteable and nothing is read as rich markup
        print(conclusion.read_text(encoding="utf-8"), end="")
    else:
        console.print(
            f"{row['id']}: status {row['status']}, no conclusion yet ({conclusion})",
            markup=False,
        )
    return 0


def print_json(outputs_root: str | Path, experiment_id: str | None, args) -> int:
    """The registry rows (or one experiment: its row, lineage, provenance and conclusion)."""
    if experiment_id is None:
        where = getattr(args, "where", None) or []
        rows = [row for row in registry.list_experiments(outputs_root) if matches(row, where)]
        print(json.dumps(rows, indent=2, default=str))
        return 0
    row = registry.find(outputs_root, experiment_id)  # ExperimentNotFound: said by main
    path = Path(row["sweep_dir"] or "") / "conclusion.json"
    conclusion = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    lineage = registry.lineage(outputs_root, row["id"])
    try:
        provenance = Plan.load(row["sweep_dir"] or "").provenance
    except NotASweepDir:
        provenance = None
    shown = {**row, "lineage": lineage, "provenance": provenance, "conclusion": conclusion}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def _print_provenance(sweep_dir: Path) -> None:
    """Which code, packages and machine planned the experiment (its experiment.json)."""
    try:
        planned = Plan.load(sweep_dir).provenance
    except NotASweepDir:
        return
    for line in described(planned):
        print(line)
    if (sweep_dir / DIFF_FILE).is_file():
        print(f"uncommitted changes: {sweep_dir / DIFF_FILE}")
    print()


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
