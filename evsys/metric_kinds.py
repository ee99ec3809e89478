"""What each metric in a record is — a share, a share's difference, a loss, a perplexity, a
reward or unbounded — as its producer declares it, and what follows from that: the interval a
mean and a confidence interval stay in (evsys/conclusion/scores.py) and whether lower is better
(the success metric's default mode). Decided by what produces the metric, not by a name suffix:
continual/loss/avg_final is a loss even though exact match's avg_final is a share. No torch.

The record's names are listed in evsys/metric_names.py; the declarations below follow them.
"""

from __future__ import annotations

import math
import re

from evsys.rewards import PER_FUNCTION
from evsys.rewards import REWARD as REWARD_METRIC

SHARE = "share"  # a share of items: [0, 1]
SHARE_DIFFERENCE = "share_difference"  # one share minus another: [-1, 1]
LOSS = "loss"  # a mean negative log-likelihood (or bits): [0, inf)
PERPLEXITY = "perplexity"  # exp of a loss: [1, inf)
# GRPO's reward (the reward functions' weighted sum) or one function's score, in training
# (train/reward, train/rewards/<fn>) or on held-out prompts (eval/<label>/reward,
# eval/<label>/rewards/<fn>): higher is better, with no bounds evsys can vouch for, since a
# reward function may be any user function and the weights any numbers (evsys/rewards.py)
REWARD = "reward"
UNBOUNDED = "unbounded"  # anything else: no bounds evsys can vouch for

BOUNDS: dict[str, tuple[float, float] | None] = {
    SHARE: (0.0, 1.0),
    SHARE_DIFFERENCE: (-1.0, 1.0),
    LOSS: (0.0, math.inf),
    PERPLEXITY: (1.0, math.inf),
    REWARD: None,
    UNBOUNDED: None,
}
LOWER_IS_BETTER_KINDS = (LOSS, PERPLEXITY)

# eval/<label>/<metric> of a task or a dataset's eval split (evsys/evaluation/held_out.py)
HELD_OUT_KINDS = {"loss": LOSS, "exact_match": SHARE, "perplexity": PERPLEXITY}
# eval/<task>/<metric>[_<filter>] of lm-evaluation-harness tasks (evsys/evaluation/harness.py
# names a filtered metric <metric>_<filter>): the harness's own metrics evsys knows the range of
HARNESS_KINDS = {
    "acc": SHARE,
    "acc_norm": SHARE,
    "accuracy": SHARE,
    "exact_match": SHARE,
    "em": SHARE,
    "f1": SHARE,
    "mc1": SHARE,
    "mc2": SHARE,
    "contains": SHARE,
    "pass@1": SHARE,
    "pass@10": SHARE,
    "word_perplexity": PERPLEXITY,
    "byte_perplexity": PERPLEXITY,
    "perplexity": PERPLEXITY,
    "bits_per_byte": LOSS,
}
# val/<name> of the algorithms' validation_metrics (evsys/config.py); others are unbounded
VALIDATION_KINDS = {"loss": LOSS, "chosen_nll": LOSS, "rewards/accuracy": SHARE}
# continual/<name> summarises the exact-match matrix, continual/loss/<name> the loss matrix
# (evsys/run/continual_metrics.py flat_metrics): most specific prefix first
CONTINUAL_MATRICES = (("continual/loss/", "loss"), ("continual/", "exact_match"))
# Summaries where lower is better, whatever the matrix (a drop, forgetting)
CONTINUAL_LOWER_IS_BETTER = ("max_drop", "forgetting")

# Words that make a metric lower-is-better wherever they appear in its last path part, for a
# metric whose producer declares no kind (a harness or custom benchmark's own metric).
LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "nll", "bits", "forgetting", "drop", "error")


def metric_kind(name: str) -> str:
    """The kind of the record metric `name` (one of BOUNDS' keys), from its producer."""
    if name == "train/loss":
        return LOSS
    if name.startswith("train/") and _is_reward(name.removeprefix("train/")):
        return REWARD
    if name.startswith("val/"):
        return VALIDATION_KINDS.get(name[len("val/") :], UNBOUNDED)
    for prefix, matrix in CONTINUAL_MATRICES:
        if name.startswith(prefix):
            return _continual_kind(name[len(prefix) :], HELD_OUT_KINDS[matrix])
    where = benchmark_metric(name)
    if where is not None:
        return _benchmark_kind(where[1])
    return UNBOUNDED


def benchmark_metric(name: str) -> tuple[str, str] | None:
    """(benchmark label, metric) of eval/<label>/<metric>, the metric as each item's scores
    name it (scores/<label>.jsonl): a reward function's is rewards/<fn>, so
    eval/addition/rewards/exact_match is (addition, rewards/exact_match); None for others."""
    parts = name.split("/")
    if parts[0] != "eval" or len(parts) < 3:
        return None
    cut = -2 if len(parts) >= 4 and parts[-2] == PER_FUNCTION else -1
    return "/".join(parts[1:cut]), "/".join(parts[cut:])


def metric_bounds(name: str) -> tuple[float, float] | None:
    """(lowest, highest) the metric can take (either may be infinite), or None: unbounded."""
    return BOUNDS[metric_kind(name)]


def metric_mode(name: str) -> str:
    """`min` for a metric where lower is better (a loss, a perplexity, forgetting, a drop),
    else `max`: the success metric's mode when the config names the metric but not its mode."""
    kind = metric_kind(name)
    if kind in LOWER_IS_BETTER_KINDS:
        return "min"
    if kind == REWARD:
        return "max"  # a reward is higher-is-better by definition, whatever its name says
    if name.startswith("continual/"):
        summary = name.removeprefix("continual/").removeprefix("loss/").split("/")[0]
        return "min" if summary in CONTINUAL_LOWER_IS_BETTER else "max"
    words = re.split(r"[_\-,.]", name.rsplit("/", 1)[-1].lower())
    return "min" if any(word in LOWER_IS_BETTER for word in words) else "max"


def _continual_kind(summary: str, underlying: str) -> str:
    """avg_final takes its matrix's kind; a share's drop is a share, and its transfers and
    forgetting are differences of shares; a loss's differences are unbounded."""
    if summary == "avg_final":
        return underlying
    if underlying != SHARE:
        return UNBOUNDED
    return SHARE if summary == "max_drop" else SHARE_DIFFERENCE


def _benchmark_kind(metric: str) -> str:
    """A held-out or harness metric's kind; a harness metric under a filter
    (exact_match_strict-match) is its metric's kind, the longest known name first."""
    if _is_reward(metric):
        return REWARD
    known = {**HARNESS_KINDS, **HELD_OUT_KINDS}
    if metric in known:
        return known[metric]
    filtered = [base for base in known if metric.startswith(f"{base}_")]
    return known[max(filtered, key=len)] if filtered else UNBOUNDED


def _is_reward(metric: str) -> bool:
    """reward or rewards/<fn>: what evsys/rewards.py names a reward scoring's metrics."""
    return metric == REWARD_METRIC or metric.startswith(f"{PER_FUNCTION}/")
