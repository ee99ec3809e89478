"""Calibration of the verdict statistics: false-positive rate and power by arms and seeds.

    python benchmarks/calibration.py [--reps 1000] [--scenario default|item-heavy|...]
    python benchmarks/calibration.py --sequential [--pool]   # adaptive seeds
    python benchmarks/calibration.py --components    # the pivot vs Satterthwaite's t
    python benchmarks/calibration.py --extremes      # A/A near 0 and 1 (tied seed means)

Simulates exact-match scores (0/1 per item) of k arms x n seeds x items and prints, for the
seeds-x-items method (evsys.conclusion.inference: seed variance pooled over the arms, each
pair's own, unpaired) and for Welch's t-test on seed means, the rate of "supported" verdicts
when no arm is better (A/A) and when one arm is better (power: supported with the truly
better arm as the winner).
The simulator is imported by tests/test_inference.py.

Model, on the logit scale of P(correct): item difficulty b_i ~ N(0, 1.5), arm-by-item
c[a, i] ~ N(0, 0.3) (arms differ per item even when equal on average), seed effect
u[a, s] ~ N(0, 0.2) shared across arms with correlation 0.5 (same seed = same init and data
order), seed-by-item e[a, s, i] ~ N(0, 0.3); then a Bernoulli draw per item. Every replicate
draws new items and new seeds, so the truth is the population of both.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evsys.conclusion.decision import decide  # noqa: E402
from evsys.conclusion.inference import ArmScores, compare, seed_pool  # noqa: E402
from evsys.conclusion.sequential import sequential_step  # noqa: E402

EM = (0.0, 1.0)  # exact-match bounds
EFFECT = 0.35  # logit shift of the better arm in the power runs (+6 points of exact match)


def simulate_arms(
    rng: np.random.Generator,
    n_arms: int,
    n_seeds: int,
    n_items: int = 256,
    effects: Sequence[float] | None = None,
    *,
    item_sd: float = 1.5,
    arm_item_sd: float = 0.3,
    seed_sd: float = 0.2,
    seed_corr: float = 0.5,
    cell_sd: float = 0.3,
    shared_seeds: bool = True,
    first_seed_scale: float = 1.0,
) -> list[ArmScores]:
    """Arms a0, a1, ... scored 0/1 on the same items; arm j's logit is shifted by effects[j];
    arm a0's seed effect is multiplied by first_seed_scale (unequal seed variances)."""
    effects = np.zeros(n_arms) if effects is None else np.asarray(effects, dtype=float)
    items = tuple(f"q{i}" for i in range(n_items))
    b = rng.normal(0.0, item_sd, n_items)
    common_seed = rng.normal(0.0, 1.0, n_seeds)
    arms = []
    for j in range(n_arms):
        own = rng.normal(0.0, 1.0, n_seeds)
        if not shared_seeds:  # other seeds: nothing in common with the other arms' seeds
            common_seed = rng.normal(0.0, 1.0, n_seeds)
        u = seed_sd * (np.sqrt(seed_corr) * common_seed + np.sqrt(1 - seed_corr) * own)
        u = u * (first_seed_scale if j == 0 else 1.0)
        c = rng.normal(0.0, arm_item_sd, n_items)
        e = rng.normal(0.0, cell_sd, (n_seeds, n_items))
        logit = effects[j] + b[None, :] + c[None, :] + u[:, None] + e
        scores = (rng.random((n_seeds, n_items)) < 1 / (1 + np.exp(-logit))).astype(float)
        seeds = tuple(range(n_seeds)) if shared_seeds else tuple(range(j * 100, j * 100 + n_seeds))
        arms.append(ArmScores(f"a{j}", seeds, scores, items))
    return arms


def seed_means(arms: Sequence[ArmScores]) -> list[ArmScores]:
    """The same arms with only their seed means: the engine falls back to Welch on them."""
    return [ArmScores(a.arm, a.seeds, a.values.mean(axis=1, keepdims=True)) for a in arms]


SCENARIOS = {
    "default": {},
    # seeds barely matter, arms differ a lot per item: what Welch on seed means cannot see
    "item-heavy": {"seed_sd": 0.05, "arm_item_sd": 0.6},
    # same-seed runs strongly alike (same init and data order dominate)
    "seed-correlated": {"seed_sd": 0.4, "seed_corr": 0.9},
    # sphericity violated: arm a0 (the baseline when there is one) has twice the seed sd
    "hetero-seeds": {"first_seed_scale": 2.0},
    # ... and seeds matter more, so the violation is not drowned in item noise
    "hetero-strong": {"seed_sd": 0.4, "seed_corr": 0.5, "first_seed_scale": 2.0},
}
METHODS = ("pooled", "paired", "unpaired", "welch")


def rates(
    n_arms: int,
    n_seeds: int,
    baseline: bool,
    reps: int,
    effect: float,
    n_items: int = 256,
    scenario: str = "default",
) -> dict[str, float]:
    """Per method, the rate of supported verdicts won by the truly better arm (any winner
    when effect is 0: then every supported verdict is a false positive)."""
    rng = np.random.default_rng([n_arms, n_seeds, int(baseline), int(effect * 1000)])
    effects = np.zeros(n_arms)
    if effect:
        effects[-1] = effect  # a0 is the baseline when there is one; the last arm is better
    hits = dict.fromkeys(METHODS, 0)
    base = "a0" if baseline else None
    for _ in range(reps):
        arms = simulate_arms(rng, n_arms, n_seeds, n_items, effects, **SCENARIOS[scenario])
        runs = {
            "paired": decide(arms, "max", baseline=base, bounds=EM, pool_seeds=False),
            "unpaired": decide(arms, "max", baseline=base, bounds=EM, pair_seeds=False),
            "welch": decide(seed_means(arms), "max", baseline=base, bounds=EM),
        }  # pooling needs 3 or more arms: with 2 it is the paired test
        runs["pooled"] = (
            decide(arms, "max", baseline=base, bounds=EM, pool_seeds=True)
            if n_arms > 2
            else runs["paired"]
        )
        for method, d in runs.items():
            winner = d.tests[0].comparison.first if d.tests else None
            right = effect == 0 or winner == f"a{n_arms - 1}"
            hits[method] += d.verdict == "supported" and right
    return {m: h / reps for m, h in hits.items()}


def first_seeds(arms: Sequence[ArmScores], n: int) -> list[ArmScores]:
    """The arms as seen after their first n seeds (a look of a sequential run)."""
    return [ArmScores(a.arm, a.seeds[:n], a.values[:n], a.items) for a in arms]


def sequential_run(
    arms: Sequence[ArmScores], looks: Sequence[int], pool: bool = False
) -> tuple[dict, int]:
    """Every arm vs the baseline a0, seeds added look by look until decided (the seed variance
    pooled over the arms when `pool`); returns the final status and the seeds per arm used."""
    decided: dict[str, str] = {}
    for r, n in enumerate(looks):
        seen = first_seeds(arms, n)
        shared = seed_pool(seen) if pool else None
        comps = [compare(x, seen[0], pool=shared) for x in seen[1:]]
        step = sequential_step(comps, looks, r, 0.0, decided)
        decided = {k: v for k, v in step.status.items() if v in ("supported", "refuted")}
        if step.stop:
            return step.status, n
    raise AssertionError("the last look always stops")


def sequential_rates(
    n_arms: int,
    looks: Sequence[int],
    reps: int,
    effect: float,
    scenario: str = "default",
    pool: bool = False,
) -> tuple[float, float, float]:
    """(rate of any decision under A/A, power: the better arm supported, mean seeds used
    with the effect) of the sequential design against the baseline a0."""
    rng = np.random.default_rng([n_arms, *looks, int(effect * 1000)])
    false, power, seeds = 0, 0, 0
    for _ in range(reps):
        null = simulate_arms(rng, n_arms, looks[-1], **SCENARIOS[scenario])
        false += any(v != "inconclusive" for v in sequential_run(null, looks, pool)[0].values())
        effects = np.zeros(n_arms)
        effects[-1] = effect
        alt = simulate_arms(rng, n_arms, looks[-1], effects=effects, **SCENARIOS[scenario])
        status, n = sequential_run(alt, looks, pool)
        power += status[f"a{n_arms - 1} vs a0"] == "supported"
        seeds += n
    return false / reps, power / reps, seeds / reps


def logit_for_accuracy(accuracy: float, item_sd: float = 1.5) -> float:
    """The logit shift that gives the simulator's arms this mean accuracy over items (item
    difficulty ~ N(0, item_sd) on the logit scale; seed and cell effects left out)."""
    z = np.linspace(-8.0, 8.0, 2001)
    w = stats.norm.pdf(z) / stats.norm.pdf(z).sum()
    return optimize.brentq(
        lambda shift: float(w @ special.expit(shift + item_sd * z)) - accuracy, -30.0, 30.0
    )


def extreme_rates(accuracy: float, n_seeds: int, reps: int, n_arms: int = 2) -> tuple:
    """A/A near a bound of a 0/1 metric (no arm better, every arm at `accuracy`): the rate
    of supported verdicts, and the share of replicates whose seed means tie exactly (the
    best's first comparison has a seed variance of 0)."""
    rng = np.random.default_rng([n_arms, n_seeds, int(accuracy * 10_000)])
    shift = logit_for_accuracy(accuracy)
    supported = ties = 0
    for _ in range(reps):
        arms = simulate_arms(rng, n_arms, n_seeds, effects=[shift] * n_arms)
        d = decide(arms, "max", bounds=EM)
        supported += d.verdict == "supported"
        ties += d.tests[0].comparison.components.seed_terms[0][0] == 0.0
    return supported / reps, ties / reps


def extremes_table(args: argparse.Namespace) -> None:
    print("| accuracy | seeds | A/A supported | tied seed means |")
    print("|---:|---:|---:|---:|")
    for accuracy in (0.005, 0.02, 0.98, 0.995):
        for n_seeds in (2, 3):
            aa, ties = extreme_rates(accuracy, n_seeds, args.reps)
            print(f"| {accuracy} | {n_seeds} | {aa:.3f} | {ties:.3f} |")
            sys.stdout.flush()


def components_rates(n_seeds: int, seed_sd: float, item_sd: float, reps: int) -> tuple:
    """A/A on Gaussian paired differences D = seed + item + noise (noise sd 1, 256 items):
    rejection rate at 0.05 of the pivot test, and of the same statistic read against
    Student t with Satterthwaite's df (the textbook variance-components test)."""
    rng = np.random.default_rng([n_seeds, int(seed_sd * 1000), int(item_sd * 1000)])
    items, zeros = tuple(f"q{i}" for i in range(256)), np.zeros((n_seeds, 256))
    hits = np.zeros(2)
    for _ in range(reps):
        d = (
            seed_sd * rng.standard_normal((n_seeds, 1))
            + item_sd * rng.standard_normal((1, 256))
            + rng.standard_normal((n_seeds, 256))
        )
        seeds = tuple(range(n_seeds))
        c = compare(ArmScores("a", seeds, d, items), ArmScores("b", seeds, zeros, items))
        satterthwaite = 2 * stats.t.sf(abs(c.diff) / c.se, c.df)
        hits += [c.p_value < 0.05, satterthwaite < 0.05]
    return tuple(hits / reps)


def components_table(args: argparse.Namespace) -> None:
    print("| seeds | seed sd | item sd | pivot (used) | Satterthwaite t |")
    print("|---:|---:|---:|---:|---:|")
    for n_seeds in (2, 3, 5):
        for seed_sd, item_sd in ((0.0, 0.0), (0.2, 0.0), (0.2, 0.3), (0.5, 0.5), (1.0, 0.5)):
            pivot, satt = components_rates(n_seeds, seed_sd, item_sd, args.reps)
            print(f"| {n_seeds} | {seed_sd} | {item_sd} | {pivot:.3f} | {satt:.3f} |")
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--effect", type=float, default=EFFECT)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    parser.add_argument("--arms", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--sequential", action="store_true", help="the adaptive-seeds table")
    parser.add_argument(
        "--pool", action="store_true", help="--sequential: pool the seed variance over the arms"
    )
    parser.add_argument(
        "--components", action="store_true", help="pivot vs Satterthwaite on Gaussian data"
    )
    parser.add_argument(
        "--extremes", action="store_true", help="A/A of 2 arms near 0 and 1 accuracy"
    )
    args = parser.parse_args()
    start = time.time()
    print(
        f"scenario={args.scenario} reps={args.reps} items={args.items} "
        f"effect={args.effect} (logit), alpha=0.05"
    )
    table = sequential_table if args.sequential else fixed_table
    table = components_table if args.components else table
    (extremes_table if args.extremes else table)(args)
    print(f"({time.time() - start:.0f} s)")


def sequential_table(args: argparse.Namespace) -> None:
    print("| arms | looks (seeds) | A/A any decision | power | mean seeds used (effect) |")
    print("|---:|:---|---:|---:|---:|")
    for n_arms in args.arms:
        for looks in ((2, 3, 5), (3, 5, 8)):
            false, power, seeds = sequential_rates(
                n_arms, looks, args.reps, args.effect, args.scenario, args.pool
            )
            text = ", ".join(map(str, looks))
            print(f"| {n_arms} | {text} | {false:.3f} | {power:.3f} | {seeds:.2f} |")
            sys.stdout.flush()


def fixed_table(args: argparse.Namespace) -> None:
    cols = (
        " | ".join(f"A/A {m}" for m in METHODS) + " | " + " | ".join(f"power {m}" for m in METHODS)
    )
    print(f"| arms | seeds | baseline | {cols} |")
    print("|---:|---:|:---:|" + "---:|" * (2 * len(METHODS)))
    for n_arms in args.arms:
        for n_seeds in (2, 3, 5):
            for baseline in (False, True):
                null = rates(n_arms, n_seeds, baseline, args.reps, 0.0, args.items, args.scenario)
                power = rates(
                    n_arms, n_seeds, baseline, args.reps, args.effect, args.items, args.scenario
                )
                cells = [f"{null[m]:.3f}" for m in METHODS] + [f"{power[m]:.3f}" for m in METHODS]
                flag = "yes" if baseline else "no"
                print(f"| {n_arms} | {n_seeds} | {flag} | " + " | ".join(cells) + " |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
