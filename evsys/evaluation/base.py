"""What a benchmark is: something that scores a model, with the settings of one evaluation.

Light on purpose (no torch at import): config validation names benchmarks without loading
any model code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evsys.config import DataConfig, EvalConfig, HarnessConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from evsys.rewards import Rewards


@dataclass
class BenchmarkSettings:
    """How much of each benchmark to run and how; shared by all benchmarks of one evaluation.
    Each default is the config's (eval.*, data.*): one source, no second literal."""

    data_seed: int = DataConfig.seed  # seed of the held-out examples (data.seed, not the run's)
    num_eval: int = DataConfig.num_eval  # held-out examples generated per task
    max_examples: int = EvalConfig.max_examples  # of those, how many are scored
    batch_size: int = EvalConfig.batch_size  # sequences per forward pass / generate call
    max_new_tokens: int = EvalConfig.max_new_tokens  # generation budget per answer
    max_length: int = DataConfig.max_length  # truncation limit for the loss
    harness: HarnessConfig | None = None  # settings of harness:<task> benchmarks (eval.harness)
    # the arm's reward functions (algorithm=grpo): held-out greedy answers are scored with them
    rewards: Rewards | None = None


class Benchmark:
    """Something that scores a model. `score` returns metric names without the eval/ prefix.

    Subclass it for your own benchmark (`class:<module.Class>` in eval.benchmarks): evsys
    builds it with the evaluation's settings and logs its scores as eval/<name>/<metric>.
    """

    name: str = ""
    # Set by `score` when the benchmark scores items one by one: one dict per item, {"item":
    # stable id, <metric>: value, ...}, whose mean over items is each returned metric. The
    # conclusion uses them to count the finite item sample into its uncertainty.
    item_scores: list[dict] | None = None

    def __init__(self, settings: BenchmarkSettings | None = None):
        self.settings = settings or BenchmarkSettings()

    def score(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        raise NotImplementedError

    def items_by_label(self) -> dict[str, list[dict]]:
        """The per-item scores of the last `score`, by label (scores/<label>.jsonl): this
        benchmark's own. One that scores several labels (a harness group's subtasks) has
        each."""
        return {} if self.item_scores is None else {self.name: self.item_scores}


def harness_settings(cfg) -> HarnessConfig:
    """eval.harness of a run config as a HarnessConfig (defaults where a config lacks it)."""
    node = cfg.eval.get("harness")
    return HarnessConfig(**node) if node else HarnessConfig()
