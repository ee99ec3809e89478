"""GRPO at a real vocabulary size: evsys's GRPO against TRL's GRPOTrainer, same work per step.

The model is scale_sft.py's (Qwen3-shaped, 151,936-token vocabulary, hidden 512, 8 layers,
tied embeddings, about 103M parameters; random init, saved with the byte tokenizer), so each
sampled token runs the 152k-wide output projection, as in 0.1-8B models.

    evsys   the product path: PostTrainingDataModule + GRPOModule + a Lightning Trainer,
            configured by compose_run_config (algorithm=grpo, model.name=<the saved dir>)
    trl     trl.GRPOTrainer with transformers generation (`model.generate`, no vLLM)

Held equal: the model and its weights (one saved directory), the prompts (one .jsonl: every
prompt the same length, so every step does the same work whatever order each trainer draws
them in), prompts per step, completions per prompt (num_generations), the completion length
(a random-init model almost never samples EOS among 152k tokens, so every completion runs to
`max_completion_length`; the report gives the mean), sampling (temperature 1, no top-k/top-p),
the reward function (`overlap_reward` below, character overlap with the reference), the
GRPO setting of the row (ROWS: `bnpo`, one optimizer step per generation batch, the loss over
all completion tokens, TRL's loss_type="dapo", equal here; `num_iterations=2`, two optimizer
steps per generation; `dapo` with clip-higher), no KL and no reference model (beta 0), std
scaling of advantages, AdamW lr 1e-6 with betas 0.9/0.95, grad clip 1.0, fp32, no gradient
checkpointing, one thread. Each contender runs in a fresh process (peak RSS is its own); the
first step is warm-up, steps/s is over the steps after it (sampling, scoring, forward,
backward and optimizer step: a whole GRPO step for both).

    python benchmarks/scale_grpo.py --steps 4
    python benchmarks/scale_grpo.py --steps 3 --rows bnpo num_iterations=2 dapo --repeats 2

With num_iterations=2, steps 2 and 3 are one reuse step and one sampling step: an odd
--steps times whole generations.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_sft import (  # noqa: E402
    make_fixtures,
    peak_rss_gb,
    quiet_child,
    run_child,
    trl_inputs,
)

CONTENDERS = ("evsys", "trl")
# The rows: one GRPO setting each, as (evsys algorithm.* keys, TRL GRPOConfig keys) that do
# the same work. bnpo is TRL's dapo with one process and no gradient accumulation.
ROWS = {
    "bnpo": ({"loss_type": "bnpo"}, {"loss_type": "dapo"}),
    # each generation trains 2 optimizer steps: every other step samples, and TRL also scores
    # the old policy's log-probs (an extra forward), where evsys keeps the sampling step's
    "num_iterations=2": (
        {"loss_type": "bnpo", "num_iterations": 2},
        {"loss_type": "dapo", "num_iterations": 2},
    ),
    # DAPO's loss with clip-higher (evsys's own dapo path: tokens counted over processes)
    "dapo": (
        {"loss_type": "dapo", "epsilon_high": 0.28},
        {"loss_type": "dapo", "epsilon_high": 0.28},
    ),
}
LR = 1e-6
PROMPT_BYTES = 48
WORDS = "the a of to in model data train loss token batch step answer question value".split()


def overlap_reward(completions: list[str], examples: list[dict], **_) -> list[float]:
    """Character overlap of each completion with its reference answer (0..1); the reward of
    both contenders (evsys passes examples, TRL the dataset's columns as keywords)."""
    return [
        difflib.SequenceMatcher(None, text.strip(), example["completion"].strip()).ratio()
        for text, example in zip(completions, examples, strict=True)
    ]


def trl_overlap_reward(prompts, completions, answer, **_) -> list[float]:
    """TRL's calling convention for the same reward. TRL passes every dataset column but
    "prompt" and "completion" as a keyword, so the reference answer is also in "answer"."""
    return overlap_reward(completions, [{"completion": text} for text in answer])


def make_prompts(workdir: Path, count: int = 256) -> Path:
    """Prompts of exactly PROMPT_BYTES bytes (the same work in every step) with answers."""
    path = workdir / "grpo_prompts.jsonl"
    if not path.exists():
        rng = random.Random(0)
        with path.open("w") as out:
            for _ in range(count):
                text = " ".join(rng.choices(WORDS, k=PROMPT_BYTES))
                answer = text[-16:]
                row = {"prompt": text[: PROMPT_BYTES - 1] + "=", "completion": answer}
                row["answer"] = answer  # the same, for TRL's reward (see trl_overlap_reward)
                out.write(json.dumps(row) + "\n")
    return path


class StepClock:
    """Wall and CPU seconds of every step, and the completion lengths; the first is warm-up."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self.completion_lengths: list[float] = []
        self._started = self._cpu_started = 0.0

    def start(self) -> None:
        self._started, self._cpu_started = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.cpu_seconds.append(time.process_time() - self._cpu_started)

    def report(self, contender: str) -> dict:
        timed = slice(1, None) if len(self.seconds) > 1 else slice(None)
        steps, seconds = len(self.seconds[timed]), sum(self.seconds[timed])
        return {
            "contender": contender,
            "timed_steps": steps,
            "steps_per_second": round(steps / seconds, 4),
            "steps_per_cpu_second": round(steps / sum(self.cpu_seconds[timed]), 4),
            "seconds_per_step": [round(x, 2) for x in self.seconds],
            "mean_completion_length": round(
                sum(self.completion_lengths) / max(len(self.completion_lengths), 1), 2
            ),
            "peak_rss_gb": round(peak_rss_gb(), 2),
        }


# ----------------------------------------------------------------------------------- contenders
def run_evsys(model_dir: Path, prompts: Path, args) -> dict:
    import lightning as L

    from evsys import compose_run_config
    from evsys.algorithms import algorithm_module_class
    from evsys.lightning.datamodule import PostTrainingDataModule
    from evsys.models import load_model, load_tokenizer

    cfg = compose_run_config(
        [
            "algorithm=grpo",
            f"model.name={model_dir}",
            f"data.dataset_name={prompts}",
            "data.cache=false",
            f"algorithm.batch_size={args.prompts}",
            f"algorithm.num_generations={args.generations}",
            f"algorithm.max_completion_length={args.completion_length}",
            "algorithm.temperature=1.0",
            "algorithm.rewards=[scale_grpo.overlap_reward]",
            "algorithm.beta=0.0",
            *(f"algorithm.{key}={value}" for key, value in ROWS[args.row][0].items()),
            f"algorithm.max_steps={args.steps}",
            "algorithm.warmup_steps=0",
            "algorithm.schedule=constant",
            f"algorithm.lr={LR}",
            "validation.enabled=false",
            "eval.benchmarks=[]",
            *args.override,
        ]
    )
    clock = StepClock()

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            clock.stop()
            length = trainer.callback_metrics.get("train/completion_length")
            if length is not None:
                clock.completion_lengths.append(float(length))

    L.seed_everything(0, verbose=False)
    tokenizer = load_tokenizer(cfg.model)
    algorithm = algorithm_module_class("grpo")
    data = PostTrainingDataModule(cfg, tokenizer, algorithm)
    data.prepare()
    module = algorithm(load_model(cfg.model, tokenizer), tokenizer, cfg.algorithm, seed=0)
    trainer = L.Trainer(
        accelerator="cpu",
        precision=cfg.backend.precision,
        max_steps=args.steps,
        gradient_clip_val=cfg.algorithm.grad_clip,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    if args.profile:
        return profiled(lambda: trainer.fit(module, datamodule=data), clock, "evsys", args)
    trainer.fit(module, datamodule=data)
    return clock.report(" ".join(["evsys GRPO", args.row, *args.override]))


def run_trl(model_dir: Path, prompts: Path, args) -> dict:
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, model, dataset = trl_inputs(model_dir, prompts)
    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            clock.stop()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                clock.completion_lengths.append(float(logs["completions/mean_length"]))

    completions = args.prompts * args.generations
    config = GRPOConfig(
        output_dir=str(args.workdir / "trl"),
        max_steps=args.steps,
        # TRL's batch counts completions: prompts x num_generations, all in one generation
        # batch, one optimizer step per generation batch.
        per_device_train_batch_size=completions,
        gradient_accumulation_steps=1,
        num_generations=args.generations,
        max_completion_length=args.completion_length,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=0.0,
        scale_rewards="group",
        learning_rate=LR,
        adam_beta2=0.95,
        weight_decay=0.0,
        max_grad_norm=1.0,
        lr_scheduler_type="constant",
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        dataloader_num_workers=0,
        seed=0,
        **ROWS[args.row][1],
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=trl_overlap_reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.add_callback(Clock())
    if args.profile:
        return profiled(trainer.train, clock, "trl", args)
    trainer.train()
    return clock.report(f"trl GRPOTrainer {args.row}")


def profiled(train, clock: StepClock, name: str, args) -> dict:
    """cProfile the whole run; the top functions by cumulative time go to a file."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.runcall(train)
    path = args.workdir / f"profile_{name}.txt"
    with path.open("w") as out:
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(60)
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(40)
    report = clock.report(f"{name} (profiled: {path})")
    return report


# ---------------------------------------------------------------------------------------- main
def child(args) -> None:
    quiet_child(args.threads)
    model_dir, _ = make_fixtures(args.workdir)
    prompts = make_prompts(args.workdir)
    run = run_evsys if args.contender == "evsys" else run_trl
    report = run(model_dir, prompts, args)
    report.update(
        row=args.row,
        threads=args.threads,
        prompts_per_step=args.prompts,
        num_generations=args.generations,
        max_completion_length=args.completion_length,
    )
    print("RESULT " + json.dumps(report), flush=True)


def spawn(args, contender: str, row: str) -> dict | None:
    command = [
        sys.executable, __file__, "--child", contender, "--steps", str(args.steps),
        "--prompts", str(args.prompts), "--generations", str(args.generations),
        "--completion-length", str(args.completion_length), "--workdir", str(args.workdir),
        "--threads", str(args.threads), "--row", row,
    ]  # fmt: skip
    for override in args.override if contender == "evsys" else []:
        command += ["--override", override]
    if args.profile:
        command.append("--profile")
    result = run_child(command, args.threads, contender)
    if result is not None:
        print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="steps per run, the first untimed")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt")
    parser.add_argument("--completion-length", type=int, default=32, help="max new tokens")
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--rows", nargs="*", default=["bnpo"], choices=list(ROWS), help="settings")
    parser.add_argument("--override", action="append", default=[], help="evsys config override")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per contender")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, order alternating")
    parser.add_argument("--profile", action="store_true", help="cProfile each run (slower)")
    parser.add_argument("--workdir", type=Path, default=None, help="fixtures (reused if there)")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--child", choices=CONTENDERS, dest="contender", help=argparse.SUPPRESS)
    parser.add_argument("--row", choices=list(ROWS), default="bnpo", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir = args.workdir or Path(tempfile.gettempdir()) / "evsys_scale_grpo"
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.contender:
        return child(args)
    make_fixtures(args.workdir)
    make_prompts(args.workdir)
    results = []
    for repeat in range(args.repeats):  # rows inside repeats: a load spike hits every row
        for row in args.rows:
            order = args.contenders if repeat % 2 == 0 else args.contenders[::-1]
            results += filter(None, (spawn(args, contender, row) for contender in order))
    print(
        f"held equal: {args.prompts} prompts x {args.generations} completions per generation, "
        f"{args.completion_length} new tokens max, temperature 1, overlap_reward, beta 0, "
        f"fp32, {args.threads} thread(s), fresh process each"
    )
    for row in args.rows:
        report_row(row, [r for r in results if r["row"] == row], args.contenders)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report_row(row: str, results: list[dict], contenders: list[str]) -> None:
    """Each contender's rates and medians, and evsys / TRL of the medians (the machine's load
    varies between runs: the median of alternating runs is the figure to quote)."""
    medians = {}
    for contender in contenders:
        mine = [r for r in results if r["contender"].startswith(contender)]
        if mine:
            rates = [r["steps_per_second"] for r in mine]
            cpu = [r["steps_per_cpu_second"] for r in mine]
            medians[contender] = (statistics.median(rates), statistics.median(cpu))
            print(f"{row} {contender}: steps/s {rates}, steps per CPU s {cpu}")
    if len(medians) == 2:
        wall = medians["evsys"][0] / medians["trl"][0]
        cpu = medians["evsys"][1] / medians["trl"][1]
        print(f"{row} evsys / TRL (medians): steps/s {wall:.2f}x; per CPU second {cpu:.2f}x")


if __name__ == "__main__":
    main()
