"""Results as a researcher reads them in Python: short reprs, HTML tables for notebooks, and
pandas DataFrames (`ExperimentResult.to_dataframe()`, `.groups_dataframe()`).

pandas is optional: only the DataFrame calls import it, and without it they say how to get
it. Free text (names, hypotheses, errors) is escaped in the HTML, never interpreted.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evsys.conclusion.model import Conclusion
from evsys.record_views import html_table, number, short
from evsys.records import BOOKKEEPING_OVERRIDES, ArmResult

if TYPE_CHECKING:
    import pandas


class ExperimentResult(Protocol):
    """What these views read of evsys.results.ExperimentResult (which imports this module)."""

    name: str
    hypothesis: str
    sweep_dir: Path
    arms: list[ArmResult]
    conclusion: Conclusion | None


MAX_ROWS = 8  # arms shown in a repr; the rest are counted


# ---------------------------------------------------------------------------------- DataFrames
def require_pandas() -> Any:
    """pandas, or an ImportError that says how to install it."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "DataFrames of results need pandas, which evsys does not install: pip install pandas"
        ) from None
    return pandas


def runs_dataframe(result: ExperimentResult) -> pandas.DataFrame:
    """One row per arm, seed and stage (selection, or experiment.confirm's confirmation): arm,
    seed, stage, status, each swept key, every metric, cost."""
    pandas = require_pandas()
    swept = swept_keys(result.arms)
    rows = []
    for arm in result.arms:
        values = override_values(arm.overrides)
        row = {"arm": arm.arm, "seed": arm.seed, "stage": arm.stage, "status": arm.status}
        row.update({key: values.get(key) for key in swept})
        row.update(arm.metrics)
        row.update({f"cost/{k}": v for k, v in (getattr(arm, "cost", None) or {}).items()})
        rows.append(row)
    columns = ["arm", "seed", "stage", "status", *swept]
    return pandas.DataFrame(rows, columns=_ordered(columns, rows))


def groups_dataframe(result: ExperimentResult) -> pandas.DataFrame:
    """One row per arm, best first, on the success metric: mean, std, 95% CI, seeds."""
    pandas = require_pandas()
    if result.conclusion is None:
        raise ValueError(
            f"{result.sweep_dir} has no conclusion yet: build it with evsys conclude "
            f"{result.sweep_dir}"
        )
    rows = [
        {
            "arm": group.arm,
            "rank": group.rank,
            "n_seeds": group.n,
            "mean": group.mean,
            "std": group.std,
            "ci95_low": group.ci95[0] if group.ci95 else None,
            "ci95_high": group.ci95[1] if group.ci95 else None,
            "min": group.min,
            "max": group.max,
        }
        for group in result.conclusion.groups
    ]
    frame = pandas.DataFrame(rows, columns=["arm", "rank", "n_seeds", "mean", "std",
                                            "ci95_low", "ci95_high", "min", "max"])  # fmt: skip
    frame.attrs["metric"] = result.conclusion.success_metric.name
    return frame


def override_values(overrides: Iterable[str]) -> dict[str, str]:
    """key -> value of a job's overrides that say what it trains (no seed, no bookkeeping)."""
    values = {}
    for override in overrides:
        if override.startswith(BOOKKEEPING_OVERRIDES) or "=" not in override:
            continue
        key, value = override.split("=", 1)
        key = key.lstrip("+~")
        if key != "seed":
            values[key] = value
    return values


def swept_keys(arms: Sequence[ArmResult]) -> list[str]:
    """The keys whose value is not the same in every record: what sets the arms apart."""
    every = [override_values(arm.overrides) for arm in arms]
    keys = dict.fromkeys(key for values in every for key in values)
    return [key for key in keys if len({values.get(key) for values in every}) > 1]


def _ordered(first: list[str], rows: list[dict]) -> list[str]:
    rest = dict.fromkeys(key for row in rows for key in row if key not in first)
    return [*first, *rest]


# ---------------------------------------------------------------------------------- text reprs
def experiment_repr(result: ExperimentResult) -> str:
    """A few lines: what was tested, how it ended, the arms ranked (at most MAX_ROWS)."""
    counts = _status_counts(result.arms)
    lines = [f"ExperimentResult {result.name!r}: {len(result.arms)} runs ({counts})"]
    if result.hypothesis:
        lines.append(f"  hypothesis: {short(result.hypothesis)}")
    lines.append(f"  sweep dir: {result.sweep_dir}")
    conclusion = result.conclusion
    if conclusion is None:
        lines.append("  no conclusion yet")
    else:
        metric = conclusion.success_metric
        lines.append(
            f"  {metric.name} ({metric.mode}); best arm: {conclusion.best_arm or '-'}; "
            f"verdict: {conclusion.verdict}"
        )
        lines += [f"    {line}" for line in _text_table(_group_rows(result))]
    lines.append("  .arms, .conclusion, .to_dataframe(), .groups_dataframe()")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- HTML reprs
def experiment_html(result: ExperimentResult) -> str:
    conclusion = result.conclusion
    title = f"<b>{html.escape(result.name)}</b> ({_status_counts(result.arms)})"
    if conclusion is not None:
        title += (
            f"; {html.escape(conclusion.success_metric.name)}: best arm "
            f"<b>{html.escape(conclusion.best_arm or '-')}</b>, verdict "
            f"<b>{html.escape(conclusion.verdict)}</b>"
        )
    parts = [f"<p>{title}</p>"]
    if result.hypothesis:
        parts.append(f"<p><i>{html.escape(result.hypothesis)}</i></p>")
    if conclusion is not None:
        header, *rows = _group_rows(result, limit=None)
        parts.append(html_table(header, rows))
    parts.append(f"<p><code>{html.escape(str(result.sweep_dir))}</code></p>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------- helpers
def _group_rows(result: ExperimentResult, limit: int | None = MAX_ROWS) -> list[list[str]]:
    """Header, then one row per ranked arm (at most `limit`, then a row counting the rest)."""
    groups = result.conclusion.groups
    rows = [["rank", "arm", "seeds", "mean", "95% CI"]]
    for group in groups[:limit]:
        ci = f"[{number(group.ci95[0])}, {number(group.ci95[1])}]" if group.ci95 else "-"
        rows.append([str(group.rank), group.arm, str(group.n), number(group.mean), ci])
    if limit is not None and len(groups) > limit:
        rows.append(["", f"... and {len(groups) - limit} more", "", "", ""])
    return rows


def _text_table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _status_counts(arms: Sequence[ArmResult]) -> str:
    counts: dict[str, int] = {}
    for arm in arms:
        counts[arm.status] = counts.get(arm.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "no records yet"
