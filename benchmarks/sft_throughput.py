"""SFT training throughput: evsys against two hand-written PyTorch loops, in one process.

All three train the same model (conf/model/tiny.yaml, same init seed) on the same examples
(the built-in `reversal` task) for the same number of optimizer steps with the same optimizer,
schedule and clipping:

    evsys          evsys.run_experiment(cfg): Lightning, packed rows, the real product path
    hand, padded   one whole example per row, right-padded, with an attention_mask
    hand, packed   pack_examples + collate_packed rows, no mask, position_ids per example

Every contender's tokens/s is non-padding tokens trained on / wall seconds of its training
loop (model construction and data prep excluded for all three alike). Each contender first
runs a few untimed warm-up steps in this process, then its timed run counts every step.

    python benchmarks/sft_throughput.py --steps 60 --repeats 7 --json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from statistics import median

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import evsys
from evsys.data.packing import collate_packed, collate_padded, pack_examples
from evsys.data.sources import load_split
from evsys.data.tokenize import IGNORE_INDEX, tokenize_examples
from evsys.lightning.schedule import lr_multiplier
from evsys.models import load_model, load_tokenizer

WARMUP_STEPS = 3  # untimed steps per contender before its measured runs
EVSYS = "evsys"
PADDED = "hand loop, padded"
PACKED = "hand loop, packed"


@dataclass
class Measurement:
    """One timed training run of one contender."""

    contender: str
    steps: int
    tokens: int  # non-padding tokens in the trained batches
    seconds: float  # wall seconds of the training loop
    cpu_seconds: float  # CPU seconds this process spent in the same span (all its threads)
    final_loss: float
    reported_tokens_per_second: float | None = None  # evsys's own ThroughputMonitor figure

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    @property
    def tokens_per_cpu_second(self) -> float:
        return self.tokens / self.cpu_seconds


# ------------------------------------------------------------------------------------ config
def run_config(args: argparse.Namespace, steps: int) -> DictConfig:
    """The arm evsys trains; the hand loops read model, data and optimizer settings from it."""
    overrides = [
        f"algorithm.max_steps={steps}",
        f"algorithm.batch_size={args.batch_size}",
        f"data.max_length={args.max_length}",
        # Validation would run inside trainer.fit, and the hand loops do none; scoring runs
        # after it, outside the timed span, and is switched off only to save time.
        "validation.enabled=false",
        "eval.benchmarks=[]",
    ]
    if args.threads:
        overrides.append(f"backend.num_threads={args.threads}")
    return evsys.compose_run_config(overrides)


# ---------------------------------------------------------------------------------- contenders
def measure_evsys(cfg: DictConfig) -> Measurement:
    """The real product path; timings["train"] is trainer.fit, Lightning's overhead included."""
    fit_cpu_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="evsys-bench-") as job_dir:
        with cpu_time_of_fit(fit_cpu_seconds):
            result = evsys.run_experiment(cfg, job_dir=job_dir)
    if not result.completed:
        raise RuntimeError(f"evsys run failed: {result.error}\n{result.traceback}")
    return Measurement(
        contender=EVSYS,
        steps=cfg.algorithm.max_steps,
        tokens=int(result.throughput["train_tokens"]),
        seconds=float(result.timings["train"]),
        cpu_seconds=fit_cpu_seconds[-1],
        final_loss=float(result.metrics["train/loss"]),
        reported_tokens_per_second=float(result.throughput["tokens_per_second"]),
    )


def measure_hand_loop(
    cfg: DictConfig, contender: str, items: list[dict], batch_size: int, collate: Callable
) -> Measurement:
    """A plain PyTorch loop: the same model, optimizer, schedule and clipping as evsys."""
    tokenizer = load_tokenizer(cfg.model)
    L.seed_everything(cfg.seed, verbose=False)  # what evsys does right before building the model
    model = load_model(cfg.model, tokenizer).train()
    optimizer, scheduler = optimizer_and_schedule(model, cfg.algorithm)
    batches = shuffled_batches(items, batch_size, cfg.seed)
    steps, tokens, loss = cfg.algorithm.max_steps, 0, torch.tensor(float("nan"))
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(steps):
        rows = next(batches)
        batch = collate(rows, tokenizer.pad_token_id)
        loss = train_step(model, batch, optimizer, scheduler, cfg.algorithm.grad_clip)
        tokens += sum(len(row["input_ids"]) for row in rows)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return Measurement(contender, steps, tokens, seconds, cpu_seconds, float(loss))


@contextlib.contextmanager
def cpu_time_of_fit(sink: list[float]) -> Iterator[None]:
    """Records the process CPU time of every Trainer.fit call made inside the block.

    run_experiment offers no hook around fit, and its timings are wall clock only. CPU time
    is what makes a run on a shared machine readable: with one thread it hardly moves when
    other jobs compete for the cores, while wall time stretches with every one of them.
    """
    original = L.Trainer.fit

    def timed_fit(trainer, *args, **kwargs):
        started = time.process_time()
        try:
            return original(trainer, *args, **kwargs)
        finally:
            sink.append(time.process_time() - started)

    L.Trainer.fit = timed_fit
    try:
        yield
    finally:
        L.Trainer.fit = original


def optimizer_and_schedule(model: torch.nn.Module, algorithm) -> tuple:
    """AdamW with decay on matrices only, warm-up then decay: the settings evsys trains with."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": algorithm.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=algorithm.lr, betas=tuple(algorithm.betas))
    multiplier = partial(
        lr_multiplier,
        warmup_steps=algorithm.warmup_steps,
        max_steps=algorithm.max_steps,
        schedule=algorithm.schedule,
        min_lr_ratio=algorithm.min_lr_ratio,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def train_step(model, batch: dict, optimizer, scheduler, grad_clip: float) -> torch.Tensor:
    # use_cache=False: with a cache transformers would not detect packed rows (see packing.py).
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        position_ids=batch["position_ids"],
        use_cache=False,
    ).logits
    # Mean over target tokens of predicting token t+1 at t, as evsys's SFT loss.
    loss = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        batch["labels"][:, 1:].flatten(),
        ignore_index=IGNORE_INDEX,
    )
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def shuffled_batches(items: list[dict], batch_size: int, seed: int) -> Iterator[list[dict]]:
    """Endless batches over a fresh seeded permutation each epoch.

    The permutation is seeded like evsys's StepStream, so the packed hand loop sees the very
    rows evsys trains on, in the same order, and their losses can be compared step for step.
    """
    orders: dict[int, list[int]] = {}
    position = 0
    while True:
        batch = []
        for _ in range(batch_size):
            epoch, offset = divmod(position, len(items))
            if epoch not in orders:
                generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
                orders = {epoch: torch.randperm(len(items), generator=generator).tolist()}
            batch.append(items[orders[epoch][offset]])
            position += 1
        yield batch


# ---------------------------------------------------------------------------------- the run
@dataclass
class Workload:
    """The training data every contender draws from, and the padded loop's batch size."""

    examples: list[dict]
    rows: list[dict]
    padded_batch_size: int

    @property
    def examples_per_row(self) -> float:
        return len(self.examples) / len(self.rows)


def prepare_workload(cfg: DictConfig) -> Workload:
    tokenizer = load_tokenizer(cfg.model)
    examples = tokenize_examples(load_split(cfg.data, "train"), tokenizer, cfg.data.max_length)
    rows = pack_examples(examples, cfg.data.max_length)
    # As many whole examples per padded step as evsys's packed rows hold on average, so every
    # contender trains on about the same number of real tokens per optimizer step.
    padded_batch_size = round(cfg.algorithm.batch_size * len(examples) / len(rows))
    return Workload(examples, rows, padded_batch_size)


def measure(contender: str, cfg: DictConfig, work: Workload) -> Measurement:
    if contender == EVSYS:
        return measure_evsys(cfg)
    if contender == PADDED:
        return measure_hand_loop(cfg, PADDED, work.examples, work.padded_batch_size, collate_padded)
    return measure_hand_loop(cfg, PACKED, work.rows, cfg.algorithm.batch_size, collate_packed)


def run_all(args: argparse.Namespace, work: Workload) -> dict[str, list[Measurement]]:
    contenders = [EVSYS, PADDED, PACKED]
    warmup_cfg, cfg = run_config(args, WARMUP_STEPS), run_config(args, args.steps)
    for contender in contenders:  # first-call costs (lazy imports, allocator) are not timed
        measure(contender, warmup_cfg, work)
    results: dict[str, list[Measurement]] = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        # Rotating the order spreads slow drifts of a shared machine over every contender.
        shift = repeat % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            results[contender].append(measure(contender, cfg, work))
    return results


# --------------------------------------------------------------------------------- reporting
def load_average() -> list[str]:
    """1-, 5- and 15-minute load averages: the machine may be shared, so every report says."""
    return Path("/proc/loadavg").read_text().split()[:3]


def environment(args: argparse.Namespace, load_before: list[str]) -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "steps": args.steps,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
    }


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_report(results: dict[str, list[Measurement]], env: dict, work: Workload) -> None:
    # Logs and pipes default to 80 columns, which wraps the table; terminals keep their width.
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(
        f"torch {env['torch']}, {env['threads']} threads, {env['cpu']} "
        f"({env['cpu_count']} cores); load average before {' '.join(env['loadavg_before'])}, "
        f"after {' '.join(env['loadavg_after'])}"
    )
    console.print(
        f"{args_line(env)}; {work.examples_per_row:.2f} examples per packed row, "
        f"padded loop batch {work.padded_batch_size} examples"
    )
    console.print(throughput_table(results, env["repeats"]))
    console.print(
        "tokens/s: non-padding tokens / wall seconds of the whole training loop (trainer.fit "
        "for evsys). evsys, self-reported: its ThroughputMonitor, which times only the inside "
        "of training batches. evsys and the packed hand loop train on the same rows in the same "
        "order, so their final losses should agree up to float rounding; the padded loop's "
        "batches differ. CPU seconds of every run are in --json."
    )


def throughput_table(results: dict[str, list[Measurement]], repeats: int) -> Table:
    """Median and best run of every contender, and their ratios to the two hand loops.

    Other jobs on a shared machine can only slow a run down, never speed it up, so the best
    run is the better estimate of undisturbed speed when the median is visibly disturbed.
    """
    wall = {name: median([m.tokens_per_second for m in runs]) for name, runs in results.items()}
    best = {name: max(m.tokens_per_second for m in runs) for name, runs in results.items()}
    table = Table(title=f"SFT throughput, {repeats} run(s) per contender")
    columns = ["contender", "tokens/s (median)", "steps/s", "final loss", "vs packed", "vs padded"]
    for column in [*columns, "tokens/s (best)", "best vs best packed"]:
        table.add_column(column, justify="left" if column == "contender" else "right")
    for name, runs in results.items():
        table.add_row(
            name,
            f"{wall[name]:,.0f}",
            f"{median([m.steps_per_second for m in runs]):.2f}",
            f"{median([m.final_loss for m in runs]):.4f}",
            f"{wall[name] / wall[PACKED]:.3f}x",
            f"{wall[name] / wall[PADDED]:.3f}x",
            f"{best[name]:,.0f}",
            f"{best[name] / best[PACKED]:.3f}x",
        )
    reported = [m.reported_tokens_per_second for m in results[EVSYS]]
    table.add_row(
        "evsys, self-reported", f"{median(reported):,.0f}", "", "",
        f"{median(reported) / wall[PACKED]:.3f}x", f"{median(reported) / wall[PADDED]:.3f}x",
        f"{max(reported):,.0f}", f"{max(reported) / best[PACKED]:.3f}x",
    )  # fmt: skip
    return table


def args_line(env: dict) -> str:
    return f"{env['steps']} steps, batch {env['batch_size']} rows of {env['max_length']} tokens"


def write_json(path: str, results: dict[str, list[Measurement]], env: dict, work: Workload):
    figures = {"environment": env, "examples_per_row": work.examples_per_row}
    figures["padded_batch_size"] = work.padded_batch_size
    figures["contenders"] = {
        name: {
            "median_tokens_per_second": round(median([m.tokens_per_second for m in runs]), 1),
            "median_tokens_per_cpu_second": round(
                median([m.tokens_per_cpu_second for m in runs]), 1
            ),
            "runs": [summary(m) for m in runs],
        }
        for name, runs in results.items()
    }
    Path(path).write_text(json.dumps(figures, indent=2) + "\n")


def summary(m: Measurement) -> dict:
    return {
        **asdict(m),
        "tokens_per_second": round(m.tokens_per_second, 1),
        "steps_per_second": round(m.steps_per_second, 3),
        "tokens_per_cpu_second": round(m.tokens_per_cpu_second, 1),
    }


def quiet_lightning() -> None:
    """Keep the table readable: Lightning's banners and hints say nothing about speed."""
    for name in ("lightning.pytorch", "lightning.fabric", "evsys"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per contender")
    parser.add_argument("--batch-size", type=int, default=16, help="packed rows per step")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per packed row")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    work = prepare_workload(run_config(args, args.steps))
    load_before = load_average()
    results = run_all(args, work)
    env = environment(args, load_before)
    print_report(results, env, work)
    if args.json:
        write_json(args.json, results, env, work)


if __name__ == "__main__":
    main()
