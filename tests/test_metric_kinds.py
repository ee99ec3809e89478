"""Each metric's kind comes from what produces it, not its name's suffix: its bounds clip the
conclusion's intervals and its default mode follows (issue #23 item 1). The conclusion runs
for real on fabricated sweep dirs, one per kind evsys produces, with 2+ seeds per arm."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evsys.conclusion.write import write_conclusion
from evsys.errors import ConfigError
from evsys.metric_kinds import (
    BOUNDS,
    LOSS,
    PERPLEXITY,
    REWARD,
    SHARE,
    SHARE_DIFFERENCE,
    UNBOUNDED,
    metric_kind,
    metric_mode,
)
from evsys.metric_names import check_min_effect

PNG = b"\x89PNG\r\n\x1a\n"


def write_sweep(root: Path, metric: str, arms: dict[str, list[float]]) -> Path:
    """A fake sweep dir: experiment.json plus one completed result.json per seed value."""
    sweep = root / "sweep"
    sweep.mkdir()
    planned = []
    for arm, values in arms.items():
        for seed, value in enumerate(values):
            job = {"arm": arm, "seed": seed, "dir": f"{arm}_seed{seed}"}
            planned.append({**job, "overrides": [f"seed={seed}"]})
            (sweep / job["dir"]).mkdir()
            record = {
                "arm": arm,
                "seed": seed,
                "group_id": f"group-{arm}",
                "overrides": [f"seed={seed}", f"arm={arm}"],
                "status": "completed",
                "error": None,
                "metrics": {metric: value},
                "artifacts": {},
            }
            (sweep / job["dir"] / "result.json").write_text(json.dumps(record))
    plan = {
        "id": "kinds-20261207-010000-1a2b",
        "name": "kinds",
        "hypothesis": "",
        "success_metric": {"name": metric, "mode": metric_mode(metric), "min_effect": 0.0},
        "baseline": None,
        "n_repeats": max(len(v) for v in arms.values()),
        "planned": planned,
    }
    (sweep / "experiment.json").write_text(json.dumps(plan))
    return sweep


# One metric of each kind, with seeds spread so that an unclipped interval would cross the
# kind's bounds (or, for the loss, the [0, 1] a name-suffix guess gave avg_final).
CASES = [
    ("eval/addition/exact_match", SHARE, {"a": [0.99, 0.6, 0.95], "b": [0.1, 0.4, 0.02]}),
    ("eval/gsm8k/exact_match_strict-match", SHARE, {"a": [0.98, 0.5], "b": [0.05, 0.3]}),
    ("continual/avg_final", SHARE, {"a": [0.97, 0.55], "b": [0.2, 0.01]}),
    ("continual/bwt", SHARE_DIFFERENCE, {"a": [0.95, -0.3], "b": [-0.97, 0.2]}),
    ("continual/forgetting/reversal", SHARE_DIFFERENCE, {"a": [0.9, -0.2], "b": [-0.95, 0.4]}),
    ("continual/loss/avg_final", LOSS, {"a": [3.004, 3.4], "b": [2.9, 3.1]}),  # the issue's
    ("eval/reversal/loss", LOSS, {"a": [0.01, 0.6], "b": [1.2, 1.4]}),
    ("val/loss", LOSS, {"a": [0.02, 0.9], "b": [2.0, 2.1]}),
    ("eval/wikitext/perplexity", PERPLEXITY, {"a": [1.01, 4.0], "b": [6.0, 6.5]}),
    ("val/rewards/margins", UNBOUNDED, {"a": [-0.5, 2.0], "b": [0.1, 0.3]}),
    ("train/reward", REWARD, {"a": [0.9, 2.5], "b": [-0.4, 0.2]}),  # GRPO's: unbounded
    ("eval/addition/rewards/exact_match", REWARD, {"a": [0.99, 0.4], "b": [0.1, 0.3]}),
]


@pytest.mark.parametrize(("metric", "kind", "arms"), CASES, ids=[c[0] for c in CASES])
def test_the_conclusion_keeps_each_kind_within_its_bounds(tmp_path, metric, kind, arms):
    assert metric_kind(metric) == kind
    sweep = write_sweep(tmp_path, metric, arms)
    conclusion = write_conclusion(sweep)
    low, high = BOUNDS[kind] or (-math.inf, math.inf)
    assert sorted(group.arm for group in conclusion.groups) == ["a", "b"], conclusion.reason
    for group in conclusion.groups:
        lo, hi = group.ci95
        assert low <= lo <= group.mean <= hi <= high, (group.arm, group.ci95)
    assert (sweep / "conclusion.png").read_bytes()[:8] == PNG
    assert list((sweep / "tensorboard" / "conclusion").glob("events.out.tfevents.*"))


def test_a_continual_loss_is_a_loss_and_lower_is_better():
    assert metric_kind("continual/loss/avg_final") == LOSS
    assert metric_mode("continual/loss/avg_final") == "min"
    assert metric_mode("continual/avg_final") == "max"
    assert metric_mode("continual/max_drop") == "min"
    assert metric_mode("continual/loss/forgetting/sorting") == "min"
    assert metric_mode("continual/fwt") == "max"
    assert metric_kind("continual/loss/bwt") == UNBOUNDED


def test_harness_metrics_take_their_metrics_kind_under_a_filter():
    assert metric_kind("eval/hellaswag/acc_norm") == SHARE
    assert metric_kind("eval/hellaswag/acc_norm_none") == SHARE
    assert metric_kind("eval/mmlu/mmlu_anatomy/acc") == SHARE
    assert metric_kind("eval/wikitext/word_perplexity") == PERPLEXITY
    assert metric_kind("eval/wikitext/bits_per_byte") == LOSS
    assert metric_mode("eval/wikitext/bits_per_byte") == "min"
    assert metric_kind("eval/mybench/bleu") == UNBOUNDED  # not declared: no bounds guessed


def test_min_effect_is_refused_beyond_the_kinds_range():
    check_min_effect("continual/loss/avg_final", 1.5)  # a loss: any difference can happen
    check_min_effect("continual/bwt", 1.5)  # two shares' differences differ by up to 2
    with pytest.raises(ConfigError, match=r"lies in \[-1, 1\]"):
        check_min_effect("continual/bwt", 2.0)
    with pytest.raises(ConfigError, match=r"lies in \[0, 1\]"):
        check_min_effect("continual/avg_final", 1.0)
