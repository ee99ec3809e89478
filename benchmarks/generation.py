"""Greedy generation at 0.5B scale: evsys's `generate_greedy` against plain `model.generate`.

The model is Qwen2.5-0.5B-shaped (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864,
151,936-token vocabulary, tied embeddings: 494M parameters), random init from a seed, fp32.
The tokenizer is a word-level one built in code over the same 151,936 ids ("t0", "t1", ...,
EOS "<|endoftext|>" at 151,643 as in Qwen), so every id decodes losslessly and two answers
are equal as text exactly when they are equal as ids.

A random model never stops on its own. To make answers end the way a trained model's do (at
different lengths, some running to the limit), the model's head carries a fixed stop rule:
at every step where a row's greedy token id is a multiple of `--stop-every`, EOS is chosen
instead. The rule depends on that row's own logits only, not on the batch it is in, so it is
the same model for both contenders. With the defaults (32 and 32 new tokens) on 128 prompts,
43 answers stopped at lengths spread over 1-31 and 85 ran to the limit (a random model's
greedy output soon repeats one token; if that token is not a multiple, the row never stops).

    evsys      evsys.evaluation.held_out.generate_greedy(model, tokenizer, prompts,
               batch_size, max_new_tokens): prompts sorted longest first, batches of at most
               `batch_size` prompts and GENERATION_TOKEN_BUDGET tokens, answers back in order
    generate   what a user writes: the prompts in their given order, `--batch-size` at a
               time, tokenized with left padding, `model.generate(do_sample=False)`

Held equal: model, prompts, batch size (evsys's default eval.batch_size, 64), max_new_tokens,
greedy decoding with the KV cache, EOS and padding ids, one process, `--threads` threads.
The answers are compared text for text. tokens/s counts the generated tokens (each answer's
tokens plus its EOS, if any) over the wall seconds of the whole call, tokenization included.
"computed" counts rows x steps that every batch actually ran (a batch runs until its longest
answer ends): the work padding and unequal lengths cost.

`--score` also times the teacher-forced loss of a reference answer per prompt (random words,
1-32 of them), the held-out loss evsys reports: `completion_losses` (batches longest first,
the LM head at target positions only, in chunks) against a plain loop (batches in the given
order, right-padded, full logits, `F.cross_entropy`), and checks the losses agree.

    python benchmarks/generation.py --prompts 1000
    python benchmarks/generation.py --prompts 32 --repeats 1      # a small slice first
    python benchmarks/generation.py --prompts 128 --score --no-generate
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
import warnings
from pathlib import Path

VOCAB = 151_936
EOS_ID = 151_643  # Qwen's <|endoftext|>
EOS = "<|endoftext|>"


def build_tokenizer():
    """A word-level tokenizer over VOCAB ids: id i is the word "t<i>", EOS at EOS_ID."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB)}
    del vocab[f"t{EOS_ID}"]
    vocab[EOS] = EOS_ID
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens([EOS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=EOS, clean_up_tokenization_spaces=False
    )


def build_model(seed: int, stop_every: int):
    """The random-init Qwen2.5-0.5B-shaped model, with the stop rule on its head."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        eos_token_id=EOS_ID,
        pad_token_id=EOS_ID,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.pad_token_id = EOS_ID

    def stop_rule(module, inputs, logits):
        # Where a row's greedy token is a multiple of stop_every, EOS outranks it.
        top, best = logits.max(dim=-1)
        stop = best % stop_every == 0
        logits = logits.clone()
        logits[..., EOS_ID] = torch.where(stop, top + 1.0, logits[..., EOS_ID])
        return logits

    model.lm_head.register_forward_hook(stop_rule)
    return model


def make_prompts(count: int, seed: int, median: int, longest: int) -> list[str]:
    """`count` prompts of random words; lengths log-normal around `median`, 4..`longest`."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        length = int(min(longest, max(4, rng.lognormvariate(0.0, 0.6) * median)))
        prompts.append(" ".join(f"t{rng.randrange(EOS_ID)}" for _ in range(length)))
    return prompts


def answer_length(answer: str, max_new_tokens: int) -> int:
    """Generated tokens of an answer: its words plus the EOS that ended it (if it did)."""
    words = len(answer.split())
    return min(words + 1, max_new_tokens)


# ----------------------------------------------------------------------------------- contenders
def run_evsys(model, tokenizer, prompts, batch_size, max_new_tokens) -> tuple[list[str], int]:
    from evsys.data.tokenize import encode_prompts
    from evsys.evaluation.held_out import (
        GENERATION_TOKEN_BUDGET,
        _generation_batches,
        generate_greedy,
    )

    answers = generate_greedy(model, tokenizer, prompts, batch_size, max_new_tokens)
    # The rows x steps its batches ran (the same batches generate_greedy made).
    encoded = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    computed = 0
    for batch in _generation_batches(
        order, encoded, batch_size, max_new_tokens, GENERATION_TOKEN_BUDGET
    ):
        computed += len(batch) * max(answer_length(answers[i], max_new_tokens) for i in batch)
    return answers, computed


def run_generate(model, tokenizer, prompts, batch_size, max_new_tokens) -> tuple[list[str], int]:
    import torch

    answers, computed = [], 0
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(
                prompts[start : start + batch_size],
                padding=True,
                padding_side="left",
                add_special_tokens=False,
                return_tensors="pt",
            )
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = output[:, batch["input_ids"].shape[1] :]
            computed += new.shape[0] * new.shape[1]
            for ids in new.tolist():
                if EOS_ID in ids:
                    ids = ids[: ids.index(EOS_ID)]
                answers.append(tokenizer.decode(ids, skip_special_tokens=True))
    return answers, computed


CONTENDERS = {"evsys": run_evsys, "generate": run_generate}


# -------------------------------------------------------------------------------------- scoring
def reference_answers(count: int, seed: int, longest: int) -> list[str]:
    """Reference completions of 1..`longest` random words, for the teacher-forced loss."""
    rng = random.Random(seed)
    return [
        " ".join(f"t{rng.randrange(EOS_ID)}" for _ in range(rng.randint(1, longest)))
        for _ in range(count)
    ]


def score_evsys(model, tokenizer, examples, batch_size) -> list[float]:
    from evsys.evaluation.held_out import completion_losses
    from evsys.ops.eval_mode import evaluation_mode

    with evaluation_mode(model):
        return completion_losses(model, tokenizer, examples, batch_size, max_length=4096)


def score_plain(model, tokenizer, examples, batch_size) -> list[float]:
    """What a user writes: prompt + answer + EOS, right-padded, full logits, cross entropy."""
    import torch
    import torch.nn.functional as F

    losses = []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            rows, labels = [], []
            for example in examples[start : start + batch_size]:
                prompt = tokenizer(example["prompt"], add_special_tokens=False)["input_ids"]
                answer = tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
                rows.append(prompt + answer + [EOS_ID])
                labels.append([-100] * len(prompt) + answer + [EOS_ID])
            width = max(len(row) for row in rows)
            pad = [width - len(row) for row in rows]
            input_ids = torch.tensor([r + [EOS_ID] * n for r, n in zip(rows, pad, strict=True)])
            mask = torch.tensor([[1] * len(r) + [0] * n for r, n in zip(rows, pad, strict=True)])
            target = torch.tensor([t + [-100] * n for t, n in zip(labels, pad, strict=True)])
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            per_token = F.cross_entropy(
                logits.transpose(1, 2), target[:, 1:], ignore_index=-100, reduction="none"
            )
            counts = (target[:, 1:] != -100).sum(-1)
            losses += (per_token.sum(-1) / counts).tolist()
    return losses


SCORERS = {"evsys": score_evsys, "plain": score_plain}


def run_scoring(model, tokenizer, prompts, args) -> list[dict]:
    """Teacher-forced loss of reference answers: evsys's completion_losses vs a plain loop."""
    answers = reference_answers(len(prompts), 1, args.max_new_tokens)
    examples = [{"prompt": p, "completion": a} for p, a in zip(prompts, answers, strict=True)]
    results, losses = [], {}
    for name in args.scorers:
        scorer = SCORERS[name]
        start, cpu = time.perf_counter(), time.process_time()
        losses[name] = scorer(model, tokenizer, examples, args.batch_size)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        result = {
            "scoring": name,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "examples_per_cpu_second": round(len(examples) / cpu, 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }
        results.append(result)
        print(json.dumps(result), flush=True)
    if len(losses) < 2:
        return results
    gap = max(abs(a - b) for a, b in zip(losses["evsys"], losses["plain"], strict=True))
    cpu = {r["scoring"]: r["cpu_seconds"] for r in results}
    print(
        f"scoring {len(examples)} examples: largest loss difference {gap:.2e}; evsys vs plain "
        f"{cpu['plain'] / cpu['evsys']:.2f}x CPU time"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000, help="number of prompts")
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per batch, both")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--stop-every", type=int, default=32, help="the stop rule's modulus")
    parser.add_argument("--median-length", type=int, default=24, help="median prompt tokens")
    parser.add_argument("--longest", type=int, default=256, help="longest prompt, tokens")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, order alternating")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--score", action="store_true", help="also time the teacher-forced loss")
    parser.add_argument("--no-generate", action="store_true", help="skip generation")
    parser.add_argument("--scorers", nargs="*", default=list(SCORERS), choices=list(SCORERS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_model(0, args.stop_every)
    prompts = make_prompts(args.prompts, 0, args.median_length, args.longest)
    lengths = [len(p.split()) for p in prompts]
    print(
        f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, built in "
        f"{time.perf_counter() - started:.1f} s; {len(prompts)} prompts of {min(lengths)}-"
        f"{max(lengths)} tokens (median {sorted(lengths)[len(lengths) // 2]}, "
        f"{sum(lengths)} in all); batch size {args.batch_size}, max_new_tokens "
        f"{args.max_new_tokens}, {torch.get_num_threads()} threads",
        flush=True,
    )
    scoring = run_scoring(model, tokenizer, prompts, args) if args.score else []
    if args.no_generate:
        if args.json:
            args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                             "scoring": scoring}))  # fmt: skip
        return
    results, answers = [], {}
    for repeat in range(args.repeats):
        names = list(CONTENDERS) if repeat % 2 == 0 else list(CONTENDERS)[::-1]
        for name in names:
            load = Path("/proc/loadavg").read_text().split()[0]
            start, cpu = time.perf_counter(), time.process_time()
            out, computed = CONTENDERS[name](
                model, tokenizer, prompts, args.batch_size, args.max_new_tokens
            )
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            generated = sum(answer_length(a, args.max_new_tokens) for a in out)
            answers[name] = out
            result = {
                "contender": name,
                "repeat": repeat,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "generated_tokens": generated,
                "tokens_per_second": round(generated / seconds, 2),
                # CPU seconds of the process: steadier than wall time on a shared machine.
                "tokens_per_cpu_second": round(generated / cpu, 2),
                "computed_row_steps": computed,
                "load_before": float(load),
            }
            results.append(result)
            print(json.dumps(result), flush=True)
    same = sum(a == b for a, b in zip(answers["evsys"], answers["generate"], strict=True))
    lengths_out = [answer_length(a, args.max_new_tokens) for a in answers["generate"]]
    at_limit = sum(
        length == args.max_new_tokens and len(a.split()) == length
        for a, length in zip(answers["generate"], lengths_out, strict=True)
    )
    print(
        f"answers identical: {same} of {len(prompts)}; {at_limit} ran to max_new_tokens, "
        f"mean generated tokens {sum(lengths_out) / len(lengths_out):.1f}"
    )
    best = {
        name: min(r["seconds"] for r in results if r["contender"] == name) for name in CONTENDERS
    }
    best_cpu = {
        name: min(r["cpu_seconds"] for r in results if r["contender"] == name)
        for name in CONTENDERS
    }
    for name in CONTENDERS:
        runs = [r for r in results if r["contender"] == name]
        print(
            f"{name}: wall s {[r['seconds'] for r in runs]}, CPU s "
            f"{[r['cpu_seconds'] for r in runs]}, tokens/s "
            f"{[r['tokens_per_second'] for r in runs]}, rows x steps computed "
            f"{runs[0]['computed_row_steps']}"
        )
    print(
        f"evsys vs model.generate (best runs): {best['generate'] / best['evsys']:.2f}x wall, "
        f"{best_cpu['generate'] / best_cpu['evsys']:.2f}x CPU time; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "results": results,
                    "scoring": scoring,
                }
            )
        )


if __name__ == "__main__":
    main()
