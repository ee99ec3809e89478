"""Built-in synthetic tasks: small problems that are both training data and benchmarks.

Each problem belongs to exactly one split, decided by a stable hash of its prompt, so no
held-out prompt is ever trained on, whatever seeds the train and eval sets are drawn with.
"""

from __future__ import annotations

import hashlib
import random
import string

SPLITS = ("train", "eval")
EVAL_PERMILLE = 100  # share of all problems held out for evaluation: 10 %


class Task:
    """A family of problems with one exact answer each.

    Subclasses set `name` and implement `random_problem`; those whose problems are few enough
    to list also implement `all_problems`, so small eval splits come out complete.
    """

    name: str = ""

    def random_problem(self, rng: random.Random) -> dict:
        """One problem drawn at random: {"prompt": str, "completion": str}."""
        raise NotImplementedError

    def all_problems(self) -> list[dict] | None:
        """Every problem, when there are few enough to list; None otherwise."""
        return None

    def examples(self, split: str, n: int, seed: int) -> list[dict]:
        """Up to n distinct problems of `split`, the same for the same (split, n, seed)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        # A string seed is hashed with SHA-512 by `random`, so it is stable across processes.
        rng = random.Random(f"{self.name}/{split}/{seed}")
        universe = self.all_problems()
        if universe is not None:
            in_split = [p for p in universe if split_of(p["prompt"]) == split]
            rng.shuffle(in_split)
            return in_split[:n]
        return self._sample_split(split, n, rng)

    def _sample_split(self, split: str, n: int, rng: random.Random) -> list[dict]:
        # Rejection sampling; the attempt cap only matters if the split is nearly exhausted.
        chosen: dict[str, dict] = {}
        for _ in range(100 * n + 1000):
            if len(chosen) == n:
                break
            problem = self.random_problem(rng)
            if problem["prompt"] not in chosen and split_of(problem["prompt"]) == split:
                chosen[problem["prompt"]] = problem
        return list(chosen.values())

    def score(self, prediction: str, example: dict) -> float:
        """Exact match, ignoring surrounding whitespace."""
        return float(prediction.strip() == example["completion"].strip())

    def near_miss(self, answer: str, rng: random.Random) -> str:
        """A wrong answer close to the right one: two different neighbours swapped, or (when
        all characters are equal) one character moved to the next letter."""
        differing = [i for i in range(len(answer) - 1) if answer[i] != answer[i + 1]]
        if differing:
            i = rng.choice(differing)
            return answer[:i] + answer[i + 1] + answer[i] + answer[i + 2 :]
        i = rng.randrange(len(answer))
        shifted = chr((ord(answer[i]) - ord("a") + 1) % 26 + ord("a"))
        return answer[:i] + shifted + answer[i + 1 :]

    def preference_examples(self, split: str, n: int, seed: int) -> list[dict]:
        """`examples` as preference pairs: {"prompt", "chosen": the answer, "rejected": a
        near miss}. Each near miss is seeded by (task, seed, prompt), so it never depends on
        which other problems were drawn."""
        pairs = []
        for example in self.examples(split, n, seed):
            rng = random.Random(f"{self.name}/rejected/{seed}/{example['prompt']}")
            rejected = self.near_miss(example["completion"], rng)
            assert rejected != example["completion"], (self.name, example)
            pairs.append(
                {"prompt": example["prompt"], "chosen": example["completion"], "rejected": rejected}
            )
        return pairs


def split_of(prompt: str) -> str:
    """The split a prompt belongs to, from a hash that never changes between runs."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return "eval" if int.from_bytes(digest[:8], "big") % 1000 < EVAL_PERMILLE else "train"


def _random_letters(rng: random.Random, low: int = 3, high: int = 7) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(low, high)))


class Addition(Task):
    """Sum of two numbers of one or two digits: "37+45=" -> "82"."""

    name = "addition"

    def random_problem(self, rng: random.Random) -> dict:
        return _addition(rng.randint(0, 99), rng.randint(0, 99))

    def all_problems(self) -> list[dict]:
        return [_addition(a, b) for a in range(100) for b in range(100)]

    def near_miss(self, answer: str, rng: random.Random) -> str:
        """The sum off by one in its units or tens digit (a classic carry slip), never < 0."""
        total = int(answer)
        steps = [d for d in (1, -1, 10, -10) if total + d >= 0]
        return str(total + rng.choice(steps))


def _addition(a: int, b: int) -> dict:
    return {"prompt": f"{a}+{b}=", "completion": str(a + b)}


class Reversal(Task):
    """Reverse 3-7 lowercase letters: "reverse abcde=" -> "edcba"."""

    name = "reversal"

    def random_problem(self, rng: random.Random) -> dict:
        letters = _random_letters(rng)
        return {"prompt": f"reverse {letters}=", "completion": letters[::-1]}


class Sorting(Task):
    """Sort 3-7 lowercase letters: "sort dbca=" -> "abcd"."""

    name = "sorting"

    def random_problem(self, rng: random.Random) -> dict:
        letters = _random_letters(rng)
        return {"prompt": f"sort {letters}=", "completion": "".join(sorted(letters))}


TASKS: dict[str, type[Task]] = {task.name: task for task in (Addition, Reversal, Sorting)}


def is_task(name: str) -> bool:
    return name in TASKS


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; built-in tasks are: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
