"""Stop training at the first non-finite loss or gradient norm (evsys.errors.Diverged).

A run whose loss went nan (algorithm.lr=inf, an overflow) would otherwise train on to
max_steps, score 0 everywhere and be ranked as if 0 were a real result. Raised from a callback,
the error ends Lightning's fit loop; the arm records it as status `diverged` (evsys/run/arm.py).
"""

from __future__ import annotations

import math

import lightning as L
import torch

from evsys.errors import Diverged


class StopOnDivergence(L.Callback):
    """Raise Diverged when the loss (before backward) or the gradient norm (before the
    optimizer step) is nan or inf. The gradient is not checked under 16-mixed precision, whose
    loss scaler skips steps with inf gradients on purpose, nor when it is sharded (FSDP); the
    loss is checked always. Every rank raises together (one rank's nan is everyone's stop)."""

    def __init__(self) -> None:
        self._step = 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step = trainer.global_step + 1  # the optimizer step this batch belongs to

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self._check(trainer, "loss", float(loss.detach().float()))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if str(trainer.precision) == "16-mixed" or _is_sharded(pl_module):
            return
        self._check(trainer, "gradient norm", _gradient_norm(pl_module))

    def _check(self, trainer, quantity: str, value: float) -> None:
        bad = not math.isfinite(value)
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            raise Diverged(quantity, self._step, value)


def _gradient_norm(module: torch.nn.Module) -> float:
    """The global L2 norm of the gradients, as Lightning's clipping computes it."""
    norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def _is_sharded(module: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())
