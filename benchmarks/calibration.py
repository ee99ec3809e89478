"""Calibration of the verdict statistics: false-positive rate and power by arms and seeds.

    python benchmarks/calibration.py [--reps 1000] [--items 256]

Simulates exact-match scores (0/1 per item) of k arms x n seeds x items and prints, for the
seeds-x-items method (evsys.verdict_statistics) and for Welch's t-test on seed means (the
conclusion's current test), the rate of "supported" verdicts when no arm is better (A/A) and
when one arm is better (power: supported with the truly better arm as the winner).
The simulator is imported by tests/test_verdict_statistics.py.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evsys.verdict_decision import decide  # noqa: E402
from evsys.verdict_statistics import ArmScores  # noqa: E402

EFFECT = 0.35  # logit shift of the better arm in the power runs (~ +7 points at 50%)


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
) -> list[ArmScores]:
    """Arms a0, a1, ... scored 0/1 on the same items; arm j's logit is shifted by effects[j]."""
    effects = np.zeros(n_arms) if effects is None else np.asarray(effects, dtype=float)
    items = tuple(f"q{i}" for i in range(n_items))
    b = rng.normal(0.0, item_sd, n_items)
    common_seed = rng.normal(0.0, 1.0, n_seeds)
    arms = []
    for j in range(n_arms):
        own = rng.normal(0.0, 1.0, n_seeds)
        u = seed_sd * (np.sqrt(seed_corr) * common_seed + np.sqrt(1 - seed_corr) * own)
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


def rates(
    n_arms: int, n_seeds: int, baseline: bool, reps: int, effect: float, n_items: int = 256
) -> tuple[float, float]:
    """(method, Welch) rate of supported verdicts won by the truly better arm (any winner
    when effect is 0: then every supported verdict is a false positive)."""
    rng = np.random.default_rng([n_arms, n_seeds, int(baseline), int(effect * 1000)])
    effects = np.zeros(n_arms)
    if effect:
        effects[-1] = effect  # a0 is the baseline when there is one; the last arm is better
    hits = np.zeros(2)
    for _ in range(reps):
        arms = simulate_arms(rng, n_arms, n_seeds, n_items, effects)
        for k, data in enumerate((arms, seed_means(arms))):
            d = decide(data, "max", baseline="a0" if baseline else None, bounds=(0.0, 1.0))
            winner = d.tests[0].comparison.first if d.tests else None
            right = effect == 0 or winner == f"a{n_arms - 1}"
            hits[k] += d.verdict == "supported" and right
    return float(hits[0] / reps), float(hits[1] / reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--effect", type=float, default=EFFECT)
    args = parser.parse_args()
    start = time.time()
    print(f"reps={args.reps} items={args.items} effect={args.effect} (logit), alpha=0.05")
    print("| arms | seeds | baseline | A/A method | A/A Welch | power method | power Welch |")
    print("|---:|---:|:---:|---:|---:|---:|---:|")
    for n_arms in (2, 4, 8):
        for n_seeds in (2, 3, 5):
            for baseline in (False, True):
                null = rates(n_arms, n_seeds, baseline, args.reps, 0.0, args.items)
                power = rates(n_arms, n_seeds, baseline, args.reps, args.effect, args.items)
                row = [n_arms, n_seeds, "yes" if baseline else "no", *null, *power]
                print("| {} | {} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(*row))
                sys.stdout.flush()
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
