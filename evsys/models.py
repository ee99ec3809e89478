"""Tokenizer and model: from a hub id, a local directory, or built fresh from a config; LoRA.

Where the weights come from, first match wins:
  model.init_from  a previous export (plain or LoRA adapter), or `parent`: the best arm's export
                   of experiment.parent_experiment_id (see evsys/init_from.py)
  model.name       a hub id or a local directory saved with `save_pretrained`
  otherwise        a fresh model of model.arch, randomly initialised from the seed
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen3Config,
)
from transformers.utils import is_flash_attn_2_available

from evsys.config import TOKENIZER_SOURCES, ModelConfig
from evsys.confine import inside_sweep
from evsys.data.degenerate import check_round_trip, check_tokenizer_dir
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import ConfigError
from evsys.flex_attention import use_padded_flex_attention
from evsys.records import readable_by_group

log = logging.getLogger(__name__)

# model.arch -> its transformers config (the allowed names: evsys.config.ARCHITECTURES)
ARCH_CONFIGS = {"qwen3": Qwen3Config, "llama": LlamaConfig}
ADAPTER_CONFIG = "adapter_config.json"  # what marks a directory as a peft adapter export
BASE_DIR = "base"  # adapter exports keep an in-memory-only base model here


# ------------------------------------------------------------------------------------ tokenizer
def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    key, source = _tokenizer_source(cfg)
    if source is None:
        return byte_tokenizer()
    path = _existing_or_hub(source, key)
    if not cfg.trust_remote_code:  # remote code may keep its vocabulary in files of its own
        check_tokenizer_dir(Path(path), f"{key}={source!r}")
    with _naming_key_on_failure(key, source):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    check_round_trip(tokenizer, f"{key}={source!r}")
    if tokenizer.eos_token is None:
        raise ConfigError(f"{key}={source!r}: the tokenizer has no eos token to end completions")
    if tokenizer.pad_token is None:
        # Padding only needs some id; labels mask it out, so eos is a safe stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tokenizer_source(cfg: ModelConfig) -> tuple[str, str | None]:
    return _first_set(cfg, TOKENIZER_SOURCES)


def _first_set(cfg: ModelConfig, keys: tuple[str, ...]) -> tuple[str, str | None]:
    """(config key, value) of the first key that is set, so errors name the right key."""
    for key in keys:
        if getattr(cfg, key) is not None:
            return f"model.{key}", getattr(cfg, key)
    return f"model.{keys[0]}", None


@contextlib.contextmanager
def _naming_key_on_failure(key: str, source: str) -> Iterator[None]:
    """Loading errors (offline hub, not a model directory) say which config key asked."""
    try:
        yield
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}={source!r} could not be loaded: {error}") from error


# ---------------------------------------------------------------------------------------- model
def load_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The model to train: pretrained weights when named, else a fresh one from the config."""
    key, source = _first_set(cfg, ("init_from", "name"))
    _check_attn_implementation(cfg)
    if cfg.attn_implementation == "flex_attention":
        use_padded_flex_attention()  # a torch CPU kernel bug (evsys/flex_attention.py)
    if source is None:
        config = _fresh_config(cfg, tokenizer)
        model = AutoModelForCausalLM.from_config(
            config, attn_implementation=cfg.attn_implementation
        )
    else:
        path = _existing_or_hub(source, key)
        with _naming_key_on_failure(key, source):
            model = _from_pretrained(path, cfg)
    if cfg.gradient_checkpointing:
        # Non-reentrant: works with frozen inputs (LoRA) and with the chunked loss's checkpoints.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.r > 0:
        model = _add_lora(model, cfg)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()  # the frozen embeddings' output must carry grads
    # from_pretrained hands back eval mode, and Lightning keeps each module's mode as it finds
    # it: without this, dropout (LoRA's included) would silently stay off during training.
    return model.train()


def _from_pretrained(source: str, cfg: ModelConfig) -> PreTrainedModel:
    if (Path(source) / ADAPTER_CONFIG).is_file():
        return _merged_adapter(Path(source), cfg)
    return AutoModelForCausalLM.from_pretrained(
        source,
        trust_remote_code=cfg.trust_remote_code,
        dtype=torch.float32,
        attn_implementation=cfg.attn_implementation,
    )


def _merged_adapter(adapter_dir: Path, cfg: ModelConfig) -> PreTrainedModel:
    """A LoRA adapter export as one plain model: its base with the adapter folded in."""
    from peft import PeftConfig, PeftModel

    # The copy saved beside the adapter wins: it moves with the export, an absolute path may not.
    base = adapter_dir / BASE_DIR
    if not base.is_dir():
        base = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    model = PeftModel.from_pretrained(_from_pretrained(str(base), cfg), str(adapter_dir))
    # Loading for inference froze every weight; the merged model trains like any other.
    model = model.merge_and_unload().requires_grad_(True)
    # These weights exist only in memory now; an adapter trained on them must save them.
    model.name_or_path = ""
    return model


def _check_attn_implementation(cfg: ModelConfig) -> None:
    """What the machine lacks (the name itself is checked with the config: evsys/rules.py)."""
    if cfg.attn_implementation == "flash_attention_2" and not is_flash_attn_2_available():
        raise ConfigError(
            "model.attn_implementation=flash_attention_2 needs a CUDA GPU and the flash-attn "
            "package; use sdpa or flex_attention here"
        )


def _fresh_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase):
    return ARCH_CONFIGS[cfg.arch](
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.hidden_size // cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )


def _existing_or_hub(source: str, key: str) -> str:
    """Local paths must exist; anything that looks like a path but does not is a typo.

    Existing paths come back absolute, so a LoRA adapter export that points at its base
    still finds it from another working directory.
    """
    path = Path(source).expanduser()
    if path.exists():
        return str(path.resolve())
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ConfigError(f"{key}={source!r}: no such directory")
    return source


# ----------------------------------------------------------------------------------------- LoRA
def _add_lora(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    """Wrap in peft LoRA: the base is frozen, so the optimizer only sees the adapters."""
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, peft_config)
    except ValueError as error:  # peft's message for target modules the model does not have
        raise ConfigError(
            f"model.lora.target_modules={list(lora.target_modules)}: {error}"
        ) from None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "LoRA r=%d on %s: %s trainable parameters", lora.r, lora.target_modules, f"{trainable:,}"
    )
    return model


# --------------------------------------------------------------------------------------- export
def export_model(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path, lora_export: str
) -> Path:
    """Save in Hugging Face format (safetensors + tokenizer) into out_dir.

    A LoRA model is exported per `lora_export`: `merged` folds the adapters into the weights
    (plain transformers loads it), `adapter` saves the adapters for peft. Merging, and saving
    an in-memory base, take the peft wrapper apart: export is the last thing done with a model.

    Written into `.<out_dir name>.partial` beside it and renamed into place, so out_dir holds a
    whole export or none (a run killed mid-export, a full disk); what fails is an OSError
    naming out_dir (safetensors' own error names no file).
    """
    from safetensors import SafetensorError

    out_dir = Path(out_dir)
    # A model/ linked to a folder elsewhere would have it written over and chmod-ed.
    inside_sweep(out_dir, out_dir.parent, "the model export dir", root_name="its run dir")
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    try:
        _remove(partial)  # left by an export that was killed
        partial.mkdir(parents=True)
        _save(model, tokenizer, partial, out_dir, lora_export)
        readable_by_group(partial)
        _remove(out_dir)  # an earlier export of the same run (a re-run re-exports it)
        partial.rename(out_dir)
    except (OSError, SafetensorError) as error:
        with contextlib.suppress(OSError):
            _remove(partial)
        raise OSError(f"cannot export the model to {out_dir}: {error}") from error
    return out_dir


def _save(model, tokenizer, into: Path, out_dir: Path, lora_export: str) -> None:
    """The export's files into `into`, which is renamed to `out_dir` once they are all there."""
    if hasattr(model, "peft_config") and lora_export == "adapter":
        _save_adapter(model, tokenizer, into, out_dir)
    else:
        if hasattr(model, "peft_config"):
            model = model.merge_and_unload()
        model.save_pretrained(into, safe_serialization=True)
    tokenizer.save_pretrained(into)


def _remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a dir tree, if there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _save_adapter(model, tokenizer: PreTrainedTokenizerBase, into: Path, out_dir: Path) -> None:
    """The adapter, plus its base under out_dir/base when the base is nowhere on disk.

    A fresh (random-init) base or a merged parent adapter exists only in memory: without a
    saved copy the adapter could never be applied again.
    """
    lora = model.peft_config["default"]
    base_in_memory = not lora.base_model_name_or_path
    if base_in_memory:  # where the base will be once the export is renamed into place
        lora.base_model_name_or_path = str((out_dir / BASE_DIR).resolve())
    model.save_pretrained(into, safe_serialization=True)
    if base_in_memory:
        model.unload().save_pretrained(into / BASE_DIR, safe_serialization=True)
        tokenizer.save_pretrained(into / BASE_DIR)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def planned_parameters(cfg: ModelConfig) -> int | None:
    """The parameters of the model `cfg` trains, counted on the meta device: no weights are
    loaded and nothing is downloaded. None when its config is not on this machine (a hub
    model not cached, `parent`, an adapter export)."""
    _, source = _first_set(cfg, ("init_from", "name"))
    try:
        if source is None:
            config = _fresh_config(cfg, load_tokenizer(cfg))
        else:
            config = AutoConfig.from_pretrained(
                source, trust_remote_code=cfg.trust_remote_code, local_files_only=True
            )
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(
                config, trust_remote_code=cfg.trust_remote_code
            )
    except (OSError, ValueError, ConfigError):
        return None
    return count_parameters(model)
