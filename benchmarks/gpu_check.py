"""The scale checks that need a GPU, in one short run (< 8 minutes on one H200).

1. Throughput and memory: a Qwen3-0.6B-shaped model (random init, 151,936-token vocabulary,
   tied embeddings), bf16 autocast, packed rows of 4096 tokens, evsys's SFT loss (chunked
   log-probs, evsys/ops/chunked_logps.py), for sdpa and flex_attention, gradient
   checkpointing off and on, plus the full-logits loss for comparison: tokens/s, MFU against
   790 TFLOP/s (H200 dense bf16), peak GPU memory.
2. Packed equals unpacked on the GPU: every example's loss in a packed row equals its loss
   alone in a padded row, for sdpa, flex_attention and (if flash-attn is installed)
   flash_attention_2 on the flattened batch.
3. A short GRPO run through the CLI on the GPU (KL to the reference, gradient checkpointing).

    python benchmarks/gpu_check.py                # on the GPU machine
    python benchmarks/gpu_check.py --tiny         # a dry run of every part on the CPU

MFU counts useful FLOPs only: 6 x (non-embedding matmul parameters) per token, the LM head
(6 x hidden x vocab) at the positions that carry loss, and causal attention per example;
recomputation (checkpointed blocks and logit chunks) is not counted, as is the convention.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers

from evsys.config import SFTConfig
from evsys.data.packing import collate_packed, collate_padded, flatten_packed, pack_token_rows
from evsys.data.tokenize import IGNORE_INDEX, TokenRows
from evsys.lightning.sft import SFTModule

PEAK_FLOPS = 790e12  # H200 dense bf16
VOCAB = 151_936
QWEN3_06B = {
    "hidden_size": 1024,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
}
TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
}


class ByteLikeTokenizer:
    """What SFTModule reads of a tokenizer; the model is fed token ids directly."""

    pad_token_id = 0
    eos_token_id = 1


def build_model(shape: dict, vocab: int, attn: str, checkpointing: bool, device) -> torch.nn.Module:
    config = transformers.Qwen3Config(
        vocab_size=vocab,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        attn_implementation=attn,
        **shape,
    )
    with torch.device(device):
        model = transformers.Qwen3ForCausalLM(config)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.train()


def packed_rows(
    rows: int, row_length: int, vocab: int, seed: int = 0
) -> tuple[TokenRows, np.ndarray]:
    """Random-token prompt/completion examples of long-tailed lengths, packed (best fit)."""
    rng = np.random.default_rng(seed)
    lengths = np.zeros(0, dtype=np.int64)
    while lengths.sum() < 1.05 * rows * row_length:  # enough examples to fill `rows` rows
        more = np.clip(rng.lognormal(np.log(row_length / 12), 1.0, 256), 16, row_length)
        lengths = np.concatenate([lengths, more.astype(np.int64)])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    input_ids = rng.integers(2, vocab, int(offsets[-1]))
    labels = input_ids.copy()
    for start, length in zip(offsets[:-1], lengths, strict=True):
        labels[start : start + length // 2] = IGNORE_INDEX  # the prompt half
    examples = TokenRows({"input_ids": input_ids, "labels": labels}, offsets)
    return pack_token_rows(examples, row_length), lengths


def useful_flops(model, batch: dict, example_lengths: list[int]) -> float:
    config = model.config
    embedding = config.vocab_size * config.hidden_size
    matmul = sum(p.numel() for p in model.parameters() if p.ndim == 2) - embedding
    tokens = int(batch["input_ids"].numel())
    targets = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    q_dim = config.num_attention_heads * config.head_dim
    attention = sum(6 * length * length * q_dim for length in example_lengths)
    attention *= config.num_hidden_layers
    return 6 * matmul * tokens + 6 * embedding * targets + attention


def span_lengths(batch: dict) -> list[int]:
    """Lengths of the examples (and padding blocks) of a packed batch, from position_ids."""
    starts = batch["position_ids"].flatten() == 0
    bounds = torch.nonzero(starts).flatten().tolist() + [batch["position_ids"].numel()]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def full_logits_loss(model, batch) -> torch.Tensor:
    logits = model(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).logits
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def throughput(args, device) -> list[dict]:
    shape, vocab = (TINY, 1024) if args.tiny else (QWEN3_06B, VOCAB)
    rows, _ = packed_rows(args.rows * (args.steps + 2), args.row_length, vocab)
    batches = [
        {k: v.to(device) for k, v in collate_packed(rows[i : i + args.rows], 0).items()}
        for i in range(0, args.rows * (args.steps + 2), args.rows)
    ]
    attns = ["sdpa"] if device.type == "cpu" else ["sdpa", "flex_attention"]  # no flex bwd on CPU
    configs = [(attn, gc, "chunked") for attn in attns for gc in (False, True)]
    configs.append(("sdpa", False, "full logits"))
    results = []
    for attn, checkpointing, loss_kind in configs:
        torch.manual_seed(0)
        model = build_model(shape, vocab, attn, checkpointing, device)
        module = SFTModule(model, ByteLikeTokenizer(), SFTConfig())
        fused = {"fused": True} if device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **fused)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds, flops, tokens = 0.0, 0.0, 0
        for step, batch in enumerate(batches[: args.steps + 2]):
            sync(device)
            started = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                if loss_kind == "chunked":
                    loss, _ = module.masked_mean_loss(batch)
                else:
                    loss = full_logits_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync(device)
            if step >= 2:  # two warm-up steps (flex compiles its kernels in the first)
                seconds += time.perf_counter() - started
                flops += useful_flops(model, batch, span_lengths(batch))
                tokens += int(batch["input_ids"].numel())
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        result = {
            "attn": attn,
            "gradient_checkpointing": checkpointing,
            "loss": loss_kind,
            "tokens_per_step": args.rows * args.row_length,
            "tokens_per_second": round(tokens / seconds),
            "mfu": round(flops / seconds / PEAK_FLOPS, 4),
            "peak_memory_gib": None if peak is None else round(peak, 2),
            "final_loss": round(loss.item(), 4),
        }
        print("throughput", json.dumps(result), flush=True)
        results.append(result)
        del model, module, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def packed_equals_unpacked(device) -> list[dict]:
    """Per-example losses, packed vs padded, for every attention kernel available here."""
    from transformers.utils import is_flash_attn_2_available

    rows, _ = packed_rows(4, 256, 512, seed=1)
    rows = rows[:4]
    batch = collate_packed(rows, 0)
    examples = []  # the packed examples back as unpacked rows, in packing order
    for row in rows:
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        for a, b in zip(starts, [*starts[1:], len(row["input_ids"])], strict=True):
            examples.append({"input_ids": row["input_ids"][a:b], "labels": row["labels"][a:b]})
    padded = collate_padded(examples, 0)
    attns = ["sdpa", "eager", "flex_attention"]
    if device.type == "cuda" and is_flash_attn_2_available():
        attns.append("flash_attention_2")
    results = []
    for attn in attns:
        torch.manual_seed(0)
        model = build_model(TINY, 512, attn, False, device).float()
        module = SFTModule(model, ByteLikeTokenizer(), SFTConfig())
        packed_batch = flatten_packed(batch) if attn == "flash_attention_2" else batch
        with torch.no_grad():
            packed_losses, packed_mask = module.token_losses(to(packed_batch, device))
            padded_losses, padded_mask = module.token_losses(to(padded, device))
        if attn == "flash_attention_2":  # one long row: back to [rows, width], shift kept
            width = batch["input_ids"].shape[1]
            packed_losses = F.pad(packed_losses, (0, 1)).reshape(len(rows), width)
            packed_mask = F.pad(packed_mask, (0, 1)).reshape(len(rows), width)
        worst, index = 0.0, 0
        for r, row in enumerate(rows):
            starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
            for a, b in zip(starts, [*starts[1:], len(row["input_ids"])], strict=True):
                got = packed_losses[r, a : b - 1][packed_mask[r, a : b - 1]]
                expected = padded_losses[index][padded_mask[index]]
                worst = max(worst, float((got - expected).abs().max()))
                index += 1
        result = {"attn": attn, "examples": index, "max_abs_diff": worst, "ok": worst < 1e-4}
        print("packed_equals_unpacked", json.dumps(result), flush=True)
        results.append(result)
    return results


def to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def grpo_cli(device, workdir: Path) -> dict:
    """Two GRPO steps of the default tiny model through the CLI, on this device."""
    backend = "gpu" if device.type == "cuda" else "cpu"
    args = [
        "algorithm=grpo", "data=addition", f"backend={backend}", "algorithm.max_steps=2",
        "algorithm.batch_size=4", "algorithm.num_generations=4", "algorithm.beta=0.04",
        "algorithm.warmup_steps=1", "model.gradient_checkpointing=true", "data.num_train=64",
        "data.num_eval=8", "eval.max_examples=4", "eval.max_new_tokens=8",
        "validation.enabled=false", f"hydra.run.dir={workdir / 'grpo'}",
        f"experiment.stores.outputs_root={workdir}",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "evsys.train", *args], env=env, capture_output=True, text=True
    )
    record_path = workdir / "grpo" / "result.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    result = {
        "returncode": done.returncode,
        "status": record.get("status"),
        "seconds": round(time.perf_counter() - started, 1),
        "metrics": record.get("metrics"),
    }
    if done.returncode:
        result["stderr_tail"] = done.stderr[-1500:]
    print("grpo_cli", json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small CPU dry run of every part")
    parser.add_argument("--rows", type=int, default=None, help="packed rows per step")
    parser.add_argument("--row-length", type=int, default=None, help="tokens per packed row")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "packed", "grpo"])
    args = parser.parse_args()
    args.rows = args.rows or (2 if args.tiny else 4)
    args.row_length = args.row_length or (256 if args.tiny else 4096)
    args.steps = args.steps or (2 if args.tiny else 5)
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
    print("device", report["device"], flush=True)
    if "packed" not in args.skip:
        report["packed_equals_unpacked"] = packed_equals_unpacked(device)
    if "throughput" not in args.skip:
        report["throughput"] = throughput(args, device)
    if "grpo" not in args.skip:
        report["grpo"] = grpo_cli(device, Path(tempfile.mkdtemp(prefix="evsys_gpu_check_")))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = all(r["ok"] for r in report.get("packed_equals_unpacked", []))
    ok = ok and report.get("grpo", {}).get("returncode", 0) == 0
    print("ALL OK" if ok else "SOME CHECKS FAILED", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
