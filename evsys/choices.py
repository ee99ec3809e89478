"""The allowed values of every enumerated config field, each list written once: its schema
field in evsys/config.py declares it (`one_of`), evsys/rules.py checks every composed config
against it, and code that dispatches on the value imports the list from here."""

from __future__ import annotations

ARCHITECTURES = ("qwen3", "llama")  # model.arch: a fresh model's transformers config
# model.attn_implementation: attention kernels; each keeps packed examples apart
# (evsys/data/packing.py)
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention", "flash_attention_2")
LORA_EXPORTS = ("merged", "adapter")  # model.lora.export
SCHEDULES = ("cosine", "linear", "constant")  # algorithm.schedule: decay after warm-up
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")  # Lightning's accelerator names
# backend.strategy: Lightning's data-parallel strategies, and fsdp: evsys's FSDP2 (backend=fsdp)
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp")
# backend.precision: Lightning's precision names
PRECISIONS = (
    "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true",
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip
# data.format: how rows become examples (evsys/data/formats.py)
FORMATS = ("auto", "prompt_completion", "prompt_answer", "chat", "text", "preference")
# data.packing_strategy: best_fit fills rows, but each row then holds examples of about one
# length (longest first); next_fit keeps the data order and closes a row as soon as the next
# example does not fit (rows of mixed lengths, less full). docs/scale.md.
PACKING_STRATEGIES = ("best_fit", "next_fit")
MIXTURE_SIZES = ("all", "first")  # data.mixture_size: examples of a training mix
LOSS_TYPES = ("sigmoid", "ipo", "simpo")  # algorithm.loss_type (DPO)
SMOOTHED = ("sigmoid", "simpo")  # the losses label smoothing applies to
# algorithm.loss_type (GRPO): TRL's names, evsys/ops/policy_loss.py
GRPO_LOSS_TYPES = ("bnpo", "grpo", "dr_grpo", "dapo", "cispo", "sapo")
# algorithm.importance_sampling_level (GRPO): a ratio per token, or per completion (GSPO)
RATIO_LEVELS = ("token", "sequence")
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")  # algorithm.loss_type (KTO)
METRIC_MODES = ("max", "min")  # experiment.success_metric.mode
ON_MISMATCH = ("refuse", "rerun")  # experiment.on_mismatch
LOGGERS = ("tensorboard", "mlflow", "wandb")  # logger.kind: TensorBoard alone, or one more
WANDB_MODES = ("offline", "online")  # logger.mode (wandb): offline needs no network or account
# experiment.confirm.stage (set by the sweeper): a sweep's arms x seeds, then the winner and
# its comparison arm on fresh seeds
SELECTION, CONFIRMATION = "selection", "confirmation"
CONFIRM_STAGES = (SELECTION, CONFIRMATION)
