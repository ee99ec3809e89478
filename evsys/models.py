"""Tokenizer and model: from a hub id, a local directory, or built fresh from a config; LoRA."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen3Config,
)

from evsys.config import ConfigError, ModelConfig
from evsys.data.tokenizer import byte_tokenizer

log = logging.getLogger(__name__)

ARCHITECTURES = {"qwen3": Qwen3Config, "llama": LlamaConfig}


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    source = cfg.tokenizer or cfg.init_from or cfg.name
    if source is None:
        return byte_tokenizer()
    tokenizer = AutoTokenizer.from_pretrained(
        _existing_or_hub(source, "model.tokenizer"), trust_remote_code=cfg.trust_remote_code
    )
    if tokenizer.pad_token is None:
        # Padding only needs some id; labels mask it out, so eos is a safe stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The model to train: pretrained weights when named, else a fresh one from the config."""
    source = cfg.init_from or cfg.name
    if source is not None:
        model = AutoModelForCausalLM.from_pretrained(
            _existing_or_hub(source, "model.name"),
            trust_remote_code=cfg.trust_remote_code,
            dtype=torch.float32,
        )
    else:
        model = AutoModelForCausalLM.from_config(_fresh_config(cfg, tokenizer))
    if cfg.lora.r > 0:
        model = _add_lora(model, cfg)
    return model


def _fresh_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase):
    if cfg.arch not in ARCHITECTURES:
        raise ConfigError(
            f"model.arch={cfg.arch!r} is not supported; choose one of {sorted(ARCHITECTURES)}"
        )
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(
            f"model.hidden_size={cfg.hidden_size} must be divisible by "
            f"model.num_heads={cfg.num_heads}"
        )
    return ARCHITECTURES[cfg.arch](
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.hidden_size // cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )


def _existing_or_hub(source: str, key: str) -> str:
    """Local paths must exist; anything that looks like a path but does not is a typo."""
    path = Path(source).expanduser()
    if path.exists():
        return str(path)
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ConfigError(f"{key}={source!r}: no such directory")
    return source


def _add_lora(model: PreTrainedModel, cfg: ModelConfig) -> PreTrainedModel:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def export_model(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path, lora_export: str
) -> Path:
    """Save in Hugging Face format (safetensors + tokenizer), loadable by plain transformers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config") and lora_export == "merged":
        model = model.merge_and_unload()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
