"""A trained reward model (algorithm=reward_model's exported model/ dir) as a reward function:
`algorithm.rewards: ["model:<dir>"]` scores each completion with the model's one output on
the prompt + completion, tokenized as the model was trained (EOS ending the completion).

The model loads once per process, on first use, in eval mode on the CPU."""

from __future__ import annotations

import functools
from pathlib import Path

from evsys.errors import ConfigError

MODEL_PREFIX = "model:"


def reward_model(path: str, key: str):
    """A reward function scoring with the reward model saved in `path`; a ConfigError naming
    `key` when `path` holds no saved model."""
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise ConfigError(
            f"{key}={MODEL_PREFIX}{path!r}: {directory} holds no saved model (config.json); "
            "give the model/ dir of an algorithm=reward_model run"
        )

    def score(completions: list[str], examples: list[dict]) -> list[float]:
        model, tokenizer = _load(str(directory.resolve()))
        return _scores(model, tokenizer, completions, examples)

    score.__name__ = "reward_model"
    return score


@functools.cache
def _load(directory: str):
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(directory)
    return model.eval(), tokenizer


def _scores(model, tokenizer, completions: list[str], examples: list[dict]) -> list[float]:
    import torch

    from evsys.data.packing import collate_padded
    from evsys.data.tokenize import tokenize_examples

    texts = [
        {"prompt": example["prompt"], "completion": completion}
        for completion, example in zip(completions, examples, strict=True)
    ]
    batch = collate_padded(tokenize_examples(texts, tokenizer, 1 << 62), tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits.squeeze(-1).tolist()
