"""The calibration grid of the verdict statistics (issue 27, items 4 and 6), from one script.

    nice -n 10 python benchmarks/statistics_grid.py --sims 1000 --out grid.jsonl   # run
    python benchmarks/statistics_grid.py --table grid.jsonl                        # markdown
    python benchmarks/statistics_grid.py --recheck grid.jsonl --sims 4000 --seed 1 # A/A misses

Per cell (scenario x metric x items x arms x seeds) it draws per-item scores, `--sims` A/A
sweeps (no arm better) and as many with one arm better, and runs evsys's own code on them
(`decide` with the design's seed links, `arm_interval`), and the two textbook tests on the same
data reduced to seed means: Welch's t and the paired t (same-numbered seeds). It reports:

- A/A: the rate of "supported" verdicts when no arm is better, with its 95% Clopper-Pearson
  interval (2 arms: "the best beats the other", two-sided; 3 arms: "an arm beats the baseline
  a0", Holm over the 2, so about half the two-sided rate);
- power: the rate of "supported" with the truly better arm as the winner, the effect set per
  cell at 2.5 standard errors of the difference (from the cell's A/A draws; for a share, at
  most half the room left above it), for evsys, Welch and the paired t under the same
  decision rule;
- coverage and mean width of evsys's 95% interval of the difference (better arm vs a0, in the
  sweeps with the effect, and a1 vs a0 in the A/A ones: both pooled), and of one arm's
  interval (a0, A/A sweeps; Wilson's for a 0/1 share on fewer than 300 items).

Model (latent scale: the score itself for a continuous metric, the logit of P(correct) for a
0/1 one): y[a, s, i] = mu + effect_a + b_i + c[a, i] + u[a, s] + e[a, s, i], with item
difficulty b ~ N(0, 1.5), arm-by-item c, seed effect u, seed-by-item e ~ N(0, 0.3); the
scenario sets c's and u's sd and whether same-numbered seeds of two arms share their effect
(`linked`: the same initialisation and data order, so the design pairs them by seed) or not
(independent draws: the design compares them as independent seeds). mu gives the metric's
mean (a share of 0.5, 0.03 or 0.97; 0 for the continuous one). Every sweep draws new items
and seeds. Importable: tests/test_statistics_grid.py runs a few cells with fewer sims.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evsys.conclusion.decision import decide  # noqa: E402
from evsys.conclusion.inference import ArmScores, arm_interval, holm  # noqa: E402

ALPHA = 0.05
EFFECT_SE = 2.5  # the power runs' effect, in standard errors of the difference
ITEM_SD, CELL_SD = 1.5, 0.3
SCENARIOS = {  # seed sd, its correlation between same-numbered seeds of two arms, c's sd
    "seeds dominate": {"seed_sd": 0.3, "seed_corr": 0.7, "arm_item_sd": 0.1},
    "seeds dominate (unlinked)": {"seed_sd": 0.3, "seed_corr": 0.0, "arm_item_sd": 0.1},
    "items dominate": {"seed_sd": 0.03, "seed_corr": 0.5, "arm_item_sd": 0.6},
    "both": {"seed_sd": 0.2, "seed_corr": 0.5, "arm_item_sd": 0.4},
}
METRICS = {"continuous": None, "0/1": 0.5, "0/1 rare": 0.03, "0/1 near-certain": 0.97}
ITEMS = (20, 50, 100, 300)
ARMS = (2, 3)  # 2: the best vs the other; 3: every arm vs the baseline a0
SEEDS = (2, 3, 5)
# rare and near-certain shares in the scenario with both kinds of noise only (the grid's size)
GRID_METRICS = {
    "seeds dominate": ("continuous", "0/1"),
    "seeds dominate (unlinked)": ("continuous", "0/1"),
    "items dominate": ("continuous", "0/1"),
    "both": ("continuous", "0/1", "0/1 rare", "0/1 near-certain"),
}


@dataclass(frozen=True)
class Cell:
    scenario: str
    metric: str
    n_items: int
    n_arms: int
    n_seeds: int

    @property
    def binary(self) -> bool:
        return METRICS[self.metric] is not None

    @property
    def linked(self) -> bool:
        return SCENARIOS[self.scenario]["seed_corr"] > 0


def grid_cells() -> list[Cell]:
    """Every cell, 3 seeds first (the usual budget), then 2 and 5: a run cut short still
    covers every scenario, metric and item count."""
    return [
        Cell(scenario, metric, n_items, n_arms, n_seeds)
        for n_seeds in (3, 2, 5)
        for scenario, metrics in GRID_METRICS.items()
        for metric in metrics
        for n_items, n_arms in itertools.product(ITEMS, ARMS)
    ]


def table_order(results: list[dict]) -> list[dict]:
    """Results in reading order: scenario, metric, items, arms, seeds."""
    order = {name: i for i, name in enumerate(GRID_METRICS)}
    metric = {name: i for i, name in enumerate(METRICS)}
    return sorted(
        results,
        key=lambda r: (
            order[r["cell"]["scenario"]],
            metric[r["cell"]["metric"]],
            r["cell"]["n_items"],
            r["cell"]["n_arms"],
            r["cell"]["n_seeds"],
        ),
    )


# ------------------------------------------------------------------------------ simulation
def _total_sd(cell: Cell) -> float:
    s = SCENARIOS[cell.scenario]
    return float(np.sqrt(ITEM_SD**2 + s["arm_item_sd"] ** 2 + s["seed_sd"] ** 2 + CELL_SD**2))


_Z, _W = np.polynomial.hermite_e.hermegauss(80)
_W = _W / _W.sum()


def population_mean(cell: Cell, latent: float) -> float:
    """An arm's mean over the populations of items and seeds at this latent location."""
    if not cell.binary:
        return latent
    return float(_W @ special.expit(latent + _total_sd(cell) * _Z))


def location(cell: Cell) -> float:
    """mu: the latent location that gives the metric's mean."""
    if not cell.binary:
        return 0.0
    target = METRICS[cell.metric]
    return optimize.brentq(lambda mu: population_mean(cell, mu) - target, -30.0, 30.0)


def draw(rng: np.random.Generator, cell: Cell, sims: int, shifts: np.ndarray) -> np.ndarray:
    """Scores: sims x arms x seeds x items, arm j's latent shifted by shifts[j]."""
    s = SCENARIOS[cell.scenario]
    k, n, m = cell.n_arms, cell.n_seeds, cell.n_items
    b = rng.normal(0.0, ITEM_SD, (sims, 1, 1, m))
    c = rng.normal(0.0, s["arm_item_sd"], (sims, k, 1, m))
    rho = s["seed_corr"]
    common = rng.standard_normal((sims, 1, n, 1))
    own = rng.standard_normal((sims, k, n, 1))
    u = s["seed_sd"] * (np.sqrt(rho) * common + np.sqrt(1 - rho) * own)
    e = rng.normal(0.0, CELL_SD, (sims, k, n, m))
    latent = location(cell) + shifts[None, :, None, None] + b + c + u + e
    if not cell.binary:
        return latent
    return (rng.random(latent.shape) < special.expit(latent)).astype(float)


# ------------------------------------------------------------------------------ the methods
def evsys_run(cell: Cell, scores: np.ndarray) -> tuple[str | None, tuple, tuple | None]:
    """evsys's verdict on one sweep: (the winner when supported, else None; the 95% interval
    of a_last - a0; a0's own interval)."""
    k, n, m = scores.shape
    items = tuple(f"q{i}" for i in range(m))
    arms = [ArmScores(f"a{j}", tuple(range(n)), scores[j], items) for j in range(k)]
    # the design: linked seeds share one key (paired by seed), unlinked ones do not
    links = {a.arm: ("same" if cell.linked else a.arm) for a in arms}
    bounds = (0.0, 1.0) if cell.binary else None
    baseline = "a0" if k > 2 else None
    d = decide(arms, "max", baseline=baseline, bounds=bounds, pair_seeds=links)
    winner = d.tests[0].comparison.first if d.verdict == "supported" else None
    c = next(
        t.comparison
        for t in d.tests
        if {t.comparison.first, t.comparison.second} == {f"a{k - 1}", "a0"}
    )
    ci = c.ci95 if c.first != "a0" else (-c.ci95[1], -c.ci95[0])
    return winner, ci, arm_interval(arms[0], bounds).ci95


def seed_mean_tests(cell: Cell, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Welch's t and the paired t on seed means, vectorised over sims, under evsys's decision
    rule: the winner's index per sim when supported, else -1."""
    means = scores.mean(axis=3)  # sims x arms x seeds
    sims, k, n = means.shape
    out = {}
    for method in ("welch", "paired t"):
        if k == 2:
            best = np.argmax(means.mean(axis=2), axis=1)
            p = _p_above(method, means, best, 1 - best)
            out[method] = np.where(p < ALPHA, best, -1)
        else:
            p1 = _p_above(method, means, np.full(sims, 1), np.zeros(sims, int))
            p2 = _p_above(method, means, np.full(sims, 2), np.zeros(sims, int))
            best = np.where(means[:, 2].mean(axis=1) > means[:, 1].mean(axis=1), 2, 1)
            adjusted = np.array([holm([a, b]) for a, b in zip(p1, p2, strict=True)])
            p_best = np.where(best == 2, adjusted[:, 1], adjusted[:, 0])
            out[method] = np.where(p_best < ALPHA, best, -1)
    return out


def _p_above(method: str, means: np.ndarray, first: np.ndarray, second: np.ndarray):
    """Doubled one-sided p of "first's mean > second's" (seed means), per sim."""
    rows = np.arange(means.shape[0])
    x, y = means[rows, first], means[rows, second]  # sims x seeds
    n = x.shape[1]
    if method == "paired t":
        d = x - y
        se = d.std(axis=1, ddof=1) / np.sqrt(n)
        t, df = d.mean(axis=1) / np.where(se > 0, se, np.nan), n - 1
    else:
        vx, vy = x.var(axis=1, ddof=1) / n, y.var(axis=1, ddof=1) / n
        se = np.sqrt(vx + vy)
        t = (x.mean(axis=1) - y.mean(axis=1)) / np.where(se > 0, se, np.nan)
        df = (vx + vy) ** 2 / np.where(se > 0, vx**2 / (n - 1) + vy**2 / (n - 1), np.nan)
    p = np.minimum(1.0, 2 * stats.t.sf(t, df))
    return np.where(np.isnan(p), 1.0, p)  # no spread: no test


def welch_width(scores: np.ndarray) -> np.ndarray:
    """Width of Welch's 95% interval of a_last - a0 on seed means, per sim."""
    means = scores.mean(axis=3)
    x, y = means[:, -1], means[:, 0]
    n = x.shape[1]
    vx, vy = x.var(axis=1, ddof=1) / n, y.var(axis=1, ddof=1) / n
    df = (vx + vy) ** 2 / np.maximum(vx**2 / (n - 1) + vy**2 / (n - 1), 1e-300)
    return 2 * stats.t.ppf(1 - ALPHA / 2, np.maximum(df, 1.0)) * np.sqrt(vx + vy)


# ------------------------------------------------------------------------------ one cell
def run_cell(cell: Cell, sims: int, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, *map(ord, cell.scenario + cell.metric), cell.n_items,
                                 cell.n_arms, cell.n_seeds])  # fmt: skip
    k = cell.n_arms
    null = draw(rng, cell, sims, np.zeros(k))
    diffs = null[:, -1].mean(axis=(1, 2)) - null[:, 0].mean(axis=(1, 2))
    effect = EFFECT_SE * float(diffs.std(ddof=1))  # on the metric's scale
    mu = location(cell)
    base = population_mean(cell, mu)
    if cell.binary:  # a share near 1 has little room above it: at most half of it
        effect = min(effect, 0.5 * (1.0 - base))
    shift = optimize.brentq(lambda x: population_mean(cell, mu + x) - base - effect, 0, 30)
    shifts = np.zeros(k)
    shifts[-1] = shift
    alt = draw(rng, cell, sims, shifts)
    result = {"cell": asdict(cell), "sims": sims, "effect": effect}
    evsys_null = [evsys_run(cell, x) for x in null]
    evsys_alt = [evsys_run(cell, x) for x in alt]
    want = f"a{k - 1}"
    aa = sum(w is not None for w, _, _ in evsys_null)
    result["aa"] = aa / sims
    result["aa_ci"] = _clopper_pearson(aa, sims)
    hits = {"evsys": np.array([w == want for w, _, _ in evsys_alt], dtype=float)}
    for method, winners in seed_mean_tests(cell, alt).items():
        hits[method] = (winners == k - 1).astype(float)
    for method, winners in seed_mean_tests(cell, null).items():
        result[f"aa_{method}"] = float(np.mean(winners >= 0))
    result["power"] = {m: float(h.mean()) for m, h in hits.items()}
    rival = max(("welch", "paired t"), key=lambda m: hits[m].mean())
    gap = hits["evsys"] - hits[rival]  # same sweeps: the paired difference's error
    result["power_gap_se"] = float(gap.std(ddof=1) / np.sqrt(sims))
    covered, widths = [], []
    for runs, truth in ((evsys_null, 0.0), (evsys_alt, effect)):
        for _, (lo, hi), _ in runs:
            covered.append(lo <= truth <= hi)
            widths.append(hi - lo)
    result["coverage"] = float(np.mean(covered))
    result["width"] = float(np.mean(widths))
    result["welch_width"] = float(np.mean(np.concatenate([welch_width(null), welch_width(alt)])))
    arm = [(lo <= base <= hi, hi - lo) for _, _, (lo, hi) in evsys_null]
    result["arm_coverage"] = float(np.mean([a for a, _ in arm]))
    result["arm_width"] = float(np.mean([w for _, w in arm]))
    return result


def _clopper_pearson(hits: int, n: int) -> tuple[float, float]:
    lo = 0.0 if hits == 0 else float(stats.beta.ppf(ALPHA / 2, hits, n - hits + 1))
    hi = 1.0 if hits == n else float(stats.beta.ppf(1 - ALPHA / 2, hits + 1, n - hits))
    return lo, hi


# ------------------------------------------------------------------------------ targets, table
def misses(r: dict) -> list[str]:
    """The acceptance targets a cell misses (issue 27): A/A <= 5% with its upper bound <=
    6.5%, power >= max(Welch, paired t) - 0.03, coverage in [0.94, 0.97], arm coverage >= 0.94.
    "power*": below only a rival that exceeds its own level there (its A/A > 6.5%: Welch and
    the paired t on seed means do not see the item sample)."""
    out = []
    if r["aa"] > 0.05 or r["aa_ci"][1] > 0.065:
        out.append("A/A")
    p, level = r["power"], 0.05 if r["cell"]["n_arms"] == 2 else 0.025
    below = [m for m in ("welch", "paired t") if p["evsys"] < p[m] - 0.03]
    if below:
        valid = [m for m in below if r[f"aa_{m}"] <= level + 0.015]
        out.append("power" if valid else "power*")
    if not 0.94 <= r["coverage"] <= 0.97:
        out.append("coverage")
    if r["arm_coverage"] < 0.94:
        out.append("arm coverage")
    return out


HEADER = (
    "| scenario | metric | items | arms | seeds | A/A [95% CI] | A/A Welch | A/A paired t "
    "| power | Welch | paired t | coverage | width (Welch) | arm coverage | arm width | misses |"
)


def table(results: list[dict]) -> str:
    lines = [HEADER, "|" + "---|" * 5 + "---:|" * 10 + "---|"]
    for r in results:
        c, p = r["cell"], r["power"]
        lo, hi = r["aa_ci"]
        lines.append(
            f"| {c['scenario']} | {c['metric']} | {c['n_items']} | {c['n_arms']} | "
            f"{c['n_seeds']} | {r['aa']:.3f} [{lo:.3f}, {hi:.3f}] | {r['aa_welch']:.3f} | "
            f"{r['aa_paired t']:.3f} | {p['evsys']:.3f} | {p['welch']:.3f} | "
            f"{p['paired t']:.3f} | {r['coverage']:.3f} | {r['width']:.3g} "
            f"({r['welch_width']:.3g}) | {r['arm_coverage']:.3f} | {r['arm_width']:.3g} | "
            f"{', '.join(misses(r)) or '–'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="append one JSON line per cell")
    parser.add_argument("--table", type=Path, help="print the markdown table of a run's file")
    parser.add_argument("--only", default="", help="scenarios, comma-separated (default: all)")
    parser.add_argument("--recheck", type=Path, help="rerun the cells of a run's file that miss")
    parser.add_argument("--miss", default="A/A", help="with --recheck: which miss (default A/A)")
    parser.add_argument("--seed", type=int, default=0, help="the draws' seed (a recheck: 1)")
    args = parser.parse_args(argv)
    if args.table:
        rows = {json.dumps(r["cell"]): r for r in map(json.loads, args.table.open())}
        print(table(table_order(list(rows.values()))))
        return 0
    if args.recheck:  # fresh draws, usually more of them, for the cells that missed
        rows = [json.loads(x) for x in args.recheck.read_text().splitlines()]
        cells = [Cell(**r["cell"]) for r in rows if args.miss in misses(r)]
        print(table([run_cell(c, args.sims, args.seed) for c in cells]))
        return 0
    done = set()
    if args.out and args.out.exists():  # resume: cells already in the file are skipped
        done = {json.dumps(json.loads(x)["cell"]) for x in args.out.read_text().splitlines()}
    only = [x for x in args.only.split(",") if x]
    cells = [c for c in grid_cells() if not only or c.scenario in only]
    start = time.time()
    for i, cell in enumerate(cells):
        if json.dumps(asdict(cell)) in done:
            continue
        r = run_cell(cell, args.sims)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(r) + "\n")
        print(f"[{i + 1}/{len(cells)} {time.time() - start:.0f}s] {table([r]).splitlines()[-1]}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
