"""The conclusion as text: a markdown page and a console summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evsys.conclusion.confirmation import confirmation_lines
from evsys.conclusion.exports import lm_eval_command
from evsys.conclusion.model import (
    ComparisonResult,
    Conclusion,
    ContinualGroup,
    Export,
    Group,
    MetricStats,
    ThresholdResult,
)
from evsys.conclusion.plots import matrix_plot_name
from evsys.conclusion.text import (
    COST_COLUMNS,
    ci_text,
    code_span,
    cost_cells,
    mean_std,
    metadata_text,
    method_text,
    num,
    p_text,
    power_texts,
    seeds_text,
    user_text,
    value_std,
)
from evsys.conclusion.variance import ALPHA
from evsys.plural import count
from evsys.records import BOOKKEEPING_OVERRIDES

NO_BASELINE = "(none: the best arm vs every other arm)"


def render_markdown(conclusion: Conclusion) -> str:
    """The conclusion as a readable markdown page."""
    metric = conclusion.success_metric
    lines = [
        f"# Conclusion: {user_text(conclusion.experiment.name)}",
        "",
        f"- Experiment: `{conclusion.experiment.id}`",
        f"- Hypothesis: {user_text(conclusion.hypothesis or '(none stated)')}",
        f"- Success metric: `{metric.name}` ({metric.mode}, "
        f"minimum effect {num(metric.min_effect)})",
        *_threshold_header(conclusion),
        f"- Baseline: {user_text(conclusion.baseline or NO_BASELINE)}",
        *_metadata_header(conclusion.metadata or {}),
        "",
        f"## Verdict: {conclusion.verdict}",
        "",
        conclusion.reason,
        "",
    ]
    lines += confirmation_lines(conclusion.confirmation) if conclusion.confirmation else []
    lines += _groups_markdown(conclusion)
    lines += _threshold_markdown(conclusion.threshold)
    lines += _continual_markdown(conclusion.continual or {})
    lines += _other_metrics_markdown(conclusion.other_metrics)
    lines += _decision_markdown(conclusion)
    stage = " of the selection stage" if conclusion.confirmation else ""
    lines += _comparisons_markdown(conclusion.comparisons or [], stage)
    lines += _method_markdown(conclusion)
    lines += _exports_markdown(conclusion.exports)
    lines += _problems_markdown(conclusion)
    return "\n".join(lines).rstrip() + "\n"


def _threshold_header(conclusion: Conclusion) -> list[str]:
    value = conclusion.success_metric.threshold
    if value is None:
        return []
    how = "at least" if conclusion.success_metric.mode == "max" else "at most"
    return [f"- Threshold: each arm should reach {how} {num(value)}"]


def _metadata_header(metadata: dict) -> list[str]:
    """The experiment's metadata, literal: each key=value in a code span."""
    if not metadata:
        return []
    shown = ", ".join(code_span(f"{key}={metadata_text(value)}") for key, value in metadata.items())
    return [f"- Metadata: {shown}"]


def _groups_markdown(conclusion: Conclusion) -> list[str]:
    threshold = conclusion.threshold
    extra = f" {threshold.direction} {num(threshold.value)}? |" if threshold else ""
    costs = any(g.cost for g in conclusion.groups)  # records of an older evsys have none
    extra += "".join(f" {column} |" for column in COST_COLUMNS) if costs else ""
    lines = [
        f"## Arms ranked by {conclusion.success_metric.name}"
        + (" (selection stage)" if conclusion.confirmation else ""),
        "",
        "| rank | arm | mean ± std | 95% CI | n | seeds | overrides of this arm |" + extra,
        "|---:|---|---|---|---:|---|---|"
        + ("---|" if threshold else "")
        + ("---:|" * len(COST_COLUMNS) if costs else ""),
    ]
    shared = _shared_overrides(conclusion.groups)
    status = {row.arm: row.status for row in threshold.arms} if threshold else {}
    for g in conclusion.groups:
        overrides = " ".join(f"`{o}`" for o in g.overrides if o not in shared)
        lines.append(
            f"| {g.rank} | {g.arm} | {mean_std(g)} | {ci_text(g.ci95)} | {g.n} "
            f"| {seeds_text(g.values)} | {overrides} |"
            + (f" {status[g.arm]} |" if threshold else "")
            + ("".join(f" {cell} |" for cell in cost_cells(g.cost)) if costs else "")
        )
    if not conclusion.groups:
        lines.append("| | (no completed arm) | | | | | |")
    if costs:
        lines += ["", _cost_note(conclusion.groups)]
    return lines + [""]


def _cost_note(groups: list[Group]) -> str:
    """What the cost columns count, and the experiment's total."""
    hours = sum((g.cost or {}).get("device_hours") or 0 for g in groups)
    return (
        f"Cost of the completed runs, summed over each arm's seeds: {hours:.3g} device-hours "
        "in all; FLOPs estimated as 6 x parameters x tokens; peak memory the largest seed's."
    )


def _threshold_markdown(threshold: ThresholdResult | None) -> list[str]:
    """Which arms clear the threshold: the list, then each arm's one-sided p (Holm)."""
    if threshold is None:
        return []
    goal = f"{threshold.direction} {num(threshold.value)}"
    clearing = ", ".join(threshold.clearing) or "none"
    side = "above" if threshold.direction == "at least" else "below"
    lines = [
        f"## Arms that reach {goal}",
        "",
        f"Arms whose 95% interval lies entirely {side} {num(threshold.value)} "
        f"(one-sided, Holm over {count(len(threshold.arms), 'arm')}): {clearing}",
        "",
        "| arm | mean | 95% CI | p (reaches), Holm | p (falls short), Holm | status |",
        "|---|---:|---|---:|---:|---|",
    ]
    for row in threshold.arms:
        lines.append(
            f"| {row.arm} | {num(row.mean)} | {ci_text(row.ci95)} | {p_text(row.p_reach_holm)} "
            f"| {p_text(row.p_miss_holm)} | {row.status} |"
        )
    return lines + [""]


def _continual_markdown(continual: dict[str, ContinualGroup]) -> list[str]:
    """Each continual group's exact-match matrix (mean ± std over seeds) and its metrics."""
    lines = []
    for arm, entry in continual.items():
        exact_match = entry.matrix["exact_match"]
        lines += [
            f"## Continual: {arm} (exact match, mean ± std over {count(entry.n, 'seed')})",
            "",
            "| scored after | " + " | ".join(entry.benchmarks) + " |",
            "|---|" + "---:|" * len(entry.benchmarks),
        ]
        for r, row in enumerate(entry.rows):
            label = row if r == 0 else f"stage {r}: {row}"
            pairs = zip(exact_match.mean[r], exact_match.std[r], strict=True)
            lines.append(f"| {label} | " + " | ".join(value_std(m, s) for m, s in pairs) + " |")
        lines += ["", _continual_metrics_line(entry.metrics), ""]
        lines += [f"![{arm} score matrices]({matrix_plot_name(arm)})", ""]
    return lines


def _continual_metrics_line(metrics: dict[str, MetricStats]) -> str:
    """Exact-match metrics of the chain: average final score, BWT, FWT, drops, forgetting."""
    shown = ["avg_final", "bwt", "fwt", "max_drop"]
    shown += sorted(name for name in metrics if name.startswith("forgetting/"))
    parts = [
        f"{name} {value_std(metrics[name].mean, metrics[name].std)}"
        for name in shown
        if name in metrics
    ]
    return "Continual metrics (exact match): " + (" · ".join(parts) or "none")


def _other_metrics_markdown(other: dict[str, dict]) -> list[str]:
    """One row per metric, one column per arm: arms are few, metrics can be many."""
    names = sorted({name for metrics in other.values() for name in metrics})
    if not names:
        return []
    arms = list(other)
    lines = [
        "## Other metrics (mean over seeds)",
        "",
        "| metric | " + " | ".join(arms) + " |",
        "|---|" + "---:|" * len(arms),
    ]
    for name in names:
        cells = [num(other[arm][name]) if name in other[arm] else "" for arm in arms]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _shared_overrides(groups: list[Group]) -> set[str]:
    """Overrides every arm has (the preset, ids, paths): the table shows what sets arms apart."""
    bookkeeping = {o for g in groups for o in g.overrides if o.startswith(BOOKKEEPING_OVERRIDES)}
    if len(groups) < 2:
        return bookkeeping
    return set(groups[0].overrides).intersection(*(g.overrides for g in groups[1:])) | bookkeeping


def _comparisons_markdown(comparisons: list[ComparisonResult], stage: str = "") -> list[str]:
    if not comparisons:
        return []
    lines = [
        f"## Comparisons{stage} (difference oriented so positive = first is better)",
        "",
        "| comparison | difference | 95% CI | p | Holm p | p(> m) | p(> m), Holm | method "
        "| seeds | items |",
        "|---|---:|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.name} | {num(c.diff)} | {ci_text(c.ci95)} | {p_text(c.p_value)} "
            f"| {p_text(c.p_holm)} | {p_text(c.p_above)} | {p_text(c.p_above_holm)} "
            f"| {method_text(c.method)} | {c.n_first} vs {c.n_second} | {c.n_items or '–'} |"
        )
    return lines + [""]


def _method_markdown(conclusion: Conclusion) -> list[str]:
    """What was tested and how: the test, alpha, what p(> m) is, adjusted or not, and the
    p-value the verdict rests on (docs/statistics.md)."""
    comparisons = conclusion.comparisons or []
    if not comparisons:
        return []
    m = num(conclusion.success_metric.min_effect)
    methods = "; ".join(dict.fromkeys(method_text(c.method) for c in comparisons))
    test = (
        f"the difference of two arms' means, its variance from the seeds and the items (a "
        f"generalized pivotal test, Tsui & Weerahandi 1989; docs/statistics.md): {methods}"
        if any(c.n_items for c in comparisons)
        else f"{methods}, as no arm left per-item scores"
    )
    lines = [
        "## Method",
        "",
        f"- Test: {test}. Two-sided, alpha = {ALPHA:g}; each 95% CI is the same test's.",
        f"- p(> m) and p(< m), with m = {m} (the minimum effect), are doubled one-sided p-values "
        f'of "difference > m" and "difference < m": p(> m) < {ALPHA:g} exactly when the 95% '
        "CI lies above m.",
        "- The 95% CIs, p and p(> m) are unadjusted (each comparison on its own); "
        + (
            f"the Holm columns are adjusted over the {len(comparisons)} comparisons (Holm 1979)."
            if len(comparisons) > 1
            else "with one comparison the Holm columns equal them."
        ),
    ]
    if conclusion.seed_pairing:
        lines.append(f"- Seeds: {conclusion.seed_pairing}.")
    if conclusion.verdict_basis:
        lines.append(f"- The verdict rests on {conclusion.verdict_basis}.")
    return lines + [""]


def _exports_markdown(exports: list[Export]) -> list[str]:
    """Each arm's trained model and the lm-evaluation-harness command that scores it."""
    if not exports:
        return []
    lines = [
        "## Trained models",
        "",
        "Each arm's best seed, in Hugging Face format; score one with lm-evaluation-harness",
        'from the sweep dir (`pip install -e ".[harness]"`; docs/evaluation.md):',
        "",
    ]
    for export in exports:
        lines.append(
            f"- **{export.arm}** (seed {export.seed}): `{export.model}` — "
            f"`{lm_eval_command(export)}`"
        )
    return lines + [""]


def _decision_markdown(conclusion: Conclusion) -> list[str]:
    """What the verdict claims, surprises, caveats, the seed budget and adaptive rounds."""
    lines = []
    if conclusion.claim:
        lines += [f"Claim tested: {conclusion.claim}.", ""]
    lines += [f"- {surprise}" for surprise in conclusion.surprises or []]
    lines += [f"- note: {note}" for note in conclusion.notes or []]
    lines += [f"- power: {line}" for line in power_texts(conclusion.power or [])]
    adaptive = conclusion.adaptive  # the plan's design and rounds, as experiment.json has them
    if adaptive:
        lines += ["", f"Adaptive seeds ({adaptive['design']}), looks at {adaptive['looks']}:", ""]
        for r in adaptive["rounds"]:
            status = ", ".join(f"{k}: {v}" for k, v in r["status"].items())
            lines.append(
                f"- round {r['look'] + 1} ({count(r['n_seeds'], 'seed')}): {status}. {r['reason']}"
            )
    return lines + ([""] if lines else [])


def _problems_markdown(conclusion: Conclusion) -> list[str]:
    lines = []
    if conclusion.failed:
        lines += ["## Failed runs", ""]
        for run in conclusion.failed:
            error = user_text(run.error)  # one line, whatever the error held
            lines.append(f"- {run.arm} seed {run.seed} (`{run.dir}`): {error}")
        lines.append("")
    if conclusion.missing:
        lines += ["## Missing runs (no arm record: killed or never ran)", ""]
        lines += [f"- {r.arm} seed {r.seed} (`{r.dir}`)" for r in conclusion.missing]
        lines.append("")
    return lines


def default_console() -> Console:
    """stdout; in a log file (not a terminal) wide enough that tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_summary(conclusion: Conclusion, console: Console | None = None) -> None:
    """The ranked arms as a table, then the verdict and any failed or missing runs."""
    console = console or default_console()
    metric = conclusion.success_metric
    title = f"{conclusion.experiment.name}: {metric.name} ({metric.mode})"
    table = Table(title=Text(title))
    costs = any(g.cost for g in conclusion.groups)
    for column in ("rank", "arm", "n", "mean ± std", "95% CI", "seeds"):
        table.add_column(column, justify="right" if column in ("rank", "n") else "left")
    for column in COST_COLUMNS if costs else ():
        table.add_column(column, justify="right")
    for g in conclusion.groups:
        cells = [str(g.rank), Text(g.arm), str(g.n), mean_std(g), ci_text(g.ci95)]
        cells += [seeds_text(g.values), *(cost_cells(g.cost) if costs else [])]
        table.add_row(*cells)
    console.print(table)
    style = {"supported": "bold green", "refuted": "bold red"}.get(conclusion.verdict, "bold")
    console.print(Text(conclusion.reason, style=style), soft_wrap=True)  # copy-pasteable
    if conclusion.confirmation:  # the selection's estimate beside the confirmed one
        console.print(Text(conclusion.confirmation["summary"]), soft_wrap=True)
    if (threshold := conclusion.threshold) is not None:
        goal = f"{threshold.direction} {num(threshold.value)}"
        console.print(Text(f"reach {goal}: {', '.join(threshold.clearing) or 'none'}"))
    for run in conclusion.failed:
        console.print(Text(f"FAILED  {run.arm} seed {run.seed} ({run.dir}): {run.error}"))
    for run in conclusion.missing:
        console.print(Text(f"MISSING {run.arm} seed {run.seed} ({run.dir})"))
    for arm, entry in (conclusion.continual or {}).items():
        console.print(Text(f"continual {arm}: {_continual_metrics_line(entry.metrics)}"))
