"""Reward functions for RL with verifiable rewards (algorithm=grpo): built-ins and user ones.

A reward function scores a batch of sampled completions:

    def my_reward(completions: list[str], examples: list[dict]) -> list[float]: ...

`completions[i]` is the decoded text the policy generated (up to, not including, EOS);
`examples[i]` is the data example it answers: {"prompt", "completion", ...}, where
"completion" is the dataset's reference answer and "task" names the built-in task, if any.
One float per completion, higher is better.

`algorithm.rewards` lists them by name: a built-in below, the dotted import path of a
user function (`my_pkg.rewards.brevity`), or `model:<dir>`, a reward model trained by
algorithm=reward_model (its exported model/ dir): the score of prompt + completion
(evsys/reward_model_score.py). `algorithm.reward_weights` weights their sum.

The same functions score training samples (train/reward, train/rewards/<fn>) and the greedy
answers to held-out prompts (eval/<label>/reward, eval/<label>/rewards/<fn>): `Rewards`.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from evsys.data.tasks import get_task, is_task
from evsys.errors import ConfigError
from evsys.reward_model_score import MODEL_PREFIX, reward_model

RewardFunction = Callable[[list[str], list[dict]], list[float]]


def exact_match(completions: list[str], examples: list[dict]) -> list[float]:
    """1 for the right answer, else 0: the built-in task's own rule, or a whitespace-stripped
    comparison with the reference answer."""
    return [_exact(text, example) for text, example in zip(completions, examples, strict=True)]


def _exact(text: str, example: dict) -> float:
    task = example.get("task")
    if task and is_task(task):
        return float(get_task(task).score(text, example))
    return float(text.strip() == example["completion"].strip())


def partial_credit(completions: list[str], examples: list[dict]) -> list[float]:
    """Character overlap with the reference answer, from 0 to 1: 2 * matching characters /
    total characters (difflib's ratio), so "82" for "83" earns 0.5 and a near miss beats
    noise. A denser signal than exact match while the policy is rarely right."""
    return [
        difflib.SequenceMatcher(None, text.strip(), example["completion"].strip()).ratio()
        for text, example in zip(completions, examples, strict=True)
    ]


BUILT_IN: dict[str, RewardFunction] = {
    "exact_match": exact_match,
    "partial_credit": partial_credit,
}


def resolve_reward(name: str, key: str) -> RewardFunction:
    """The function `name` refers to; a ConfigError naming `key` if there is none."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    if name.startswith(MODEL_PREFIX):
        return reward_model(name.removeprefix(MODEL_PREFIX), key)
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        raise ConfigError(
            f"{key}={name!r} is not a built-in reward ({', '.join(BUILT_IN)}) nor a dotted "
            "path to a function such as my_pkg.rewards.my_reward"
        )
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{key}={name!r} could not be imported: {error}") from None
    if not callable(function):
        raise ConfigError(f"{key}={name!r} is not a function")
    return function


def checked_rewards(values, name: str, count: int) -> list[float]:
    """The values a reward function returned for `count` completions, as floats; a
    ValueError naming the function (`name`) and the completion index for any value that is
    not a finite number: NaN or inf would make every advantage of its group NaN."""
    values = list(values)
    if len(values) != count:
        raise ValueError(f"reward {name!r} returned {len(values)} values for {count} completions")
    floats = []
    for index, value in enumerate(values):
        number = _as_number(value)
        if number is None or not math.isfinite(number):
            raise ValueError(
                f"reward {name!r} returned {value!r} ({type(value).__name__}) for completion "
                f"{index}: a reward must be a finite number"
            )
        floats.append(number)
    return floats


def _as_number(value) -> float | None:
    # Text is refused though float("1") would read it: a reward that returns text is a bug.
    if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):  # e.g. a tensor of more than one value
        return None


def reward_label(name: str) -> str:
    """The short name metrics use: exact_match, the function name of a dotted path, or
    reward_model for a `model:<dir>`."""
    if name.startswith(MODEL_PREFIX):
        return "reward_model"
    return name.rpartition(".")[2]


REWARD = "reward"  # the weighted sum of the reward functions' scores: <prefix>/reward
PER_FUNCTION = "rewards"  # each function's own score: <prefix>/rewards/<label>


def reward_names(algorithm) -> list[str]:
    """The reward functions an algorithm config names (algorithm.rewards; none for an
    algorithm without rewards): what its arm is trained and its held-out prompts scored with."""
    return [str(name) for name in getattr(algorithm, "rewards", None) or []]


def reward_metrics(algorithm) -> list[str]:
    """The metric names one reward scoring gives, for an algorithm config with rewards:
    reward, then rewards/<label> per function; none without rewards."""
    labels = [reward_label(name) for name in reward_names(algorithm)]
    return _metric_names(labels) if labels else []


def _metric_names(labels) -> list[str]:
    return [REWARD, *(f"{PER_FUNCTION}/{label}" for label in labels)]


@dataclass(frozen=True)
class Rewards:
    """An arm's reward functions with their labels and weights: scores completions."""

    labels: tuple[str, ...]
    functions: tuple[RewardFunction, ...]
    weights: tuple[float, ...]

    @classmethod
    def of(cls, algorithm) -> Rewards | None:
        """The rewards of an algorithm config (algorithm.rewards, algorithm.reward_weights);
        None when it names none."""
        names = reward_names(algorithm)
        if not names:
            return None
        functions = [
            resolve_reward(name, f"algorithm.rewards[{i}]") for i, name in enumerate(names)
        ]
        weights = list(getattr(algorithm, "reward_weights", None) or []) or [1.0] * len(names)
        return cls(
            tuple(reward_label(name) for name in names),
            tuple(functions),
            tuple(float(weight) for weight in weights),
        )

    @property
    def metrics(self) -> list[str]:
        """reward, then rewards/<label> per function: the keys of each item's scores."""
        return _metric_names(self.labels)

    def columns(self, completions: list[str], examples: list[dict]) -> list[list[float]]:
        """Each function's score of every completion: one list per function, in order."""
        return [
            checked_rewards(function(completions, examples), label, len(completions))
            for label, function in zip(self.labels, self.functions, strict=True)
        ]

    def item_scores(self, completions: list[str], examples: list[dict]) -> list[dict[str, float]]:
        """Per completion: `reward` (the weighted sum, as training's) and `rewards/<label>`."""
        rows = zip(*self.columns(completions, examples), strict=True)
        return [self._item(row) for row in rows]

    def _item(self, row: tuple[float, ...]) -> dict[str, float]:
        weighted = math.fsum(w * value for w, value in zip(self.weights, row, strict=True))
        own = {
            f"{PER_FUNCTION}/{label}": value for label, value in zip(self.labels, row, strict=True)
        }
        return {REWARD: weighted, **own}
