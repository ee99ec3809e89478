"""The conclusion on per-item scores, through the real conclusion code on fabricated sweep dirs:
item sampling counts in the uncertainty, and the error rates hold when nothing differs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from evsys.conclusion.build import build_conclusion
from evsys.conclusion.scores import metric_bounds
from tests.test_conclusion import write_sweep

LABEL = "addition"


def write_item_sweep(root: Path, arms: dict[str, np.ndarray], **experiment) -> Path:
    """A sweep dir whose runs hold per-item exact match: arms[arm][seed, item] in {0, 1}."""
    sweep = write_sweep(
        root, {a: [float(row.mean()) for row in v] for a, v in arms.items()}, **experiment
    )
    for arm, values in arms.items():
        for seed, row in enumerate(values):
            lines = [
                json.dumps({"item": f"{i}", "exact_match": float(x)}) for i, x in enumerate(row)
            ]
            scores = sweep / f"{arm}_seed{seed}" / "scores" / f"{LABEL}.jsonl"
            scores.parent.mkdir(parents=True)
            scores.write_text("\n".join(lines) + "\n")
    return sweep


def test_one_item_in_every_seed_is_not_a_certain_effect(tmp_path):
    """1/256 vs 0/256 on every seed: zero seed variance, yet one item is no evidence."""
    one = np.zeros((2, 256))
    one[:, 7] = 1.0
    sweep = write_item_sweep(tmp_path, {"a": one, "b": np.zeros((2, 256))})
    c = build_conclusion(sweep)
    assert c.verdict != "supported"
    (comparison,) = c.comparisons
    assert comparison.method == "paired_seeds_items" and comparison.n_items == 256
    assert comparison.ci95[0] < 0 < comparison.ci95[1]


def test_intervals_of_a_share_stay_within_zero_and_one(tmp_path):
    near_one = np.ones((3, 64))
    near_one[0, :2] = 0.0
    sweep = write_item_sweep(tmp_path, {"a": near_one, "b": np.zeros((3, 64))})
    c = build_conclusion(sweep)
    for group in c.groups:
        lo, hi = group.ci95
        assert 0.0 <= lo <= hi <= 1.0
    assert c.verdict == "supported"


def test_a_prediction_is_what_the_verdict_answers(tmp_path):
    rng = np.random.default_rng(0)
    good = (rng.random((3, 200)) < 0.8).astype(float)
    bad = (rng.random((3, 200)) < 0.3).astype(float)
    arms = {"good": good, "bad": bad}
    (tmp_path / "a").mkdir()
    c = build_conclusion(
        write_item_sweep(tmp_path / "a", arms, prediction={"better": "good", "than": "bad"})
    )
    assert (c.verdict, c.kind) == ("supported", "preregistered")
    (tmp_path / "b").mkdir()
    wrong = {"better": "bad", "than": "good"}
    c = build_conclusion(write_item_sweep(tmp_path / "b", arms, prediction=wrong))
    assert c.verdict == "refuted" and c.kind == "preregistered"


@pytest.mark.integration
def test_aa_sweeps_are_rarely_supported_through_the_conclusion(tmp_path):
    """No true difference (4 arms, 3 seeds, 128 items, seed and item effects): the real
    conclusion code says supported in at most ~5% of sweeps (binomial slack for 60 sweeps)."""
    rng = np.random.default_rng(1)
    supported = 0
    sweeps = 60
    for rep in range(sweeps):
        difficulty = rng.normal(0.0, 1.0, 128)
        arms = {}
        for arm in "abcd":
            seed_effect = rng.normal(0.0, 0.3, (3, 1))
            arms[arm] = (
                rng.random((3, 128)) < 1 / (1 + np.exp(-(difficulty + seed_effect)))
            ).astype(float)
        root = tmp_path / str(rep)
        root.mkdir()
        supported += (
            build_conclusion(write_item_sweep(root, arms, baseline="a")).verdict == "supported"
        )
    assert supported <= 7  # P(X >= 8 | n=60, p=0.05) < 0.02


def test_conclude_plans_the_seed_budget_for_a_target_effect(tmp_path, capsys):
    from evsys.cli import conclude

    rng = np.random.default_rng(2)
    arms = {arm: (rng.random((3, 128)) < p).astype(float) for arm, p in (("a", 0.5), ("b", 0.45))}
    sweep = write_item_sweep(tmp_path, arms)
    conclude.main([str(sweep), str(sweep), "--power", "0.05"])
    out = capsys.readouterr().out
    assert "detects" in out and "at 80% power with 3 seeds" in out
    assert "an effect of 0.05 needs" in out or "no number of seeds detects 0.05" in out
    c = json.loads((sweep / "conclusion.json").read_text())
    (row,) = c["power"]
    assert row["comparison"] == "a vs b" and row["mde"] > 0


def test_shares_are_bounded_under_a_harness_filter_too():
    assert metric_bounds("eval/reversal/exact_match") == (0.0, 1.0)
    assert metric_bounds("eval/gsm8k/exact_match_strict-match") == (0.0, 1.0)
    assert metric_bounds("eval/mmlu/mmlu_anatomy/acc") == (0.0, 1.0)
    # a loss and a perplexity are bounded below only (evsys/metric_kinds.py)
    assert metric_bounds("eval/reversal/loss") == (0.0, math.inf)
    assert metric_bounds("eval/wikitext/word_perplexity") == (1.0, math.inf)


def test_a_shared_seed_family_pools_its_seed_variance(tmp_path):
    """Four arms on the same three seeds, no baseline ("is one arm ahead of all?"): the
    comparisons use the seed variance pooled over the arms, and the notes say so; the plan
    can turn it off (success_metric.pool_seeds: false)."""
    rng = np.random.default_rng(3)
    shares = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.7}
    arms = {arm: (rng.random((3, 128)) < p).astype(float) for arm, p in shares.items()}
    (tmp_path / "a").mkdir()
    c = build_conclusion(write_item_sweep(tmp_path / "a", arms))
    assert {x.method for x in c.comparisons} == {"paired_pooled_seeds_items"}
    assert any("seed variance pooled over the 4 arms" in n for n in c.notes)
    assert c.verdict == "supported" and c.best_arm == "d"
    (tmp_path / "b").mkdir()
    metric = {"name": "eval/addition/exact_match", "mode": "max", "pool_seeds": False}
    c = build_conclusion(write_item_sweep(tmp_path / "b", arms, success_metric=metric))
    assert {x.method for x in c.comparisons} == {"paired_seeds_items"}
