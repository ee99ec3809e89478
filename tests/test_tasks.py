import pytest

from evsys.data.tasks import TASKS, Task, get_task, is_task, split_of

NAMES = ["addition", "reversal", "sorting"]


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_seeded(name):
    task = get_task(name)
    assert task.examples("train", 200, seed=3) == get_task(name).examples("train", 200, seed=3)
    assert task.examples("train", 200, seed=3) != task.examples("train", 200, seed=4)
    # A smaller request is a prefix of a larger one with the same seed.
    assert task.examples("eval", 50, seed=3) == task.examples("eval", 100, seed=3)[:50]


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_disjoint_across_seeds(name):
    task = get_task(name)
    train = {ex["prompt"] for seed in (0, 1, 2) for ex in task.examples("train", 3000, seed)}
    held_out = {ex["prompt"] for seed in (0, 1, 2) for ex in task.examples("eval", 300, seed)}
    assert train and held_out
    assert not train & held_out
    assert all(split_of(prompt) == "eval" for prompt in held_out)


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_distinct_and_well_formed(name):
    examples = get_task(name).examples("train", 1000, seed=0)
    assert len(examples) == 1000
    assert len({ex["prompt"] for ex in examples}) == 1000
    assert all(set(ex) == {"prompt", "completion"} for ex in examples)
    assert all(ex["completion"] and "<|endoftext|>" not in ex["completion"] for ex in examples)


def test_answers_are_right():
    for ex in get_task("addition").examples("train", 100, 0):
        a, b = ex["prompt"].removesuffix("=").split("+")
        assert 0 <= int(a) <= 99 and 0 <= int(b) <= 99
        assert int(ex["completion"]) == int(a) + int(b)
    for ex in get_task("reversal").examples("train", 100, 0):
        letters = ex["prompt"].removeprefix("reverse ").removesuffix("=")
        assert 3 <= len(letters) <= 7 and ex["completion"] == letters[::-1]
    for ex in get_task("sorting").examples("train", 100, 0):
        letters = ex["prompt"].removeprefix("sort ").removesuffix("=")
        assert 3 <= len(letters) <= 7 and ex["completion"] == "".join(sorted(letters))


def test_small_universe_returns_what_exists():
    task = get_task("addition")
    held_out = task.examples("eval", 100_000, seed=0)
    train = task.examples("train", 100_000, seed=0)
    assert len(held_out) + len(train) == 100 * 100
    assert 800 < len(held_out) < 1200  # about 10 % held out
    assert len({ex["prompt"] for ex in held_out}) == len(held_out)


def test_score_is_exact_match_after_strip():
    task = get_task("reversal")
    example = {"prompt": "reverse abc=", "completion": "cba"}
    assert task.score("cba", example) == 1.0
    assert task.score(" cba \n", example) == 1.0
    assert task.score("cb", example) == 0.0
    assert task.score("cbaa", example) == 0.0


def test_registry_and_unknown_names():
    assert set(NAMES) <= set(TASKS)
    assert all(issubclass(cls, Task) and cls.name == name for name, cls in TASKS.items())
    assert is_task("reversal") and not is_task("reversel")
    with pytest.raises(ValueError, match="reversel.*addition, reversal, sorting"):
        get_task("reversel")
    with pytest.raises(ValueError, match="split"):
        get_task("addition").examples("test", 10, 0)
