import pytest
import torch

from evsys.data.packing import collate_packed, pack_examples
from evsys.data.tasks import get_task
from evsys.data.tokenize import tokenize_examples
from evsys.evaluation import evaluate_benchmarks, generate_greedy, get_benchmark
from evsys.evaluation.base import BenchmarkSettings
from evsys.evaluation.held_out import item_id
from evsys.lightning.kto import task_labelled_examples
from tests.tiny import tiny_qwen3

SETTINGS = dict(
    data_seed=0, num_eval=64, max_examples=8, batch_size=4, max_new_tokens=10, max_length=64
)


def tiny_model(tokenizer, seed=0):
    return tiny_qwen3(tokenizer, seed=seed)


@pytest.mark.integration
def test_metric_names_and_ranges(tokenizer):
    model = tiny_model(tokenizer).train()
    metrics = evaluate_benchmarks(
        model, tokenizer, ["addition", "reversal", "sorting"], **SETTINGS
    ).metrics
    assert set(metrics) == {
        f"eval/{task}/{metric}"
        for task in ("addition", "reversal", "sorting")
        for metric in ("loss", "exact_match")
    }
    assert all(0.0 <= metrics[f"eval/{t}/exact_match"] <= 1.0 for t in ("addition", "sorting"))
    # An untrained model is near uniform over the 258 tokens: loss about ln(258) = 5.55.
    assert 4.5 < metrics["eval/reversal/loss"] < 6.5
    assert model.training  # the previous mode is restored


def test_unknown_benchmark_is_named(tokenizer):
    with pytest.raises(ValueError, match="reversel.*addition, reversal, sorting"):
        evaluate_benchmarks(tiny_model(tokenizer), tokenizer, ["reversal", "reversel"], **SETTINGS)


@pytest.mark.integration
def test_a_task_is_scored_on_its_answers_whatever_rows_the_run_trained_on(tokenizer):
    """KTO's eval rows of a task label near misses undesirable: handed over as the run's own
    held-out data, the task still scores against its right answers (and the same items)."""
    task, settings = get_task("addition"), {**SETTINGS, "max_examples": 4}
    labelled = task_labelled_examples(task, "eval", 64, 0)
    assert not all(row["label"] for row in labelled[:4])  # some near misses among them
    scores = evaluate_benchmarks(
        tiny_model(tokenizer), tokenizer, ["addition"], held_out={"addition": labelled}, **settings
    )
    answers = task.examples("eval", 64, 0)[:4]
    assert [item["item"] for item in scores.items["addition"]] == [
        item_id(index, example) for index, example in enumerate(answers)
    ]


@pytest.mark.integration
def test_left_padded_batch_generates_like_single_prompts(tokenizer):
    model = tiny_model(tokenizer, seed=1)
    prompts = ["1+2=", "reverse abcdefg=", "sort dcba=", "99+99=", "reverse xyz="]
    batched = generate_greedy(model, tokenizer, prompts, batch_size=5, max_new_tokens=12)
    alone = [generate_greedy(model, tokenizer, [p], 1, max_new_tokens=12)[0] for p in prompts]
    assert batched == alone
    assert any(batched)  # a random model says something, so the comparison is not vacuous


@pytest.mark.integration
def test_generation_batches_longest_first_within_the_token_budget(tokenizer):
    from evsys.evaluation.held_out import _generation_batches

    encoded = [[1] * n for n in (3, 9, 5, 9, 2, 7)]
    order = sorted(range(6), key=lambda i: -len(encoded[i]))
    batches = _generation_batches(order, encoded, batch_size=3, max_new_tokens=1, token_budget=25)
    # Widths 10, 8, 6, 3: at most 25 tokens (rows x (longest prompt + new)) and 3 rows each.
    assert batches == [[1, 3], [5, 2, 0], [4]]
    model = tiny_model(tokenizer, seed=1)
    prompts = ["1+2=", "reverse abcdefg=", "sort dcba=", "99+99=", "reverse xyz="]
    budgeted = generate_greedy(model, tokenizer, prompts, 5, max_new_tokens=12, token_budget=60)
    assert budgeted == generate_greedy(model, tokenizer, prompts, 5, max_new_tokens=12)


@pytest.mark.integration
def test_completion_losses_in_length_order_equal_one_by_one(tokenizer):
    """Batches are formed longest first; each example's loss is still its own, in order."""
    from evsys.evaluation.held_out import completion_losses

    model = tiny_model(tokenizer, seed=2).eval()
    lengths = [3, 17, 1, 9, 30, 5, 12]
    examples = [
        {"prompt": "x" * (n % 4 + 1) + "=", "completion": "abcdefghij" * 3} for n in lengths
    ]
    for example, n in zip(examples, lengths, strict=True):
        example["completion"] = example["completion"][:n]
    batched = completion_losses(model, tokenizer, examples, batch_size=3, max_length=64)
    alone = [completion_losses(model, tokenizer, [ex], 1, max_length=64)[0] for ex in examples]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(round(x, 4) for x in batched)) == len(examples)  # not all the same


@pytest.mark.integration
def test_a_model_that_learned_the_answers_scores_one(tokenizer):
    """Overfit the scored examples, through the same tokenize and pack path training uses."""
    benchmark = get_benchmark("reversal", BenchmarkSettings(**SETTINGS))
    examples = benchmark.examples()
    rows = pack_examples(tokenize_examples(examples, tokenizer, 64), row_length=64)
    batch = collate_packed(rows, tokenizer.pad_token_id)
    model = tiny_model(tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    metrics = evaluate_benchmarks(model, tokenizer, ["reversal"], **SETTINGS).metrics
    assert metrics["eval/reversal/exact_match"] == 1.0
    assert metrics["eval/reversal/loss"] < 0.05
    predictions = generate_greedy(model, tokenizer, [ex["prompt"] for ex in examples], 4, 10)
    assert predictions == [ex["completion"] for ex in examples]


def test_examples_are_the_held_out_split(tokenizer):
    benchmark = get_benchmark("addition", BenchmarkSettings(**SETTINGS))
    assert benchmark.examples() == get_task("addition").examples("eval", 64, 0)[:8]
