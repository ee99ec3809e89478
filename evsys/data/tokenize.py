"""Prompt/completion examples to token ids with the loss on the completion only."""

from __future__ import annotations

import logging

from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value that cross entropy skips


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    """Prompt ids exactly as the model sees them in training and in generation.

    Special tokens are added by hand rather than by the tokenizer, because some tokenizers
    would also append EOS; only a BOS (for tokenizers that have one) goes in front.
    """
    ids = _encode(tokenizer, prompts)
    if tokenizer.bos_token_id is None:
        return ids
    return [[tokenizer.bos_token_id, *prompt] for prompt in ids]


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    # One batched call; no attention mask, which nobody reads here and which costs time.
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
    return encoded["input_ids"]


def tokenize_examples(
    examples: list[dict], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[dict]:
    """Each example as {"input_ids", "labels"}: prompt, completion, EOS; loss on the last two.

    Longer examples are cut to max_length; those left without any target token are dropped,
    since they would add compute but no loss.
    """
    prompts = encode_prompts(tokenizer, [ex["prompt"] for ex in examples])
    # Tokenized apart from the prompt so the boundary matches what generation will see.
    completions = _encode(tokenizer, [ex["completion"] for ex in examples])
    eos = tokenizer.eos_token_id  # a property lookup that is slow enough to matter in the loop
    tokenized, truncated, dropped = [], 0, 0
    for prompt, completion in zip(prompts, completions, strict=True):
        input_ids = prompt + completion + [eos]
        labels = [IGNORE_INDEX] * len(prompt) + completion + [eos]
        if len(input_ids) > max_length:
            truncated += 1
            input_ids, labels = input_ids[:max_length], labels[:max_length]
            if all(label == IGNORE_INDEX for label in labels):
                dropped += 1
                continue
        tokenized.append({"input_ids": input_ids, "labels": labels})
    if truncated:
        log.warning(
            "%d of %d examples were longer than max_length=%d and were truncated; "
            "%d of those lost their whole completion and were dropped",
            truncated,
            len(examples),
            max_length,
            dropped,
        )
    return tokenized
