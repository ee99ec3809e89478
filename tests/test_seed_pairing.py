"""Pairing by seed is decided from the design, not from the results (issue 27, item 4): arms
whose same-numbered seeds make the same initialisation and data order (they share every
model.* and data.* key of their composed config) are paired by seed; arms that change the
architecture, the data or the weights they start from are compared as independent seeds,
still paired by item. conclusion.md's Method section says which and why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evsys.conclusion.decision import decide
from evsys.conclusion.inference import PAIRED, POOLED, UNPAIRED, ArmScores
from evsys.conclusion.pairing import paired_by_seed, seed_links
from evsys.conclusion.write import write_conclusion
from tests.test_conclusion_items import write_item_sweep

# A composed config's identity (evsys.identity.identity_config), cut to a few keys of each kind:
# composing a real one takes ~10 s here, too slow for the fast tier.
IDENTITY = {
    "model.arch": "qwen3", "model.num_layers": 4, "model.init_from": None,
    "model.gradient_checkpointing": False, "data.dataset_name": "addition", "data.seed": 0,
    "algorithm.kind": "sft", "algorithm.lr": 3e-3, "seed": 0,
}  # fmt: skip


def _sweep_with_configs(root: Path, arms: dict[str, np.ndarray], configs: dict[str, dict]):
    """A fabricated sweep whose plan records each arm's composed config, as evsys plans do."""
    sweep = write_item_sweep(root, arms)
    plan = json.loads((sweep / "experiment.json").read_text())
    for job in plan["planned"]:
        job["identity_config"] = {**configs[job["arm"]], "seed": job["seed"]}
    (sweep / "experiment.json").write_text(json.dumps(plan))
    conclusion = write_conclusion(sweep)
    return conclusion, (sweep / "conclusion.md").read_text().split("## Method", 1)[1]


def _scores(n_arms: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((3, 64)) < p).astype(float) for p in np.linspace(0.4, 0.6, n_arms)]


@pytest.mark.parametrize(
    ("changed", "method", "says"),
    [  # a deeper model: seed s initialises other weights; a learning rate: the same ones
        (
            {"model.num_layers": 2},
            UNPAIRED,
            "not paired by seed across arms that differ in model.num_layers (what their seed "
            "initialises or orders differs, so the same seed number links nothing): those are "
            "compared as independent seeds, still paired by item",
        ),
        (
            {"algorithm.lr": 0.01},
            PAIRED,
            "paired by seed: every arm's seed makes the same initialisation and data order",
        ),
    ],
)
def test_the_design_decides_pairing_and_the_method_says_why(tmp_path, changed, method, says):
    configs = {"a": IDENTITY, "b": {**IDENTITY, **changed}}
    arms = dict(zip(configs, _scores(2), strict=True))
    c, text = _sweep_with_configs(tmp_path, arms, configs)
    (comparison,) = c.comparisons
    assert comparison.method == method
    assert says in text


def test_other_data_or_init_from_break_the_link_and_the_pool():
    """Data keys and init_from count; how the model runs (gradient checkpointing) does not.
    The seed pool needs every arm linked."""
    configs = {
        "a": {"model.num_layers": 4, "data.seed": 0, "algorithm.lr": 1e-3, "seed": 0},
        "b": {"model.num_layers": 4, "data.seed": 0, "algorithm.lr": 3e-3, "seed": 0},
        "c": {"model.num_layers": 4, "data.seed": 1, "algorithm.lr": 1e-3, "seed": 0},
        "d": {"model.num_layers": 4, "data.seed": 0, "model.init_from": "/w", "seed": 0},
        "e": {"model.num_layers": 4, "data.seed": 0, "model.gradient_checkpointing": True},
    }
    links = seed_links(configs)
    assert paired_by_seed(links, "a", "b") and paired_by_seed(links, "a", "e")
    assert not paired_by_seed(links, "a", "c") and not paired_by_seed(links, "a", "d")
    rng = np.random.default_rng(1)
    scores = [
        ArmScores(x, (0, 1, 2), rng.random((3, 40)), tuple(map(str, range(40)))) for x in "abc"
    ]
    linked = decide(
        scores[:2] + [ArmScores("e", (0, 1, 2), rng.random((3, 40)), scores[0].items)],
        pair_seeds=links,
        pool_seeds=True,
    )
    assert {t.comparison.method for t in linked.tests} == {POOLED}
    broken = decide(scores, pair_seeds=links, pool_seeds=True)
    methods = {t.comparison.name: t.comparison.method for t in broken.tests}
    assert POOLED not in methods.values()
    assert all((m == UNPAIRED) == ("c" in name) for name, m in methods.items())
