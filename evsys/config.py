"""Dataclass schemas for every config group: every default lives here, once.

Each group file under conf/ starts from its schema (`defaults: [/schema/<group>/<name>@_here_]`)
and sets only what deliberately differs from it, so Hydra type-checks values and rejects unknown
keys while composing. evsys/validate.py checks the composed config once more (keys added with
`+key=value`, data, benchmarks). Schemas only: no torch, no models. Every field has a type, a
default and one line of help (the comment beside it); a field with a few allowed values or a
range declares them with evsys/rules.py's `one_of`, `at_least`, `above` or `within` (the lists
are in evsys/choices.py), checked on every composed config. Free text (hypothesis, metadata,
tags, names, and what names an arm, a metric or a stage) is declared with `free_text`: read
literally, `${...}` in it never resolved (evsys/free_text.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

from evsys import choices as allowed  # the allowed values of enumerated fields
from evsys.data.columns import DataColumns
from evsys.errors import ConfigError
from evsys.optimizer_rules import check_optimizer
from evsys.rules import above, at_least, free_text, one_of, within
from evsys.run.logger_config import LoggerConfig
from evsys.stages_config import AdaptiveConfig, ConfirmConfig


# --------------------------------------------------------------------------------------- model
@dataclass
class LoraConfig:
    r: int = at_least(0, 0)  # LoRA rank; 0 trains all weights
    alpha: int = above(16, 0)  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = within(0.0, 0, 1)  # dropout on the LoRA input
    # module names that get adapters
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    # merged: plain weights | adapter: peft files (+ model/base/ if fresh)
    export: str = one_of("merged", allowed.LORA_EXPORTS)


# Where the tokenizer comes from, first set first; none set: the built-in byte tokenizer.
TOKENIZER_SOURCES = ("tokenizer", "init_from", "name")


@dataclass
class ModelConfig:
    name: str | None = None  # hub id or local directory; None builds a fresh model from arch below
    arch: str = one_of("qwen3", allowed.ARCHITECTURES)  # architecture when building from a config
    hidden_size: int = at_least(128, 1)  # width of the residual stream
    num_layers: int = at_least(4, 1)  # decoder blocks
    num_heads: int = at_least(4, 1)  # attention heads
    num_kv_heads: int = at_least(2, 1)  # key/value heads (grouped-query attention)
    intermediate_size: int = at_least(384, 1)  # MLP width
    max_position_embeddings: int = at_least(512, 1)  # longest sequence the model supports
    # Share input and output embeddings. Untied, tokens a task never shows keep distinct input
    # embeddings while another task is trained (see conf/experiment/continual_demo.yaml).
    tie_word_embeddings: bool = True
    tokenizer: str | None = (
        None  # tokenizer hub id/dir; None: model.name's, else the byte tokenizer
    )
    trust_remote_code: bool = False  # allow custom modelling code from the model directory
    init_from: str | None = None  # start from these weights: a model dir, or "parent" (best arm)
    lora: LoraConfig = field(default_factory=LoraConfig)  # parameter-efficient fine-tuning
    # Recompute each block's activations in the backward pass: far less memory, ~1/3 more compute.
    gradient_checkpointing: bool = False
    attn_implementation: str = one_of("sdpa", allowed.ATTN_IMPLEMENTATIONS)  # attention kernel


# ----------------------------------------------------------------------------------- algorithm
@dataclass
class AlgorithmConfig:
    """Fields every algorithm shares; each algorithm module subclasses it."""

    kind: str = MISSING  # which algorithm (evsys/algorithms.py lists them)
    # 0 is allowed: an arm that scores its starting model as is (grpo_addition's baseline)
    lr: float = at_least(3e-3, 0, "0 leaves the weights as they start")  # peak lr of AdamW
    max_steps: int = at_least(180, 1)  # optimizer steps
    batch_size: int = at_least(16, 1)  # rows per micro-batch (packed rows when data.packing)
    accumulate_grad_batches: int = at_least(1, 1)  # micro-batches per optimizer step
    warmup_steps: int = at_least(20, 0, "0 for none")  # linear warm-up from 0 to lr
    schedule: str = one_of("cosine", allowed.SCHEDULES)  # decay after warm-up
    min_lr_ratio: float = at_least(0.1, 0)  # final lr as a fraction of lr (cosine/linear)
    weight_decay: float = at_least(0.0, 0)  # AdamW decoupled weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    grad_clip: float = at_least(1.0, 0)  # clip the global gradient norm to this; 0 disables
    # Not config keys: what the algorithm's module logs (evsys/metric_names.py reads them).
    # val/<name> each validation logs; the record keeps them.
    validation_metrics: ClassVar[tuple[str, ...]] = ("loss",)
    # train/<name> logged each step besides train/loss: TensorBoard curves, not in the record
    # unless listed in recorded_curves (the module's final_train_metrics gives their values)
    curves: ClassVar[tuple[str, ...]] = ("lr",)
    recorded_curves: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """The optimizer's rules that no single field's range says (evsys/optimizer_rules.py);
        a subclass's own __post_init__ calls this first."""
        check_optimizer(self)


# ------------------------------------------------------------------------------------- backend
@dataclass
class BackendConfig:
    accelerator: str = one_of("cpu", allowed.ACCELERATORS)  # where it trains
    devices: Any = 1  # devices per node (int, or "auto")
    num_nodes: int = at_least(1, 1)  # nodes for multi-node training
    strategy: str = one_of("auto", allowed.STRATEGIES)  # Lightning's; fsdp: FSDP2 (backend=fsdp)
    precision: str = one_of("32-true", allowed.PRECISIONS)  # Lightning precision
    num_threads: int | None = at_least(None, 1)  # torch CPU threads; None keeps torch's default
    compile: bool = False  # torch.compile the model's decoder blocks (first steps compile)


# ---------------------------------------------------------------------------------------- data
@dataclass
class DatasetConfig:
    """One dataset: where it comes from, how it is read, and its own transforms."""

    dataset_name: str = "reversal"  # a built-in task, a local file/folder, or a hub id
    config_name: str | None = None  # hub datasets: the configuration (subset), if any
    format: str = one_of("auto", allowed.FORMATS)  # how rows become examples
    columns: DataColumns = field(default_factory=DataColumns)  # source column names
    train_split: str = "train"  # local and hub datasets: the split trained on
    eval_split: str | None = None  # None: "validation" or "test" if present, else held out
    # share of train held out (seeded by data.seed) if no eval split
    eval_fraction: float = within(0.1, 0, 1, low_open=True)
    transforms: list[Any] = field(default_factory=list)  # ordered steps, see docs/data.md
    num_train: int = at_least(20000, 1)  # built-in tasks: training examples generated
    num_eval: int = at_least(256, 1)  # built-in tasks: held-out examples generated
    seed: int = 0  # seed of the data itself: which examples, the held-out split


@dataclass
class MixtureComponent(DatasetConfig):
    """One weighted dataset of `data.mixture`; its fields default as data.* fields do."""

    dataset_name: str = MISSING  # this component's dataset (task, local path or hub id)
    # sampling proportion of the training mix (normalised over components)
    weight: float = above(1.0, 0)
    seed: int | None = None  # None: data.seed


@dataclass
class DataConfig(DatasetConfig):
    # Weighted datasets trained instead of the one above (None: that one; docs/data.md#mixtures);
    # mixture_size: the mix's examples, all components' or the first's alone (replay's budget)
    mixture: list[MixtureComponent] | None = None
    mixture_size: str = one_of("all", allowed.MIXTURE_SIZES)
    max_length: int = at_least(128, 1)  # tokens per row: packed row length, and truncation limit
    packing: bool = True  # pack several examples into each training row
    # examples packed together, best fit longest first (docs/scale.md)
    packing_window: int = at_least(4096, 1)
    # best_fit: full rows of like lengths | next_fit: data order kept (evsys/choices.py)
    packing_strategy: str = one_of("best_fit", allowed.PACKING_STRATEGIES)
    num_workers: int = at_least(0, 0)  # DataLoader worker processes
    cache: bool = True  # reuse loaded and tokenized data across runs (docs/data.md#caching)
    cache_dir: str | None = None  # None: $EVSYS_CACHE_DIR, else ~/.cache/evsys/data
    # tokenization processes; None: all cores for >= 20k examples
    num_proc: int | None = at_least(None, 1)
    # seed of the training order (each epoch's shuffle); None: the run's `seed` (docs/statistics.md)
    order_seed: int | None = None


# ---------------------------------------------------------------------------------------- eval
@dataclass
class HarnessConfig:
    """Settings of every `harness:<task>` benchmark (lm-evaluation-harness, docs/evaluation.md)."""

    include_path: str | None = None  # folder of local lm-eval task YAMLs, added to its own tasks
    # few-shot examples per prompt; None: each task's default
    num_fewshot: int | None = at_least(None, 0)
    # examples scored per task; None: all (the standard number)
    limit: int | None = at_least(None, 1)
    batch_size: int = at_least(8, 1)  # requests per forward pass


@dataclass
class EvalConfig:
    # names scored after training: a built-in task, the training dataset, harness:<task>
    # (lm-evaluation-harness) or class:<module.Class> (your own Benchmark subclass)
    benchmarks: list[Any] = field(default_factory=list)
    batch_size: int = at_least(64, 1)  # prompts per generation batch
    max_examples: int = at_least(256, 1)  # held-out examples scored per benchmark
    max_new_tokens: int = at_least(32, 1)  # generation budget per answer
    harness: HarnessConfig = field(default_factory=HarnessConfig)  # harness:<task> settings


@dataclass
class ValidationConfig:
    enabled: bool = True  # compute val/loss during training
    every_n_steps: int = at_least(50, 1)  # validate every this many optimizer steps
    num_batches: int = at_least(4, 1)  # validation batches per check
    # also score benchmarks this often in training; 0: never
    benchmarks_every_n_steps: int = at_least(0, 0)
    benchmarks: list[str] | None = None  # which ones then; None: all of eval.benchmarks


# ------------------------------------------------------------------------------ the algorithms
# One schema per algorithm; its `kind` default is the algorithm's name (evsys/algorithms.py).
@dataclass
class SFTConfig(AlgorithmConfig):
    kind: str = "sft"


@dataclass
class PretrainConfig(AlgorithmConfig):
    kind: str = "pretrain"


@dataclass
class GRPOConfig(AlgorithmConfig):
    kind: str = "grpo"
    lr: float = 1e-4  # GRPO fine-tunes a trained policy: a lower, constant lr, fewer steps
    max_steps: int = 100
    batch_size: int = 8  # prompts per micro-batch; each gets num_generations completions
    warmup_steps: int = 5
    schedule: str = "constant"
    num_generations: int = at_least(8, 2, "each advantage is relative to its group")  # G
    temperature: float = above(1.0, 0)  # sampling temperature
    max_completion_length: int = at_least(16, 1)  # tokens sampled per completion, EOS included
    rewards: list[str] = field(default_factory=lambda: ["exact_match"])  # names or dotted paths
    reward_weights: list[float] = field(default_factory=list)  # one per reward; empty: all 1
    scale_rewards: bool = True  # divide advantages by the group's reward std (False: Dr. GRPO)
    beta: float = at_least(0.0, 0)  # weight of the KL penalty to the reference policy; 0: none
    num_iterations: int = at_least(1, 1)  # mu: optimizer steps per generation (reuse)
    loss_type: str = one_of("bnpo", allowed.GRPO_LOSS_TYPES)  # docs/algorithms.md's table
    epsilon: float = above(0.2, 0)  # lower clip range of the ratio (and upper, by default)
    epsilon_high: float | None = above(None, 0)  # upper clip range (None: epsilon); cispo: cap
    importance_sampling_level: str = one_of("token", allowed.RATIO_LEVELS)  # sequence: GSPO
    sapo_temperature_pos: float = above(1.0, 0)  # sapo: gate temperature where A > 0
    sapo_temperature_neg: float = above(1.05, 0)  # sapo: gate temperature where A <= 0
    dynamic_sampling: bool = False  # DAPO's: groups whose rewards all agree leave the loss
    # train/<name> curves besides train/loss, and the recorded ones (docs/algorithms.md)
    curves: ClassVar[tuple[str, ...]] = (
        "reward", "reward_std", "completion_length", "rewards/{reward}", "kl", "lr", "flat_groups"
    )  # fmt: skip
    recorded_curves: ClassVar[tuple[str, ...]] = ("reward", "rewards/{reward}")

    def __post_init__(self) -> None:
        """A ConfigError naming the key for reward lists GRPO cannot train with (the reward
        names are resolved by evsys/validate.py; each key's own range is on its field)."""
        super().__post_init__()
        if not self.rewards:
            raise ConfigError("algorithm.rewards is empty: name at least one reward function")
        weights = self.reward_weights
        if weights and len(weights) != len(self.rewards):
            raise ConfigError(
                f"algorithm.reward_weights has {len(weights)} values for "
                f"{len(self.rewards)} algorithm.rewards: give one weight per reward"
            )


# ---------------------------------------------------------------------------------- experiment
@dataclass
class SuccessMetric:
    name: str = free_text("")  # metric that ranks arms, e.g. eval/addition/exact_match
    # max: higher is better | min: lower is better | null: min for a loss, perplexity or
    # forgetting metric, max otherwise (evsys.metric_kinds.metric_mode); the plan says which
    mode: str | None = one_of(None, allowed.METRIC_MODES)
    min_effect: float = at_least(0.0, 0)  # smallest difference that counts as a real effect
    # a level each arm should reach: at least this (max) or at most this (min); decided per arm,
    # one-sided over seeds x items and Holm-adjusted; a single run's verdict answers it
    # (docs/statistics.md); null: arms are only compared with each other
    threshold: float | None = None
    # pool the seed variance over arms that ran the same seeds (docs/statistics.md): null
    # (auto) pools for "one arm beats every other arm" claims only; true / false: always / never
    pool_seeds: bool | None = None


@dataclass
class ContinualStage:
    dataset_name: str = MISSING  # this stage's training set (and one of the benchmarks)
    transforms: list[Any] = field(default_factory=list)  # this stage's data.transforms
    # this stage's optimizer steps; None: algorithm.max_steps
    max_steps: int | None = above(None, 0)
    name: str | None = free_text(None)  # label in stage dirs, tables and plots; None: dataset_name


@dataclass
class ContinualConfig:
    # null: an ordinary job. A list: train stage by stage, each from the last one's weights,
    # ignoring the job's own data.dataset_name/transforms (see docs/continual.md).
    datasets: list[ContinualStage] | None = None
    # Experience replay: this share of every stage's training mix (after the first) is drawn
    # from the earlier stages' datasets, equally; 0 trains each stage on its own data only.
    replay: float = within(0.0, 0, 1)


@dataclass
class StoresConfig:
    outputs_root: str = "${oc.env:EVSYS_OUTPUTS_ROOT,outputs}"  # experiments, registry, sweeps


@dataclass
class PredictionConfig:
    """A direction stated before the results (preregistration): `better` beats `than`."""

    better: str = free_text(MISSING)  # the arm predicted to win
    than: str = free_text("all")  # the arm it beats, or "all": every other arm


@dataclass
class ExperimentConfig:
    name: str = free_text("default")  # experiment name (sweep dir and registry)
    id: str | None = None  # set by evsys when the experiment starts; do not set by hand
    hypothesis: str = free_text("")  # the question the arms answer (literal text)
    success_metric: SuccessMetric = field(default_factory=SuccessMetric)
    n_repeats: int = at_least(1, 1)  # seeds per arm: base_seed, base_seed+1, ...
    max_jobs: int = at_least(1000, 1)  # jobs a plan may hold (arms x cells x seeds); more: refused
    base_seed: int = 0  # first seed of every arm
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm name -> dotted overrides
    baseline: str | None = free_text(None)  # arm the others are compared against
    # optional preregistered direction: the verdict then answers it (docs/statistics.md)
    prediction: PredictionConfig | None = None
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)  # seeds until decided
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)  # the winner on fresh seeds
    continual: ContinualConfig = field(default_factory=ContinualConfig)  # chain of datasets
    parent_experiment_id: str | None = None  # experiment this one follows up
    metadata: dict[str, Any] = free_text(default_factory=dict)  # free-form notes (literal)
    stores: StoresConfig = field(default_factory=StoresConfig)
    dry_run: bool = False  # print the plan and exit without training
    # Results or checkpoints of another config already in the job's dir: refuse (say which keys
    # differ), or rerun: move them aside into <dir>/.superseded/<timestamp>/ and train anew.
    on_mismatch: str = one_of("refuse", allowed.ON_MISMATCH)


# ----------------------------------------------------------------------------------- run config
@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    algorithm: Any = MISSING  # an AlgorithmConfig subclass chosen by algorithm.kind
    backend: BackendConfig = field(default_factory=BackendConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # TensorBoard, and MLflow or W&B
    seed: int = 0  # seeds model init and dropout, and data order unless data.order_seed
    tags: list[str] = free_text(default_factory=list)  # free labels recorded with the arm
    arm: str = free_text("default")  # this job's arm name (set by the experiment sweeper)
    log_every_n_steps: int = at_least(10, 1)  # scalars logged to TensorBoard every this many steps
    # refresh checkpoints/last.ckpt this often (for resume)
    checkpoint_every_n_steps: int = at_least(100, 1)


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "backend": BackendConfig,
    "data": DataConfig,
    "eval": EvalConfig,
    "validation": ValidationConfig,
    "experiment": ExperimentConfig,
    "logger": LoggerConfig,
}
