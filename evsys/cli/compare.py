"""`evsys compare A B`: two experiments' arms in one table on their shared success metric,
labelled by experiment, with their best arms compared (evsys/conclusion/across.py).

A and B are sweep dirs, ids, unique id prefixes or `latest`; ids are looked up in the registry
under --root (default: $EVSYS_OUTPUTS_ROOT, else ./outputs). --json prints the same as JSON.
Exit code 1 when either is not found, has no conclusion, or ranks on another metric.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evsys import registry
from evsys.errors import NotASweepDir


def main(argv: list[str] | None = None, prog: str = "evsys compare") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("first", help="sweep dir, id, unique id prefix or `latest`")
    parser.add_argument("second", help="the experiment to compare it with")
    parser.add_argument("--root", default=None, help="outputs root holding the registry")
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")
    args = parser.parse_args(argv)
    from evsys.conclusion.across import compare_experiments, load_side  # scipy: only here

    try:
        sides = [load_side(registry.locate(e, args.root)) for e in (args.first, args.second)]
        comparison = compare_experiments(*sides)
    except (registry.ExperimentNotFound, NotASweepDir, ValueError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print_comparison(comparison, Console() if sys.stdout.isatty() else Console(width=200))
    return 0


def print_comparison(comparison: dict[str, Any], console: Console) -> None:
    first, second = (e["label"] for e in comparison["experiments"])
    title = f"{first} vs {second} on {comparison['metric']} ({comparison['mode']})"
    console.print(title, markup=False, highlight=False, emoji=False)
    table = Table()
    for column in ("experiment", "arm", "seeds", "mean", "95% CI"):
        table.add_column(column, overflow="fold")
    for row in comparison["arms"]:
        ci = f"[{row['ci95'][0]:.4g}, {row['ci95'][1]:.4g}]" if row["ci95"] else "-"
        cells = (row["experiment"], row["arm"], str(row["n_seeds"]), f"{row['mean']:.4g}", ci)
        table.add_row(*map(Text, cells))
    console.print(table)
    for line in _notes(comparison):
        console.print(line, markup=False, highlight=False, emoji=False)


def _notes(comparison: dict[str, Any]) -> list[str]:
    lines = []
    if best := comparison["best_arms"]:
        ci = f" [{best['ci95'][0]:+.4g}, {best['ci95'][1]:+.4g}]" if best["ci95"] else ""
        p = f", p={best['p_value']:.3g}" if best["p_value"] is not None else ""
        how = "paired" if best["paired"] else "unpaired"
        lines.append(
            f"best arms: {best['first']} minus {best['second']}: {best['diff']:+.4g}{ci}{p} "
            f"({best['method']}, {how})"
        )
    for key, (one, two) in comparison["provenance_differs"].items():
        lines.append(f"provenance differs: {key}: {one} vs {two}")
    commits = [experiment["commit"] for experiment in comparison["experiments"]]
    if not comparison["provenance_differs"]:
        same = f"the same code (commit {commits[0][:12]})" if None not in commits else None
        unknown = "provenance: neither records which code ran it, so that cannot be compared"
        lines.append(f"provenance: {same}, the same package versions" if same else unknown)
    return lines
