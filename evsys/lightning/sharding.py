"""backend.strategy=fsdp: FSDP2 (`fully_shard`) through Lightning's ModelParallelStrategy.

Each decoder block (the model's `_no_split_modules` classes) is its own FSDP unit; the root
unit, the causal LM itself, holds what is left: the embeddings, the final norm and the LM
head (tied or not). FSDP gathers a unit's parameters in that unit's forward. evsys's chunked
loss never calls the root's forward (it calls the decoder, then the head's weight chunk by
chunk, evsys/ops/chunked_logps.py), so the whole loss runs as a registered forward
method of the root (`run_as_forward`, FSDP's `register_fsdp_forward_method`): the root's
parameters are gathered before it and their gradients reduce-scattered after the backward,
exactly as around a `model(...)` call; the blocks gather their own inside it.

Checkpoints are sharded: `last.ckpt` is a directory of one file per rank (torch distributed
checkpoint) plus `meta.pt` (loops, schedulers, the config's identity), written into
`last.ckpt.partial` and swapped in when every rank has written, so a kill mid-save keeps
the previous one. After training, `gathered_model` assembles the full weights on rank 0 as a
plain Hugging Face model: what is scored and exported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from evsys.records import CHECKPOINT_IDENTITY

FORWARD_METHOD = "evsys_run_as_forward"  # the root's extra forward method (run_as_forward)


class ShardedStrategy(ModelParallelStrategy):
    """FSDP2 over every process (no tensor parallelism), sharded checkpoints saved atomically,
    each carrying the config's identity (records.py) as single-file checkpoints do."""

    def __init__(self, identity: dict[str, Any] | None = None) -> None:
        super().__init__(save_distributed_checkpoint=True)
        self.identity = identity

    def setup_environment(self) -> None:
        # Lightning's "auto" sizes are tensor parallel within a node: here all of it is FSDP.
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any = None
    ) -> None:
        if self.identity is not None:
            checkpoint = {**checkpoint, CHECKPOINT_IDENTITY: self.identity}
        path = Path(self.broadcast(str(filepath)))
        partial = path.with_name(f"{path.name}.partial")
        if self.global_rank == 0:
            _remove(partial)  # a save that was killed
        self.barrier()
        super().save_checkpoint(checkpoint, partial, storage_options)
        self.barrier()  # every rank's shard is on disk
        if self.global_rank == 0:
            _swap_in(partial, path)
        self.barrier()


def _swap_in(partial: Path, path: Path) -> None:
    """partial becomes path; the previous path stays as path.old until then (see
    restore_interrupted_save)."""
    old = path.with_name(f"{path.name}.old")
    _remove(old)
    if path.exists():
        os.replace(path, old)
    os.replace(partial, path)
    _remove(old)


def restore_interrupted_save(path: Path) -> None:
    """A run killed between the two renames of _swap_in has only last.ckpt.old: put it back."""
    old = path.with_name(f"{path.name}.old")
    if not path.exists() and old.exists():
        try:
            os.replace(old, path)
        except FileNotFoundError:  # another rank of the same run was first
            pass


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def shard_model(model: torch.nn.Module, mesh) -> None:
    """fully_shard each decoder block, then the root; `run_as_forward` then gathers the root."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    block_classes = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in block_classes:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    setattr(model, FORWARD_METHOD, _call)  # a plain function: FSDP's wrapper passes no self
    register_fsdp_forward_method(model, FORWARD_METHOD)


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _call(function, *args, **kwargs):
    return function(*args, **kwargs)


def run_as_forward(model: torch.nn.Module, function, *args, **kwargs):
    """function(*args, **kwargs) as if it were `model`'s forward pass: under FSDP the root's
    parameters (embeddings, final norm, LM head) are gathered for it and for its backward;
    otherwise a plain call."""
    method = getattr(model, FORWARD_METHOD, None)
    if method is None:
        return function(*args, **kwargs)
    return method(function, *args, **kwargs)


def gathered_model(
    model: torch.nn.Module, is_global_zero: bool, device: torch.device
) -> torch.nn.Module | None:
    """The full model as a plain (unsharded) Hugging Face model on rank 0, None elsewhere.

    Every rank must call it: the shards are gathered with collectives. Rank 0 holds two full
    copies in CPU memory for a moment (the gathered weights and the model they load into)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from transformers import AutoModelForCausalLM

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # only rank 0 holds it
    state = get_model_state_dict(model, options=options)
    if not is_global_zero:
        return None
    plain = AutoModelForCausalLM.from_config(model.config)
    plain.load_state_dict(state)
    plain.to(device=device, dtype=next(iter(state.values())).dtype)
    plain.generation_config = model.generation_config
    return plain.train(model.training)
