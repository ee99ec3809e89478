"""Multi-turn chat: the loss is on every assistant reply, rendered with the chat template when
the tokenizer has one and with the default layout otherwise."""

from __future__ import annotations

import logging

import pytest

from evsys import compose_run_config, run_experiment
from evsys.data.formats import to_examples
from evsys.data.tokenize import IGNORE_INDEX, tokenize_examples
from evsys.data.tokenizer import byte_tokenizer
from tests.conftest import FAST
from tests.test_data_sources import write_jsonl

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "Ciao"},
    {"role": "user", "content": "trailing turns after the last reply are dropped"},
]

TEMPLATE = (
    "{% for m in messages %}[{{ m.role }}] {{ m.content }}"
    "{% if m.role == 'assistant' %}{{ eos_token }}[end]{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def tokenized_chat(tokenizer) -> tuple[dict, dict]:
    [example] = to_examples([{"messages": CONVERSATION}], "auto", {}, "chat", tokenizer)
    [tokens] = tokenize_examples([example], tokenizer, max_length=512)
    return example, tokens


def target_spans(labels: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of target positions."""
    spans, start = [], None
    for i, label in enumerate([*labels, IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            spans.append((start, i))
            start = None
    return spans


def test_default_layout_has_labels_on_exactly_both_replies():
    tokenizer = byte_tokenizer()
    example, tokens = tokenized_chat(tokenizer)
    eos = "<|endoftext|>"
    context_1 = "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    context_2 = "\n<|user|>\nBye\n<|assistant|>\n"
    text = context_1 + "Hello!" + eos + context_2 + "Ciao" + eos
    assert tokenizer.decode(tokens["input_ids"]) == text
    # Byte tokens: each character is one id, and the EOS text is the single EOS id.
    first = len(context_1.encode())
    second = first + len(b"Hello!") + 1 + len(context_2.encode())
    assert target_spans(tokens["labels"]) == [(first, first + 7), (second, second + 5)]
    assert tokens["labels"][first + 6] == tokens["labels"][second + 4] == tokenizer.eos_token_id
    assert tokenizer.decode([t for t in tokens["labels"] if t != IGNORE_INDEX]) == (
        "Hello!" + eos + "Ciao" + eos
    )
    # The last reply is still the prompt/completion pair benchmarks score, in the same layout.
    assert example["prompt"] == context_1 + "Hello!" + eos + context_2
    assert example["completion"] == "Ciao"


def test_chat_template_replies_carry_the_template_end_of_turn():
    tokenizer = byte_tokenizer()
    tokenizer.chat_template = TEMPLATE
    example, tokens = tokenized_chat(tokenizer)
    targets = [
        tokenizer.decode(tokens["input_ids"][start:end])
        for start, end in target_spans(tokens["labels"])
    ]
    assert targets == ["Hello!<|endoftext|>[end]\n", "Ciao<|endoftext|>[end]\n"]
    assert tokenizer.decode(tokens["input_ids"]) == tokenizer.apply_chat_template(
        CONVERSATION[:5], tokenize=False
    )
    assert example["prompt"].endswith("[user] Bye\n[assistant] ")


def test_template_that_rewrites_earlier_turns_trains_the_last_reply(caplog):
    tokenizer = byte_tokenizer()
    # Marks the final message, so earlier turns render differently once a reply follows.
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m.role }}: {{ m.content }}{% if loop.last %}!{% endif %}\n"
        "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    with caplog.at_level(logging.WARNING):
        _, tokens = tokenized_chat(tokenizer)
    spans = target_spans(tokens["labels"])
    assert len(spans) == 1
    assert tokenizer.decode(tokens["input_ids"][spans[0][0] : spans[0][1]]) == "Ciao"
    assert "only the last assistant reply" in caplog.text


@pytest.mark.integration
def test_sft_arm_trains_on_multi_turn_chat_with_transforms(tmp_path, monkeypatch):
    monkeypatch.setenv("EVSYS_CACHE_DIR", str(tmp_path / "cache"))
    rows = [
        {"messages": [*CONVERSATION[:4], {"role": "assistant", "content": f"Ciao {i}"}]}
        for i in range(30)
    ]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    cfg = compose_run_config(
        [
            *FAST,
            f"eval.benchmarks=[{path}]",
            f"data.dataset_name={path}",
            "data.transforms=[dedupe, shuffle, {name: take, n: 20}]",
        ]
    )
    result = run_experiment(cfg, job_dir=tmp_path / "arm")
    assert result.status == "completed", result.error
    assert "eval/chat/loss" in result.metrics
