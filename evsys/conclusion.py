"""The conclusion of an experiment: ranking, statistics, verdict, and its files.

The conclusion is a pure function of the sweep dir (`experiment.json` plus one `result.json`
per finished job), so `python -m evsys.conclude DIR` rebuilds it byte for byte at any time.

Runs. Every planned job is one of: completed (its record holds the success metric as a finite
number), failed (status `failed`, an unreadable record, or a completed record without the
metric), or missing (no `result.json`: the job was killed or never ran). Completed runs of an
arm form its group; groups are ranked by their mean, best first.

Verdict. Let m = max(min_effect, 0) and let the comparison be best arm vs baseline when a
baseline is set (and is not the best), else best arm vs runner-up. d is the difference of
means oriented so that positive is better, with its Welch 95% CI [lo, hi].

- No completed arm -> inconclusive (everything failed or is missing).
- Only one completed arm -> inconclusive (nothing to compare).
- A baseline is set but has no completed seed -> inconclusive.
- Either compared group has n < 2 -> inconclusive (no variance estimate).
- The baseline ranks best: the hypothesis "some arm beats the baseline" is refuted when the
  baseline's lead over the runner-up has lo > -m (for m = 0: lo > 0, the baseline is
  confidently ahead; for m > 0 this also covers "the runner-up's gain over the baseline is
  confidently below m", the same rule as below seen from the baseline); else inconclusive.
- Otherwise: supported when lo > m (so also > 0); refuted when m > 0 and hi < m (the effect
  is confidently smaller than what matters); else inconclusive.

Continual chains (records with a `continual` section, see docs/continual.md) add a
`continual` entry per arm: the cell-wise mean and std over seeds of the score matrices and of
every continual/<metric>; conclusion.md shows the exact-match matrix and
conclusion_<arm>_matrix.png draws both matrices. Other conclusions have no `continual` key.

Floats in conclusion.json are rounded to 6 significant digits and keys are sorted.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evsys import statistics
from evsys.atomic_files import write_atomic
from evsys.results import BOOKKEEPING_OVERRIDES

EXPERIMENT_FILE = "experiment.json"
RESULT_FILE = "result.json"
TENSORBOARD_DIR = "tensorboard_conclusion"
SIGNIFICANT_DIGITS = 6


class NotASweepDir(ValueError):
    """The folder is not a sweep dir (no readable experiment.json with a plan)."""


# ------------------------------------------------------------------------------------ reading
def load_experiment(sweep_dir: str | Path) -> dict[str, Any]:
    """The plan of a sweep dir, checked for what the conclusion needs."""
    path = Path(sweep_dir) / EXPERIMENT_FILE
    if not path.is_file():
        raise NotASweepDir(f"{sweep_dir} is not a sweep dir: it has no {EXPERIMENT_FILE}")
    try:
        experiment = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise NotASweepDir(f"{path} is not readable JSON: {exc}") from exc
    metric = experiment.get("success_metric") or {}
    if not isinstance(experiment.get("planned"), list):
        raise NotASweepDir(f"{path} has no 'planned' list of jobs")
    if not metric.get("name"):
        raise NotASweepDir(f"{path} has no success_metric.name")
    if metric.get("mode", "max") not in statistics.MODES:
        raise NotASweepDir(f"{path}: success_metric.mode must be max or min")
    return experiment


def collect_runs(sweep_dir: str | Path, experiment: dict[str, Any]) -> dict[str, list[dict]]:
    """Sort every planned job into completed / failed / missing, sorted by (arm, seed)."""
    metric = experiment["success_metric"]["name"]
    runs: dict[str, list[dict]] = {"completed": [], "failed": [], "missing": []}
    for job in experiment["planned"]:
        job_dir = job.get("dir") or f"{job['arm']}_seed{job['seed']}"  # Hydra's job subdir
        run = {"arm": job["arm"], "seed": job["seed"], "dir": job_dir}
        path = Path(sweep_dir) / job_dir / RESULT_FILE
        if not path.is_file():
            runs["missing"].append(run)
            continue
        record, error = _read_record(path, metric)
        if error is not None:
            runs["failed"].append({**run, "error": error})
        else:
            runs["completed"].append({**run, "value": record["metrics"][metric], "record": record})
    for kind in runs.values():
        kind.sort(key=lambda r: (r["arm"], r["seed"]))
    return runs


def _read_record(path: Path, metric: str) -> tuple[dict, str | None]:
    """The arm record and, when it does not count as completed, why."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {}, f"unreadable {RESULT_FILE}: {exc}"
    if record.get("status") != "completed":
        return record, record.get("error") or f"status {record.get('status')!r}"
    metrics = record.get("metrics") or {}
    if metric not in metrics:
        present = ", ".join(sorted(metrics)) or "none"
        return record, f"metric {metric!r} missing from the record (metrics present: {present})"
    value = metrics[metric]
    if not _is_number(value) or not math.isfinite(value):
        return record, f"metric {metric!r} is not a finite number: {value!r}"
    return record, None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------- building
def build_conclusion(sweep_dir: str | Path) -> dict[str, Any]:
    """The conclusion of a sweep dir as a JSON-ready dict (deterministic, rounded)."""
    experiment = load_experiment(sweep_dir)
    metric = experiment["success_metric"]
    mode = metric.get("mode", "max")
    runs = collect_runs(sweep_dir, experiment)
    groups = _rank_groups(runs["completed"], metric["name"], mode)
    ranking = [g["arm"] for g in groups]
    baseline = experiment.get("baseline")
    comparisons = _comparisons(groups, baseline, mode)
    verdict, reason = _verdict(ranking, comparisons, baseline, _min_effect(metric), runs)
    conclusion = {
        "experiment": {
            "id": experiment.get("id"),
            "name": experiment.get("name"),
            "parent_experiment_id": experiment.get("parent_experiment_id"),
        },
        "hypothesis": experiment.get("hypothesis", ""),
        "success_metric": {"name": metric["name"], "mode": mode, "min_effect": _min_effect(metric)},
        "baseline": baseline,
        "groups": groups,
        "ranking": ranking,
        "best_arm": ranking[0] if ranking else None,
        "comparisons": list(comparisons.values()),
        "verdict": verdict,
        "reason": reason,
        "failed": runs["failed"],
        "missing": runs["missing"],
        "counts": {kind: len(runs[kind]) for kind in runs}
        | {"planned": len(experiment["planned"])},
        "other_metrics": _other_metrics(runs["completed"], metric["name"], ranking),
    }
    continual = _continual_groups(runs["completed"], ranking)
    if continual:  # only continual sweeps get the key: other conclusions stay as they were
        conclusion["continual"] = continual
    return _rounded(conclusion)


def _min_effect(metric: dict[str, Any]) -> float:
    return max(float(metric.get("min_effect") or 0.0), 0.0)


def _rank_groups(completed: list[dict], metric: str, mode: str) -> list[dict]:
    """One entry per arm with completed runs, best mean first (ties: arm name)."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        by_arm.setdefault(run["arm"], []).append(run)
    groups = [_group_entry(arm, runs) for arm, runs in by_arm.items()]
    sign = 1 if mode == "max" else -1
    groups.sort(key=lambda g: (-sign * g["mean"], g["arm"]))
    for rank, group in enumerate(groups, start=1):
        group["rank"] = rank
    return groups


def _group_entry(arm: str, runs: list[dict]) -> dict[str, Any]:
    summary = statistics.summarize({run["seed"]: run["value"] for run in runs})
    first = runs[0]["record"]
    return {
        "arm": arm,
        "group_id": first.get("group_id"),
        "overrides": [o for o in first.get("overrides", []) if not _is_seed_override(o)],
        "n": summary.n,
        "mean": summary.mean,
        "std": summary.std,
        "min": summary.min,
        "max": summary.max,
        "ci95": list(summary.ci95) if summary.ci95 else None,
        # JSON object keys are strings; make them strings here so the dict equals its file
        "values": {str(seed): value for seed, value in summary.values.items()},
    }


def _is_seed_override(override: str) -> bool:
    return override.lstrip("+~").startswith("seed=")


def _comparisons(groups: list[dict], baseline: str | None, mode: str) -> dict[str, dict]:
    """Best vs runner-up, and best vs baseline when the baseline completed and is not best."""
    comparisons = {}
    if len(groups) >= 2:
        comparisons["best_vs_runner_up"] = _compare(groups[0], groups[1], mode)
    by_arm = {g["arm"]: g for g in groups}
    if groups and baseline in by_arm and baseline != groups[0]["arm"]:
        comparisons["best_vs_baseline"] = _compare(groups[0], by_arm[baseline], mode)
    for name, comparison in comparisons.items():
        comparison["name"] = name
    return comparisons


def _compare(first: dict, second: dict, mode: str) -> dict[str, Any]:
    result = statistics.compare(
        list(first["values"].values()), list(second["values"].values()), mode
    )
    return {
        "first": first["arm"],
        "second": second["arm"],
        "diff": result.diff,
        "ci95": list(result.ci95) if result.ci95 else None,
        "p_value": result.p_value,
        "prob_improvement": result.prob_improvement,
        "n_first": result.n_first,
        "n_second": result.n_second,
    }


def _other_metrics(completed: list[dict], metric: str, ranking: list[str]) -> dict[str, dict]:
    """Per arm, the mean over seeds of every other numeric metric in the records."""
    sums: dict[str, dict[str, list[float]]] = {arm: {} for arm in ranking}
    for run in completed:
        for name, value in (run["record"].get("metrics") or {}).items():
            if name != metric and _is_number(value) and math.isfinite(value):
                sums[run["arm"]].setdefault(name, []).append(float(value))
    return {
        arm: {name: math.fsum(vs) / len(vs) for name, vs in sorted(values.items())}
        for arm, values in sums.items()
    }


# ---------------------------------------------------------------------------------- continual
CONTINUAL_PREFIX = "continual/"


def _continual_groups(completed: list[dict], ranking: list[str]) -> dict[str, dict]:
    """Per arm whose runs are continual chains: the score matrices and metrics over seeds."""
    by_arm: dict[str, list[dict]] = {}
    for run in completed:
        if (run["record"].get("continual") or {}).get("matrix"):  # a chain's record
            by_arm.setdefault(run["arm"], []).append(run)
    return {arm: _continual_entry(by_arm[arm]) for arm in ranking if arm in by_arm}


def _continual_entry(runs: list[dict]) -> dict[str, Any]:
    first = runs[0]["record"]["continual"]
    # Seeds of one group share the config, so their chains share rows and benchmarks.
    alike = [
        r
        for r in runs
        if (r["record"]["continual"]["rows"], r["record"]["continual"]["benchmarks"])
        == (first["rows"], first["benchmarks"])
    ]
    matrix = {}
    for name in sorted(first["matrix"]):
        mean, std = statistics.summarize_matrices(
            [r["record"]["continual"]["matrix"][name] for r in alike]
        )
        matrix[name] = {"mean": mean, "std": std}
    return {
        "n": len(alike),
        "seeds": [r["seed"] for r in alike],
        "rows": first["rows"],
        "benchmarks": first["benchmarks"],
        "matrix": matrix,
        "metrics": _continual_metric_stats(alike),
    }


def _continual_metric_stats(runs: list[dict]) -> dict[str, dict]:
    """Mean and std over seeds of each continual/<name> metric of the records."""
    values: dict[str, dict[int, float]] = {}
    for run in runs:
        for key, value in run["record"]["metrics"].items():
            if key.startswith(CONTINUAL_PREFIX) and _is_number(value):
                values.setdefault(key[len(CONTINUAL_PREFIX) :], {})[run["seed"]] = value
    stats = {}
    for name, by_seed in sorted(values.items()):
        summary = statistics.summarize(by_seed)
        stats[name] = {"mean": summary.mean, "std": summary.std, "n": summary.n}
    return stats


# ------------------------------------------------------------------------------------ verdict
def _verdict(
    ranking: list[str],
    comparisons: dict[str, dict],
    baseline: str | None,
    m: float,
    runs: dict[str, list[dict]],
) -> tuple[str, str]:
    """(verdict, one-sentence reason) by the rules in the module docstring; m >= 0."""
    if not ranking:
        n_failed, n_missing = len(runs["failed"]), len(runs["missing"])
        return "inconclusive", (
            f"inconclusive: no arm completed ({n_failed} runs failed, {n_missing} missing)"
        )
    if len(ranking) == 1:
        return "inconclusive", f"inconclusive: nothing to compare, only {ranking[0]} completed"
    if baseline and baseline not in ranking:
        return "inconclusive", (
            f"inconclusive: the baseline {baseline} has no completed seed to compare against"
        )
    if baseline == ranking[0]:
        return _baseline_best_verdict(comparisons["best_vs_runner_up"], m)
    key = "best_vs_baseline" if baseline else "best_vs_runner_up"
    return _challenger_verdict(comparisons[key], m, against_baseline=bool(baseline))


def _baseline_best_verdict(lead: dict, m: float) -> tuple[str, str]:
    """`lead` is baseline vs runner-up: does any arm beat the baseline?"""
    if lead["ci95"] is None:
        return "inconclusive", _no_variance_reason(lead)
    lo, hi = lead["ci95"]
    base, other, n = lead["first"], lead["second"], _n_text(lead)
    if lo > 0:
        return "refuted", (
            f"refuted: the baseline {base} ranks best, ahead of {other} by {_num(lead['diff'])} "
            f"(95% CI {_interval(lo, hi)}, p={_p(lead['p_value'])}, {n})"
        )
    if lo > -m:
        return "refuted", (
            f"refuted: the baseline {base} ranks best and the 95% CI of {other}'s gain over it, "
            f"{_interval(-hi, -lo)}, stays below the minimum effect {_num(m)} ({n})"
        )
    return "inconclusive", (
        f"inconclusive: the baseline {base} ranks best, but the 95% CI of its lead over "
        f"{other}, {_interval(lo, hi)}, contains 0 ({n})"
    )


def _challenger_verdict(comp: dict, m: float, against_baseline: bool) -> tuple[str, str]:
    """`comp` is best arm vs baseline (or runner-up): is the best arm better by at least m?"""
    if comp["ci95"] is None:
        return "inconclusive", _no_variance_reason(comp)
    lo, hi = comp["ci95"]
    best, other, n = comp["first"], comp["second"], _n_text(comp)
    other = f"the baseline {other}" if against_baseline else other
    interval, diff = _interval(lo, hi), _num(comp["diff"])
    if lo > m:
        above = f", above the minimum effect {_num(m)}" if m > 0 else ""
        return "supported", (
            f"supported: {best} beats {other} by {diff} "
            f"(95% CI {interval}{above}; p={_p(comp['p_value'])}, {n})"
        )
    if m > 0 and hi < m:
        return "refuted", (
            f"refuted: {best} beats {other} by only {diff} and the 95% CI of the difference, "
            f"{interval}, lies below the minimum effect {_num(m)} ({n})"
        )
    if lo <= 0:
        return "inconclusive", (
            f"inconclusive: the 95% CI of the difference between {best} and {other}, "
            f"{interval}, contains 0 ({n})"
        )
    return "inconclusive", (
        f"inconclusive: the 95% CI of the difference between {best} and {other}, {interval}, "
        f"contains the minimum effect {_num(m)} ({n})"
    )


def _no_variance_reason(comp: dict) -> str:
    if comp["n_first"] < 2 and comp["n_second"] < 2:
        return (
            f"inconclusive: only n=1 seed per arm ({comp['first']} vs {comp['second']}), "
            "so there is no variance estimate"
        )
    single = comp["first"] if comp["n_first"] < 2 else comp["second"]
    return (
        f"inconclusive: {single} has only n=1 seed, so there is no variance estimate for "
        f"{comp['first']} vs {comp['second']}"
    )


def _n_text(comp: dict) -> str:
    if comp["n_first"] == comp["n_second"]:
        return f"n={comp['n_first']} per arm"
    return f"n={comp['n_first']} vs {comp['n_second']}"


def _num(x: float) -> str:
    return f"{x:.4g}"


def _p(p: float) -> str:
    return f"{p:.2g}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_num(lo)}, {_num(hi)}]"


def _rounded(obj: Any) -> Any:
    """Floats to SIGNIFICANT_DIGITS (non-finite to None), recursively; tuples become lists."""
    if isinstance(obj, float):
        return float(f"{obj:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _rounded(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(value) for value in obj]
    return obj


# ------------------------------------------------------------------------------------ writing
def write_conclusion(sweep_dir: str | Path) -> dict[str, Any]:
    """Build the conclusion and write conclusion.json/.md/.png and its TensorBoard run."""
    sweep_dir = Path(sweep_dir)
    conclusion = build_conclusion(sweep_dir)
    markdown = render_markdown(conclusion)
    text = json.dumps(conclusion, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(sweep_dir / "conclusion.json", lambda f: f.write(text.encode("utf-8")))
    write_atomic(sweep_dir / "conclusion.md", lambda f: f.write(markdown.encode("utf-8")))
    write_atomic(sweep_dir / "conclusion.png", lambda f: _plot(conclusion).savefig(f, format="png"))
    for arm, entry in conclusion.get("continual", {}).items():
        figure = _plot_matrices(arm, entry)
        write_atomic(sweep_dir / matrix_plot_name(arm), lambda f, fig=figure: fig.savefig(f))
    _write_tensorboard(sweep_dir / TENSORBOARD_DIR, conclusion, markdown)
    return conclusion


def matrix_plot_name(arm: str) -> str:
    """conclusion_<arm>_matrix.png, safe as a file name whatever the arm is called."""
    safe = re.sub(r"[^\w.=,+-]", "_", arm)
    return f"conclusion_{safe}_matrix.png"


def _write_tensorboard(log_dir: Path, conclusion: dict, markdown: str) -> None:
    """A fresh TensorBoard run holding the conclusion as text (never appended to)."""
    from torch.utils.tensorboard import SummaryWriter  # heavy import; only when writing

    shutil.rmtree(log_dir, ignore_errors=True)
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        writer.add_text("conclusion", markdown, global_step=0)
        writer.add_text("verdict", conclusion["reason"], global_step=0)


def _plot(conclusion: dict) -> Any:
    """Success metric per group: mean with 95% CI bars, each seed a dot, best arm highlighted."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    groups = conclusion["groups"]
    fig = Figure(figsize=(max(4.0, 1.3 * len(groups) + 2.0), 4.0), dpi=100, layout="tight")
    ax = fig.add_subplot()
    for x, group in enumerate(groups):
        color = "tab:orange" if group["arm"] == conclusion["best_arm"] else "tab:blue"
        seeds = list(group["values"].values())
        ax.scatter(_spread(x, len(seeds)), seeds, color=color, alpha=0.5, s=20, zorder=3)
        yerr = None
        if group["ci95"]:
            yerr = [[group["mean"] - group["ci95"][0]], [group["ci95"][1] - group["mean"]]]
        ax.errorbar(x, group["mean"], yerr=yerr, fmt="D", color=color, capsize=6, zorder=4)
    baseline = conclusion["baseline"]
    labels = [g["arm"] + ("\n(baseline)" if g["arm"] == baseline else "") for g in groups]
    ax.set_xticks(range(len(groups)), labels)
    if not groups:
        ax.text(0.5, 0.5, "no completed arm", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(conclusion["experiment"]["name"] or "experiment")
    ax.set_ylabel(conclusion["success_metric"]["name"])
    ax.set_xlabel("arm, best first (orange); diamond = mean with 95% CI, dots = seeds")
    ax.grid(axis="y", alpha=0.3)
    return fig


# Exact match on a fixed 0..1 scale so groups compare by colour; loss: low (good) is bright too.
HEATMAP_SCALES = {
    "exact_match": {"vmin": 0.0, "vmax": 1.0, "cmap": "viridis"},
    "loss": {"cmap": "viridis_r"},
}
LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "linewidth": 0}


def _plot_matrices(arm: str, entry: dict) -> Any:
    """Heatmaps of a continual group's mean score matrices: exact match, then loss."""
    from matplotlib.figure import Figure

    rows, benchmarks = entry["rows"], entry["benchmarks"]
    width = max(3.5, 1.1 * len(benchmarks) + 2.0)
    fig = Figure(figsize=(2 * width, 0.6 * len(rows) + 2.0), dpi=100, layout="tight")
    for index, name in enumerate(("exact_match", "loss")):
        ax = fig.add_subplot(1, 2, index + 1)
        mean, std = entry["matrix"][name]["mean"], entry["matrix"][name]["std"]
        image = ax.imshow(mean, aspect="auto", **HEATMAP_SCALES[name])
        for r, c in ((r, c) for r in range(len(rows)) for c in range(len(benchmarks))):
            label = _value_std(mean[r][c], std[r][c]).replace(" ± ", "\n± ")
            ax.text(c, r, label, ha="center", va="center", fontsize=8, bbox=LABEL_BOX)
        ax.set_xticks(range(len(benchmarks)), benchmarks)
        ax.set_yticks(range(len(rows)), [f"after {r}" if i else r for i, r in enumerate(rows)])
        ax.set_xlabel("benchmark")
        ax.set_title(f"{arm}: {name} (mean of n={entry['n']})")
        fig.colorbar(image, ax=ax)
    return fig


def _spread(x: float, n: int) -> list[float]:
    """Deterministic horizontal offsets so seeds with equal values stay visible."""
    width = 0.25
    return [x + (i - (n - 1) / 2) * (width / max(n - 1, 1)) for i in range(n)]


# ----------------------------------------------------------------------------------- markdown
def render_markdown(conclusion: dict[str, Any]) -> str:
    """The conclusion as a readable markdown page."""
    metric = conclusion["success_metric"]
    lines = [
        f"# Conclusion: {conclusion['experiment']['name']}",
        "",
        f"- Experiment: `{conclusion['experiment']['id']}`",
        f"- Hypothesis: {conclusion['hypothesis'] or '(none stated)'}",
        f"- Success metric: `{metric['name']}` ({metric['mode']}, "
        f"minimum effect {_num(metric['min_effect'])})",
        f"- Baseline: {conclusion['baseline'] or '(none: best vs runner-up)'}",
        "",
        f"## Verdict: {conclusion['verdict']}",
        "",
        conclusion["reason"],
        "",
    ]
    lines += _groups_markdown(conclusion)
    lines += _continual_markdown(conclusion.get("continual", {}))
    lines += _other_metrics_markdown(conclusion["other_metrics"])
    lines += _comparisons_markdown(conclusion["comparisons"])
    lines += _problems_markdown(conclusion)
    return "\n".join(lines).rstrip() + "\n"


def _groups_markdown(conclusion: dict) -> list[str]:
    lines = [
        f"## Arms ranked by {conclusion['success_metric']['name']}",
        "",
        "| rank | arm | mean ± std | 95% CI | n | seeds | overrides of this arm |",
        "|---:|---|---|---|---:|---|---|",
    ]
    shared = _shared_overrides(conclusion["groups"])
    for g in conclusion["groups"]:
        overrides = " ".join(f"`{o}`" for o in g["overrides"] if o not in shared)
        lines.append(
            f"| {g['rank']} | {g['arm']} | {_mean_std(g)} | {_ci_text(g['ci95'])} | {g['n']} "
            f"| {_seeds_text(g['values'])} | {overrides} |"
        )
    if not conclusion["groups"]:
        lines.append("| | (no completed arm) | | | | | |")
    return lines + [""]


def _continual_markdown(continual: dict[str, dict]) -> list[str]:
    """Each continual group's exact-match matrix (mean ± std over seeds) and its metrics."""
    lines = []
    for arm, entry in continual.items():
        mean, std = entry["matrix"]["exact_match"]["mean"], entry["matrix"]["exact_match"]["std"]
        lines += [
            f"## Continual: {arm} (exact match, mean ± std over n={entry['n']} seeds)",
            "",
            "| scored after | " + " | ".join(entry["benchmarks"]) + " |",
            "|---|" + "---:|" * len(entry["benchmarks"]),
        ]
        for r, row in enumerate(entry["rows"]):
            label = row if r == 0 else f"stage {r}: {row}"
            cells = [_value_std(m, s) for m, s in zip(mean[r], std[r], strict=True)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", _continual_metrics_line(entry["metrics"]), ""]
        lines += [f"![{arm} score matrices]({matrix_plot_name(arm)})", ""]
    return lines


def _continual_metrics_line(metrics: dict[str, dict]) -> str:
    """Exact-match metrics of the chain: average final score, BWT, FWT, drops, forgetting."""
    shown = ["avg_final", "bwt", "fwt", "max_drop"]
    shown += sorted(name for name in metrics if name.startswith("forgetting/"))
    parts = [
        f"{name} {_value_std(metrics[name]['mean'], metrics[name]['std'])}"
        for name in shown
        if name in metrics
    ]
    return "Continual metrics (exact match): " + (" · ".join(parts) or "none")


def _value_std(mean: float, std: float | None) -> str:
    return _num(mean) + (f" ± {_num(std)}" if std is not None else "")


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
        cells = [_num(other[arm][name]) if name in other[arm] else "" for arm in arms]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _shared_overrides(groups: list[dict]) -> set[str]:
    """Overrides every arm has (the preset, ids, paths): the table shows what sets arms apart."""
    if len(groups) < 2:
        return {o for g in groups for o in g["overrides"] if o.startswith(BOOKKEEPING_OVERRIDES)}
    shared = set(groups[0]["overrides"]).intersection(*(g["overrides"] for g in groups[1:]))
    return shared | {
        o for g in groups for o in g["overrides"] if o.startswith(BOOKKEEPING_OVERRIDES)
    }


def _comparisons_markdown(comparisons: list[dict]) -> list[str]:
    if not comparisons:
        return []
    lines = [
        "## Comparisons (Welch; difference oriented so positive = first is better)",
        "",
        "| comparison | first | second | difference | 95% CI | p | P(first beats second) | n |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    # When the runner-up is the baseline both comparisons are one test: one row, both names.
    rows: dict[tuple[str, str], list[str]] = {}
    for c in comparisons:
        rows.setdefault((c["first"], c["second"]), []).append(c["name"].replace("_", " "))
    for c in comparisons:
        names = rows.pop((c["first"], c["second"]), None)
        if names is None:
            continue
        p = _p(c["p_value"]) if c["p_value"] is not None else "–"
        lines.append(
            f"| {', '.join(names)} | {c['first']} | {c['second']} | {_num(c['diff'])} "
            f"| {_ci_text(c['ci95'])} | {p} | {_num(c['prob_improvement'])} "
            f"| {c['n_first']} vs {c['n_second']} |"
        )
    return lines + [""]


def _problems_markdown(conclusion: dict) -> list[str]:
    lines = []
    if conclusion["failed"]:
        lines += ["## Failed runs", ""]
        for run in conclusion["failed"]:
            error = " ".join(str(run["error"]).split())  # one line, whatever the error held
            lines.append(f"- {run['arm']} seed {run['seed']} (`{run['dir']}`): {error}")
        lines.append("")
    if conclusion["missing"]:
        lines += ["## Missing runs (no result.json: killed or never ran)", ""]
        lines += [f"- {r['arm']} seed {r['seed']} (`{r['dir']}`)" for r in conclusion["missing"]]
        lines.append("")
    return lines


def _mean_std(group: dict) -> str:
    std = f" ± {_num(group['std'])}" if group["std"] is not None else ""
    return f"{_num(group['mean'])}{std}"


def _ci_text(ci: list[float] | None) -> str:
    return _interval(*ci) if ci else "–"


def _seeds_text(values: dict[str, float]) -> str:
    return ", ".join(f"{seed}: {_num(value)}" for seed, value in values.items())


# ----------------------------------------------------------------------------------- printing
def default_console() -> Console:
    """stdout; in a log file (not a terminal) wide enough that tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_summary(conclusion: dict[str, Any], console: Console | None = None) -> None:
    """The ranked arms as a table, then the verdict and any failed or missing runs."""
    console = console or default_console()
    metric = conclusion["success_metric"]
    title = f"{conclusion['experiment']['name']}: {metric['name']} ({metric['mode']})"
    table = Table(title=Text(title))
    for column in ("rank", "arm", "n", "mean ± std", "95% CI", "seeds"):
        table.add_column(column, justify="right" if column in ("rank", "n") else "left")
    for g in conclusion["groups"]:
        table.add_row(
            str(g["rank"]),
            Text(g["arm"]),
            str(g["n"]),
            _mean_std(g),
            _ci_text(g["ci95"]),
            _seeds_text(g["values"]),
        )
    console.print(table)
    style = {"supported": "bold green", "refuted": "bold red"}.get(conclusion["verdict"], "bold")
    console.print(Text(conclusion["reason"], style=style))
    for run in conclusion["failed"]:
        console.print(
            Text(f"FAILED  {run['arm']} seed {run['seed']} ({run['dir']}): {run['error']}")
        )
    for run in conclusion["missing"]:
        console.print(Text(f"MISSING {run['arm']} seed {run['seed']} ({run['dir']})"))
    for arm, entry in conclusion.get("continual", {}).items():
        console.print(Text(f"continual {arm}: {_continual_metrics_line(entry['metrics'])}"))
