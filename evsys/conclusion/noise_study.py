"""A variance study's sweep dir as evsys/conclusion/noise.py's crossed design, per metric:
`evsys conclude --variance DIR` (a sweep of `+experiment=variance_study`, or any sweep whose
arms ran the same seeds), and the conclusion's note when the success metric's SNR is low.

An arm here is the conclusion's: a planned arm less its `data.order_seed` cell
(`lr_1e-3,order_seed=1` is arm `lr_1e-3`: Plan.by_treatment); its runs' init seed is `seed`,
their data order `data.order_seed` (unset: the order follows the seed, so seed and order are
one factor). Only the selection stage's runs count (experiment.confirm's fresh seeds do
not). Every arm x seed x order cell needs one completed run, every metric a finite value in
each; a metric whose runs all left per-item scores of the same items is analysed per item,
any other per run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evsys.conclusion.item_scores import read_metric_items
from evsys.conclusion.noise import LOW_SNR, NoiseComponents, noise_components
from evsys.conclusion.runs import collect_runs, is_number
from evsys.conclusion.text import num
from evsys.records import Plan

ORDER_KEY = "data.order_seed"


@dataclass(frozen=True)
class MetricNoise:
    metric: str
    arms: tuple[str, ...]
    components: NoiseComponents


def sweep_noise(sweep_dir: str | Path) -> list[MetricNoise]:
    """Each metric's components in the sweep dir's completed runs, the success metric first.
    Raises ValueError naming the cell when the design is not complete."""
    # the selection stage's runs: a confirmation's fresh seeds of its two arms are no part of
    # the crossed design (they would give those arms more seeds than the others)
    plan = Plan.load(sweep_dir).compared()
    completed = collect_runs(sweep_dir, plan)["completed"]
    if not completed:
        raise ValueError("no run has completed")
    grid, arms = _design(completed)
    metrics = _shared_metrics(completed)
    metrics.sort(key=lambda m: (m != plan.metric_name, m))
    return [MetricNoise(m, arms, _components(Path(sweep_dir), grid, m)) for m in metrics]


def _design(completed: list[dict]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The runs as an arms x seeds x orders array of run dicts, and the arms' names; raises
    ValueError naming the cell that is empty or held twice."""
    arms = sorted({run["arm"] for run in completed})
    seeds = sorted({run["seed"] for run in completed})
    orders = sorted({_order(run) for run in completed}, key=str)
    grid = np.empty((len(arms), len(seeds), len(orders)), dtype=object)
    for run in completed:
        cell = (
            arms.index(run["arm"]),
            seeds.index(run["seed"]),
            orders.index(_order(run)),
        )
        if grid[cell] is not None:
            raise ValueError(
                f"not a crossed design: runs {grid[cell]['dir']} and {run['dir']} share a cell"
            )
        grid[cell] = run
    for (a, s, d), run in np.ndenumerate(grid):
        if run is None:
            raise ValueError(
                f"not a crossed design: arm {arms[a]!r}, seed {seeds[s]}, "
                f"{ORDER_KEY}={orders[d]} has no completed run"
            )
    return grid, tuple(arms)


def _order(run: dict) -> Any:
    return run["record"].identity_config.get(ORDER_KEY)  # None: the order follows the seed


def _shared_metrics(completed: list[dict]) -> list[str]:
    """The metrics every run recorded as a finite number."""
    names = set.intersection(*(set(run["record"].metrics or {}) for run in completed))
    return [
        m for m in names
        if all(_finite(run["record"].metrics[m]) for run in completed)
    ]  # fmt: skip


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _components(sweep_dir: Path, grid: np.ndarray, metric: str) -> NoiseComponents:
    items = {
        cell: read_metric_items(sweep_dir / run["dir"], metric, run["record"].metrics[metric])
        for cell, run in np.ndenumerate(grid)
    }
    ids = {frozenset(found) for found in items.values() if found is not None}
    if None in items.values() or len(ids) != 1 or len(next(iter(ids))) < 2:
        return _run_level(grid, metric)
    order = sorted(next(iter(ids)))
    scores = np.empty((*grid.shape, len(order)))
    for cell, found in items.items():
        scores[cell] = [found[item] for item in order]
    return noise_components(scores)


# ---------------------------------------------------------------------------------- reading
ROWS = (  # component, its NoiseComponents field, whether it is per item (divided by n_items)
    ("init seed", "seed", False),
    ("data order", "order", False),
    ("init seed x data order", "seed_x_order", False),
    ("item", "item", True),
    ("arm x item", "arm_x_item", True),
    ("residual (run x item)", "residual", True),
)


def noise_texts(found: list[MetricNoise], effect: float | None = None) -> list[str]:
    """The study as plain lines: per metric its components, SNR and seed planning."""
    if not found:
        return ["no metric was recorded by every run"]
    c = found[0].components
    items = f" x {c.n_items} items" if c.n_items else ""
    lines = [
        f"design: {c.n_arms} arms ({', '.join(found[0].arms)}) x {c.n_seeds} init seeds x "
        f"{c.n_orders} data orders{items}"
    ]
    for metric in found:
        lines += ["", *_metric_lines(metric, effect)]
    ranked = sorted((m for m in found if m.components.snr is not None), key=_snr_key)
    if ranked:
        lines += ["", "by SNR: " + ", ".join(f"{m.metric} {_snr(m.components)}" for m in ranked)]
    return lines


def _metric_lines(found: MetricNoise, effect: float | None) -> list[str]:
    c = found.components
    per = f"per item ({c.n_items} items)" if c.n_items else "per run (no per-item scores)"
    lines = [
        f"{found.metric}: {per}",
        "  component                 variance   in a run's mean   share",
    ]
    parts = {name: _in_run_mean(c, field, per_item) for name, field, per_item in ROWS}
    total = math.fsum(v for v in parts.values() if v is not None)
    for name, field, _ in ROWS:
        value, part = getattr(c, field), parts[name]
        if value is None:
            lines.append(f"  {name:<24}  {'-':>9}   not estimable in this design")
            continue
        share = f"{100 * part / total:5.1f}%" if total > 0 else "    -"
        lines.append(f"  {name:<24}  {value:9.3g}   {part:15.3g}   {share}")
    means = ", ".join(f"{arm} {num(m)}" for arm, m in zip(found.arms, c.arm_means, strict=True))
    lines.append(f"  arm means: {means}")
    lines.append(
        f"  signal (spread of arm means) {_opt(c.signal)}, noise (std of a run's mean within an "
        f"arm) {_opt(c.noise)}, SNR {_snr(c)}"
    )
    lines += _planning(c, effect)
    return lines


def _planning(c: NoiseComponents, effect: float | None) -> list[str]:
    now = c.mde()
    if now is None:
        return ["  seeds: one run per arm, nothing to plan from"]
    target = effect or c.signal
    if not target:
        return [f"  MDE with {c.runs_per_arm} seeds per arm: {num(now)} (80% power)"]
    needed = c.seeds_needed(target)
    what = f"a difference of {num(target)}" + ("" if effect else " (the spread)")
    seeds = f"{needed} seeds per arm" if needed else "no number of seeds (more items)"
    return [f"  MDE with {c.runs_per_arm} seeds per arm: {num(now)}; {what} needs {seeds}"]


def _in_run_mean(c: NoiseComponents, field: str, per_item: bool) -> float | None:
    value = getattr(c, field)
    if value is None:
        return None
    return value / c.n_items if per_item and c.n_items else value


def _snr(c: NoiseComponents) -> str:
    return "-" if c.snr is None else ("inf" if math.isinf(c.snr) else f"{c.snr:.3g}")


def _snr_key(m: MetricNoise) -> float:
    return -(m.components.snr or 0.0)


def _opt(x: float | None) -> str:
    return "-" if x is None else num(x)


def noise_json(found: list[MetricNoise], effect: float | None = None) -> list[dict]:
    """The study for scripts: per metric its components, SNR, MDE and seeds needed."""
    out = []
    for m in found:
        c = m.components
        target = effect or c.signal
        fields = {f: getattr(c, f) for _, f, _ in ROWS}
        out.append(
            {
                "metric": m.metric, "arms": dict(zip(m.arms, c.arm_means, strict=True)),
                "n_seeds": c.n_seeds, "n_orders": c.n_orders, "n_items": c.n_items,
                "components": fields, "signal": c.signal, "noise": c.noise,
                "snr": None if c.snr is None or math.isinf(c.snr) else c.snr, "mde": c.mde(),
                "effect": target, "seeds_needed": c.seeds_needed(target) if target else None,
            }
        )  # fmt: skip
    return out


# ------------------------------------------------------------------------ the conclusion note
def low_snr_note(completed: list[dict], metric: str) -> str | None:
    """One line when the success metric's SNR (from the runs' values) is below LOW_SNR, naming
    the best-measured metric when another one does better; None when it is not low or there
    are not two arms with two runs each."""
    try:
        grid, _ = _design(completed)
    except ValueError:
        return None  # not a balanced design: nothing to estimate the noise from
    if grid.shape[0] < 2 or grid.shape[1] * grid.shape[2] < 2:
        return None
    snrs = {m: _run_level(grid, m).snr for m in _shared_metrics(completed)}
    mine = snrs.get(metric)
    if mine is None or mine >= LOW_SNR:
        return None
    note = (
        f"{metric} has a low signal-to-noise ratio ({mine:.2g}: the arms' spread is below one "
        "seed's std)"
    )
    best = max((m for m in snrs if snrs[m] is not None), key=lambda m: snrs[m])
    if best != metric and snrs[best] > 2 * mine:
        note += f"; {best} measures these arms better (SNR {snrs[best]:.2g})"
    return note + " (evsys conclude --variance)"


def _run_level(grid: np.ndarray, metric: str) -> NoiseComponents:
    values = np.vectorize(lambda run: float(run["record"].metrics[metric]), otypes=[float])
    return noise_components(values(grid)[..., None], has_items=False)
