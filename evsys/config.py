"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each group file under conf/ starts from its schema (`defaults: [/schema/<group>/<name>@_here_]`),
so Hydra type-checks values and rejects unknown keys while composing. `validate_run_config`
checks the composed config once more against the schemas, which also catches keys that Hydra
lets through with `+key=value`.

Every field has a type, a default and one line of help (the comment beside it).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value or key is wrong; the message names the full key."""


# --------------------------------------------------------------------------------------- model
@dataclass
class LoraConfig:
    r: int = 0  # LoRA rank; 0 trains all weights
    alpha: int = 16  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.0  # dropout on the LoRA input
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )  # module names that get adapters
    export: str = "merged"  # merged: plain weights | adapter: peft files (+ model/base/ if fresh)


@dataclass
class ModelConfig:
    name: str | None = None  # hub id or local directory; None builds a fresh model from arch below
    arch: str = "qwen3"  # architecture when building from a config: qwen3 | llama
    hidden_size: int = 128  # width of the residual stream
    num_layers: int = 4  # decoder blocks
    num_heads: int = 4  # attention heads
    num_kv_heads: int = 2  # key/value heads (grouped-query attention)
    intermediate_size: int = 384  # MLP width
    max_position_embeddings: int = 512  # longest sequence the model supports
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
    attn_implementation: str = "sdpa"  # sdpa | eager | flex_attention | flash_attention_2


# ----------------------------------------------------------------------------------- algorithm
@dataclass
class AlgorithmConfig:
    """Fields every algorithm shares; each algorithm module subclasses it."""

    kind: str = MISSING  # which algorithm: the module evsys/lightning/<kind>.py
    lr: float = 3e-3  # peak learning rate of AdamW
    max_steps: int = 180  # optimizer steps
    batch_size: int = 16  # rows per micro-batch (packed rows when data.packing)
    accumulate_grad_batches: int = 1  # micro-batches per optimizer step
    warmup_steps: int = 20  # linear warm-up from 0 to lr
    schedule: str = "cosine"  # decay after warm-up: cosine | linear | constant
    min_lr_ratio: float = 0.1  # final lr as a fraction of lr (cosine/linear)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 disables


# ------------------------------------------------------------------------------------- backend
@dataclass
class BackendConfig:
    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # devices per node (int, or "auto")
    num_nodes: int = 1  # nodes for multi-node training
    strategy: str = "auto"  # Lightning strategy: auto | ddp | fsdp | ...
    precision: str = "32-true"  # Lightning precision: 32-true | bf16-mixed | 16-mixed | bf16-true
    num_threads: int | None = None  # torch CPU threads; None keeps torch's default
    compile: bool = False  # torch.compile the model's decoder blocks (first steps compile)


# ---------------------------------------------------------------------------------------- data
@dataclass
class DataColumns:
    """The source's column for each column evsys reads; None: a column of that very name."""

    prompt: str | None = None  # e.g. question
    completion: str | None = None  # e.g. response
    answer: str | None = None  # prompt_answer data; None: "answer", else "reference"
    messages: str | None = None  # chat data: a list of {role, content}
    text: str | None = None  # plain text data, trained on every token
    chosen: str | None = None  # preference data: the preferred answer
    rejected: str | None = None  # preference data: the dispreferred answer


@dataclass
class DatasetConfig:
    """One dataset: where it comes from, how it is read, and its own transforms."""

    dataset_name: str = "reversal"  # a built-in task, a local file/folder, or a hub id
    config_name: str | None = None  # hub datasets: the configuration (subset), if any
    format: str = "auto"  # auto | prompt_completion | prompt_answer | chat | text | preference
    columns: DataColumns = field(default_factory=DataColumns)  # source column names
    train_split: str = "train"  # local and hub datasets: the split trained on
    eval_split: str | None = None  # None: "validation" or "test" if present, else held out
    eval_fraction: float = 0.1  # share of train held out (seeded by data.seed) if no eval split
    transforms: list[Any] = field(default_factory=list)  # ordered steps, see docs/data.md
    num_train: int = 20000  # built-in tasks: training examples generated
    num_eval: int = 256  # built-in tasks: held-out examples generated
    seed: int = 0  # seed of the data itself (the run's `seed` drives init and order)


@dataclass
class MixtureComponent(DatasetConfig):
    """One weighted dataset of `data.mixture`; its fields default as data.* fields do."""

    dataset_name: str = MISSING  # this component's dataset (task, local path or hub id)
    weight: float = 1.0  # sampling proportion of the training mix (normalised over components)
    seed: int | None = None  # None: data.seed


@dataclass
class DataConfig(DatasetConfig):
    # Weighted datasets trained together; when set, they replace dataset_name and the fields
    # above (docs/data.md#mixtures). None: the one dataset above.
    mixture: list[MixtureComponent] | None = None
    max_length: int = 128  # tokens per row: packed row length, and truncation limit
    packing: bool = True  # pack several examples into each training row
    packing_window: int = 4096  # examples packed together, best fit longest first (docs/scale.md)
    num_workers: int = 0  # DataLoader worker processes
    cache: bool = True  # reuse loaded and tokenized data across runs (docs/data.md#caching)
    cache_dir: str | None = None  # None: $EVSYS_CACHE_DIR, else ~/.cache/evsys/data
    num_proc: int | None = None  # tokenization processes; None: all cores for >= 20k examples


# ---------------------------------------------------------------------------------------- eval
@dataclass
class HarnessConfig:
    """Settings of every `harness:<task>` benchmark (lm-evaluation-harness, docs/evaluation.md)."""

    include_path: str | None = None  # folder of local lm-eval task YAMLs, added to its own tasks
    num_fewshot: int | None = None  # few-shot examples per prompt; None: each task's default
    limit: int | None = None  # examples scored per task; None: all (the standard number)
    batch_size: int = 8  # requests per forward pass


@dataclass
class EvalConfig:
    # names scored after training: a built-in task, the training dataset, harness:<task>
    # (lm-evaluation-harness) or class:<module.Class> (your own Benchmark subclass)
    benchmarks: list[Any] = field(default_factory=list)
    batch_size: int = 64  # prompts per generation batch
    max_examples: int = 256  # held-out examples scored per benchmark
    max_new_tokens: int = 32  # generation budget per answer
    harness: HarnessConfig = field(default_factory=HarnessConfig)  # harness:<task> settings


@dataclass
class ValidationConfig:
    enabled: bool = True  # compute val/loss during training
    every_n_steps: int = 50  # validate every this many optimizer steps
    num_batches: int = 4  # validation batches per check
    benchmarks_every_n_steps: int = 0  # also score benchmarks this often in training; 0: never
    benchmarks: list[str] | None = None  # which ones then; None: all of eval.benchmarks


# ---------------------------------------------------------------------------------- experiment
@dataclass
class SuccessMetric:
    name: str = ""  # metric that ranks arms, e.g. eval/addition/exact_match
    mode: str = "max"  # max: higher is better | min: lower is better
    min_effect: float = 0.0  # smallest difference that counts as a real effect


@dataclass
class ContinualStage:
    dataset_name: str = MISSING  # this stage's training set (and one of the benchmarks)
    transforms: list[Any] = field(default_factory=list)  # this stage's data.transforms
    max_steps: int | None = None  # this stage's optimizer steps; None: algorithm.max_steps
    name: str | None = None  # label in stage dirs, tables and plots; None: dataset_name


@dataclass
class ContinualConfig:
    # null: an ordinary job. A list: train stage by stage, each from the last one's weights,
    # ignoring the job's own data.dataset_name/transforms (see docs/continual.md).
    datasets: list[ContinualStage] | None = None
    # Experience replay: this share of every stage's training mix (after the first) is drawn
    # from the earlier stages' datasets, equally; 0 trains each stage on its own data only.
    replay: float = 0.0


@dataclass
class StoresConfig:
    outputs_root: str = "outputs"  # experiments, registry and sweeps live under here


@dataclass
class ExperimentConfig:
    name: str = "default"  # experiment name (sweep dir and registry)
    id: str | None = None  # set by evsys when the experiment starts; do not set by hand
    hypothesis: str = ""  # the question the arms answer
    success_metric: SuccessMetric = field(default_factory=SuccessMetric)
    n_repeats: int = 1  # seeds per arm: base_seed, base_seed+1, ...
    base_seed: int = 0  # first seed of every arm
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm name -> dotted overrides
    baseline: str | None = None  # arm the others are compared against
    continual: ContinualConfig = field(default_factory=ContinualConfig)  # chain of datasets
    parent_experiment_id: str | None = None  # experiment this one follows up
    metadata: dict[str, Any] = field(default_factory=dict)  # free-form notes
    stores: StoresConfig = field(default_factory=StoresConfig)
    dry_run: bool = False  # print the plan and exit without training


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
    seed: int = 0  # seeds model init, data order and dropout
    tags: list[str] = field(default_factory=list)  # free labels recorded with the arm
    arm: str = "default"  # this job's arm name (set by the experiment sweeper)
    log_every_n_steps: int = 10  # scalars logged to TensorBoard every this many steps
    checkpoint_every_n_steps: int = 100  # refresh checkpoints/last.ckpt this often (for resume)


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "backend": BackendConfig,
    "data": DataConfig,
    "eval": EvalConfig,
    "validation": ValidationConfig,
    "experiment": ExperimentConfig,
}


def algorithm_kinds() -> dict[str, type]:
    """Every algorithm module under evsys/lightning with its config class, by kind."""
    import evsys.lightning as package

    kinds = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"evsys.lightning.{info.name}")
        config_class = getattr(module, "CONFIG", None)
        if config_class is not None:
            kinds[info.name] = config_class
    return kinds


def algorithm_schema(kind: str) -> type:
    kinds = algorithm_kinds()
    if kind not in kinds:
        raise ConfigError(
            f"algorithm.kind={kind!r} is not a known algorithm; choose one of {sorted(kinds)}"
        )
    return kinds[kind]


def register_schemas() -> None:
    """Store schemas under schema/<group>/, where they are not user-facing options."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", group="schema", node=RunConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(name="base", group=f"schema/{group}", node=schema)
    for kind, schema in algorithm_kinds().items():
        cs.store(name=kind, group="schema/algorithm", node=schema)


def validate_run_config(cfg: DictConfig) -> DictConfig:
    """The config merged into its schemas, or a ConfigError naming the offending key."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    kind = (container.get("algorithm") or {}).get("kind")
    if not kind:
        raise ConfigError("algorithm.kind is missing; choose an algorithm, e.g. algorithm=sft")
    _prepare_continual(container)
    schema = OmegaConf.structured(RunConfig)
    schema.algorithm = OmegaConf.structured(algorithm_schema(kind))
    try:
        merged = OmegaConf.merge(schema, container)
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(_describe(error, schema)) from None
    # Building the dataclass runs its __post_init__: an algorithm checks its values there.
    OmegaConf.to_object(merged.algorithm)
    check_continual(merged)
    check_benchmarks(merged)
    return merged


def check_benchmarks(cfg: DictConfig) -> None:
    """harness:<task> and class:<module.Class> benchmarks resolve, and validation scores a
    subset of them; raises ConfigError naming the key, so a sweep fails before any job."""
    from evsys.evaluation.benchmarks import check_benchmark_kinds, harness_settings

    names = [str(name) for name in cfg.eval.benchmarks]
    during = cfg.validation.benchmarks
    if during is not None and (unknown := [str(n) for n in during if str(n) not in names]):
        raise ConfigError(
            f"validation.benchmarks: {unknown} are not in eval.benchmarks {names}; "
            "list the ones to score during training out of those"
        )
    if cfg.validation.benchmarks_every_n_steps < 0:
        raise ConfigError("validation.benchmarks_every_n_steps must be >= 0 (0: never)")
    check_benchmark_kinds(names, harness_settings(cfg))


# ----------------------------------------------------------------------------------- continual
CONTINUAL_KEY = "experiment.continual.datasets"
STAGE_NAME = re.compile(r"[\w.+=-]+")  # stage names become directory names


def _prepare_continual(container: dict) -> None:
    """Check each stage against its schema (so errors name the stage), and make the first
    stage's dataset the job's data.dataset_name, which a continual job otherwise ignores:
    interpolations such as the default eval.benchmarks then name a dataset of the chain."""
    stages = ((container.get("experiment") or {}).get("continual") or {}).get("datasets")
    if not isinstance(stages, list):
        return
    for index, stage in enumerate(stages):
        try:
            OmegaConf.merge(OmegaConf.structured(ContinualStage), stage)
        except (OmegaConfBaseException, ValueError) as error:
            key = getattr(error, "full_key", None) or ""
            detail = (getattr(error, "msg", None) or str(error)).splitlines()[0]
            where = f"{CONTINUAL_KEY}[{index}]" + (f".{key}" if key else "")
            raise ConfigError(f"Invalid config: {where}: {detail}.") from None
    if stages and isinstance(stages[0], dict) and stages[0].get("dataset_name"):
        container.setdefault("data", {})["dataset_name"] = stages[0]["dataset_name"]


def check_continual(cfg: DictConfig) -> None:
    """A continual job's stages make sense; raises ConfigError naming the stage otherwise."""
    stages = cfg.experiment.continual.datasets
    if stages is None:
        return
    if len(stages) == 0:
        raise ConfigError(
            f"{CONTINUAL_KEY} is empty: list at least one stage, or leave it null (the default) "
            "for an ordinary run"
        )
    if cfg.data.mixture is not None:
        raise ConfigError(
            f"{CONTINUAL_KEY} and data.mixture cannot be combined yet: each stage trains on one "
            "dataset; leave data.mixture null"
        )
    for index, stage in enumerate(stages):
        where = f"{CONTINUAL_KEY}[{index}]"
        if OmegaConf.is_missing(stage, "dataset_name") or not stage.dataset_name:
            raise ConfigError(f"{where}.dataset_name is missing: name the stage's dataset")
        if stage.max_steps is not None and stage.max_steps <= 0:
            raise ConfigError(f"{where}.max_steps={stage.max_steps} must be positive (or null)")
        if stage.name is not None and not STAGE_NAME.fullmatch(stage.name):
            raise ConfigError(
                f"{where}.name={stage.name!r}: use letters, digits and . _ + = - only "
                "(it names the stage's directory)"
            )
    replay = cfg.experiment.continual.replay
    if not 0.0 <= replay < 1.0:
        raise ConfigError(
            f"experiment.continual.replay={replay} must be in [0, 1): the share of each stage's "
            "training mix drawn from earlier stages"
        )
    if cfg.backend.num_nodes != 1 or str(cfg.backend.devices) != "1":
        raise ConfigError(
            f"{CONTINUAL_KEY}: continual jobs run in one process for now; set backend.devices=1 "
            f"and backend.num_nodes=1 (got {cfg.backend.devices} x {cfg.backend.num_nodes})"
        )


# Names people carry over from other trainers, mapped to ours for "did you mean" hints.
KEY_ALIASES = {
    "learning_rate": "lr",
    "steps": "max_steps",
    "num_steps": "max_steps",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "accumulate_grad_batches",
    "max_grad_norm": "grad_clip",
    "warmup": "warmup_steps",
    "dataset": "dataset_name",
    "max_seq_length": "max_length",
}


def _closest_key(typed: str, keys: list[str]) -> str | None:
    aliases = {alias: key for alias, key in KEY_ALIASES.items() if key in keys}
    close = difflib.get_close_matches(typed, keys + list(aliases), n=1, cutoff=0.7)
    return aliases.get(close[0], close[0]) if close else None


def override_hint(message: str, cfg: DictConfig) -> str:
    """A "did you mean" for Hydra's "Could not override 'a.b'" when `b` is a typo of a key of `a`.

    Hydra's own advice for an unknown key is to append it with `+`, which for a typo is wrong.
    """
    match = re.search(r"Could not override '([^']+)'", message)
    if not match:
        return ""
    parent_key, _, leaf = match.group(1).rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf in parent:
        return ""
    suggestion = _closest_key(leaf, [str(k) for k in parent.keys()])
    prefix = f"{parent_key}." if parent_key else ""
    known = f"'{prefix}{suggestion}'" if suggestion else f"one of {sorted(map(str, parent))}"
    return f"'{match.group(1)}' is not a config key. Did you mean {known}?"


def _describe(error: OmegaConfBaseException, schema: DictConfig) -> str:
    """One readable sentence naming the full key, with a suggestion for typos."""
    full_key = getattr(error, "full_key", None) or "?"
    message = getattr(error, "msg", None) or str(error)
    parent_key, _, leaf = full_key.rpartition(".")
    hint = ""
    parent = OmegaConf.select(schema, parent_key) if parent_key else schema
    if isinstance(parent, DictConfig) and leaf not in parent:
        suggestion = _closest_key(leaf, [str(k) for k in parent.keys()])
        prefix = f"{parent_key}." if parent_key else ""
        hint = f" Did you mean '{prefix}{suggestion}'?" if suggestion else ""
        message = f"'{full_key}' is not a valid key ({message.splitlines()[0]})"
    else:
        message = f"bad value for '{full_key}': {message.splitlines()[0]}"
    return f"Invalid config: {message}.{hint}"
