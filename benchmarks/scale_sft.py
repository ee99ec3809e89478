"""SFT at a real vocabulary size: evsys against a hand loop with full-logit cross entropy and TRL.

The model is Qwen3-shaped with a 151,936-token vocabulary (Qwen's), hidden 512, 8 layers,
tied embeddings: about 103M parameters, three quarters of them the embedding, so the output
projection and its logits dominate a step as they do in 0.1-8B models. Random init, saved
with `save_pretrained` (with the byte tokenizer) so every contender loads the same weights
from the same directory. The data are prompt/completion pairs with a long-tailed length mix
(40-900 bytes), trained as packed rows of 1024 tokens.

    evsys       the product path: PostTrainingDataModule + SFTModule + a Lightning Trainer,
                configured by compose_run_config (model.name=<the saved dir>)
    hand loop   the same packed rows through `model(...)`: full logits, float32 cross entropy
    trl         TRL's SFTTrainer with packing (best-fit decreasing, padding-free)

Each contender runs in a fresh process (peak RSS is the process's own); the first step is
warm-up, tokens/s is non-padding tokens / seconds of the steps after it (forward, backward,
optimizer step; data loading excluded alike), and tokens per CPU second the same over the
process's CPU time (with one thread, the figure that other load on the machine disturbs
least). AdamW, lr 1e-4, grad clip 1.0 for all.

    python benchmarks/scale_sft.py --steps 3                       # throughput, 4 x 1024
    python benchmarks/scale_sft.py --steps 2 --memory-rows 1 4 8   # peak memory vs tokens/step

`--contenders` picks who runs; `--override` passes evsys config overrides (e.g.
model.gradient_checkpointing=true); `--evsys-path` runs the evsys contender on another
checkout (PYTHONPATH), e.g. an older commit for a before/after figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

VOCAB = 151_936
ROW_LENGTH = 1024
LR = 1e-4
CONTENDERS = ("evsys", "hand", "trl")
WORDS = "the a of to in model data train loss token batch step answer question value".split()


# ------------------------------------------------------------------------------------ fixtures
def make_fixtures(workdir: Path, examples: int = 3000) -> tuple[Path, Path]:
    """The saved model directory and the prompt/completion .jsonl file (idempotent)."""
    model_dir, data_file = workdir / "model", workdir / "data.jsonl"
    if not (model_dir / "config.json").exists():
        import torch
        from transformers import Qwen3Config, Qwen3ForCausalLM

        from evsys.data.tokenizer import byte_tokenizer

        tokenizer = byte_tokenizer()
        torch.manual_seed(0)
        config = Qwen3Config(
            vocab_size=VOCAB,
            hidden_size=512,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=64,
            intermediate_size=1536,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.eos_token_id,
        )
        Qwen3ForCausalLM(config).save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    if not data_file.exists():
        rng = random.Random(0)
        with data_file.open("w") as out:
            for _ in range(examples):
                # Long-tailed: most pairs short, a few near 900 bytes.
                total = int(min(900, max(40, rng.lognormvariate(5.0, 0.7))))
                prompt_len = int(total * rng.uniform(0.3, 0.7))
                text = " ".join(rng.choices(WORDS, k=total))[:total]
                row = {"prompt": text[:prompt_len] + "=", "completion": text[prompt_len:]}
                out.write(json.dumps(row) + "\n")
    return model_dir, data_file


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


class StepClock:
    """Seconds and non-padding tokens of every step; the first is warm-up."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.tokens: list[int] = []
        self.losses: list[float] = []
        self.cpu_seconds: list[float] = []
        self._started = self._cpu_started = 0.0

    def start(self) -> None:
        self._started, self._cpu_started = time.perf_counter(), time.process_time()

    def stop(self, tokens: int, loss: float | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.cpu_seconds.append(time.process_time() - self._cpu_started)
        self.tokens.append(tokens)
        if loss is not None:
            self.losses.append(loss)

    def report(self, contender: str, rows: int) -> dict:
        timed = slice(1, None) if len(self.seconds) > 1 else slice(None)
        tokens, seconds = sum(self.tokens[timed]), sum(self.seconds[timed])
        return {
            "contender": contender,
            "rows": rows,
            "timed_steps": len(self.seconds[timed]),
            "tokens_per_step": round(tokens / max(len(self.seconds[timed]), 1)),
            "tokens_per_second": round(tokens / seconds, 1),
            # CPU seconds of this process: steadier than wall time on a shared machine.
            "tokens_per_cpu_second": round(tokens / sum(self.cpu_seconds[timed]), 1),
            "seconds_per_step": round(seconds / max(len(self.seconds[timed]), 1), 2),
            "peak_rss_gb": round(peak_rss_gb(), 2),
            "losses": [round(x, 4) for x in self.losses],
        }


# ----------------------------------------------------------------------------------- contenders
def evsys_config(model_dir: Path, data_file: Path, rows: int, steps: int, overrides: list[str]):
    from evsys import compose_run_config

    return compose_run_config(
        [
            f"model.name={model_dir}",
            f"data.dataset_name={data_file}",
            f"data.max_length={ROW_LENGTH}",
            "data.cache=false",
            f"algorithm.batch_size={rows}",
            f"algorithm.max_steps={steps}",
            "algorithm.warmup_steps=0",
            "algorithm.schedule=constant",
            f"algorithm.lr={LR}",
            "validation.enabled=false",
            "eval.benchmarks=[]",
            *overrides,
        ]
    )


def run_evsys(model_dir: Path, data_file: Path, rows: int, steps: int, overrides) -> dict:
    import lightning as L

    from evsys.algorithms import algorithm_module_class
    from evsys.lightning.datamodule import PostTrainingDataModule
    from evsys.models import load_model, load_tokenizer

    cfg = evsys_config(model_dir, data_file, rows, steps, overrides)
    clock = StepClock()

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            clock.stop(int(batch["num_tokens"]), float(outputs["loss"]))

    L.seed_everything(0, verbose=False)
    tokenizer = load_tokenizer(cfg.model)
    algorithm = algorithm_module_class("sft")
    data = PostTrainingDataModule(cfg, tokenizer, algorithm)
    data.prepare()
    module = algorithm(load_model(cfg.model, tokenizer), tokenizer, cfg.algorithm)
    trainer = L.Trainer(
        accelerator="cpu",
        precision=cfg.backend.precision,
        max_steps=steps,
        gradient_clip_val=cfg.algorithm.grad_clip,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    trainer.fit(module, datamodule=data)
    return clock.report("evsys " + " ".join(overrides), rows)


def packed_batches(model_dir: Path, data_file: Path, rows: int):
    """evsys's packed training rows, collated, in a seeded order (the hand loop's data)."""
    cfg = evsys_config(model_dir, data_file, rows, 1, [])
    from evsys.lightning.datamodule import PostTrainingDataModule, StepStream
    from evsys.lightning.sft import SFTModule
    from evsys.models import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    data = PostTrainingDataModule(cfg, tokenizer, SFTModule)
    data.prepare()
    return iter(StepStream(data.train_rows, rows, 0, data._collate_train))


def run_hand(model_dir: Path, data_file: Path, rows: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    batches = packed_batches(model_dir, data_file, rows)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95))
    clock = StepClock()
    for _ in range(steps):
        batch = next(batches)
        clock.start()
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        loss = F.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]),
            batch["labels"][:, 1:].reshape(-1),
            ignore_index=-100,
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.stop(int(batch["num_tokens"]), float(loss))
    return clock.report("hand loop, full logits", rows)


def trl_inputs(model_dir: Path, data_file: Path) -> tuple:
    """(tokenizer, fp32 model, dataset) as a TRL user loads them, seeded: both TRL runs."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    dataset = datasets.load_dataset("json", data_files=str(data_file), split="train")
    return tokenizer, model, dataset


def run_trl(model_dir: Path, data_file: Path, rows: int, steps: int, workdir: Path) -> dict:
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer, model, dataset = trl_inputs(model_dir, data_file)
    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            clock.stop(tokens_seen[-1] if tokens_seen else 0)

    tokens_seen: list[int] = []
    config = SFTConfig(
        output_dir=str(workdir / "trl"),
        max_steps=steps,
        per_device_train_batch_size=rows,
        learning_rate=LR,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        lr_scheduler_type="constant",
        packing=True,
        max_length=ROW_LENGTH,
        completion_only_loss=True,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        tokens_seen.append(int((batch["input_ids"] != tokenizer.pad_token_id).sum()))
        return batch

    trainer.data_collator = counting_collator
    trainer.add_callback(Clock())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    report = clock.report("trl SFTTrainer, packing", rows)
    report["losses"] = [round(x, 4) for x in losses]
    return report


# ---------------------------------------------------------------------------------------- main
def quiet_child(threads: int) -> None:
    """A contender's own process: library warnings and logs off, `threads` torch threads."""
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(threads)


def run_child(command: list[str], threads: int, label: str, pythonpath: str | None = None):
    """Run one contender's process (offline, `threads` OpenMP threads) and return the report
    it printed as its last `RESULT <json>` line; None, with its stderr, when it failed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["OMP_NUM_THREADS"] = str(threads)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        print(f"{label} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def child(args) -> None:
    quiet_child(args.threads)
    model_dir, data_file = make_fixtures(args.workdir)
    if args.contender == "evsys":
        report = run_evsys(model_dir, data_file, args.rows, args.steps, args.override)
    elif args.contender == "hand":
        report = run_hand(model_dir, data_file, args.rows, args.steps)
    else:
        report = run_trl(model_dir, data_file, args.rows, args.steps, args.workdir)
    report["threads"] = args.threads
    print("RESULT " + json.dumps(report), flush=True)


def spawn(args, contender: str, rows: int) -> dict | None:
    command = [
        sys.executable, __file__, "--child", contender, "--rows", str(rows),
        "--steps", str(args.steps), "--workdir", str(args.workdir),
        "--threads", str(args.threads),
    ]  # fmt: skip
    for override in args.override if contender == "evsys" else []:
        command += ["--override", override]
    pythonpath = args.evsys_path if contender == "evsys" else None
    result = run_child(command, args.threads, f"{contender} rows={rows}", pythonpath)
    if result is None:
        return None
    if contender == "evsys" and args.evsys_path:
        result["contender"] += f" ({args.evsys_path})"
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per run, the first untimed")
    parser.add_argument("--rows", type=int, default=4, help="packed rows of 1024 tokens per step")
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[], help="rows to sweep")
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--override", action="append", default=[], help="evsys config override")
    parser.add_argument("--evsys-path", default=None, help="PYTHONPATH for the evsys contender")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per contender")
    parser.add_argument("--workdir", type=Path, default=None, help="fixtures (reused if there)")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--child", choices=CONTENDERS, dest="contender", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir = args.workdir or Path(tempfile.gettempdir()) / "evsys_scale_sft"
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.contender:
        return child(args)
    make_fixtures(args.workdir)
    results = []
    for rows in args.memory_rows or [args.rows]:
        for contender in args.contenders:
            result = spawn(args, contender, rows)
            if result:
                results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
