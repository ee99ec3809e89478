"""The frozen reference model: the starting policy that KL penalties and log-ratios compare to."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch


class ReferenceModel:
    """The policy as it was when training started, frozen, callable like the model.

    Under LoRA the reference is the policy itself with its adapters switched off (peft's
    `disable_adapter`), which costs no memory. Otherwise it is a frozen copy made at
    construction, i.e. before a checkpoint is restored, so a resumed run keeps the true start.

    Deliberately not a torch Module: as a plain attribute of a LightningModule it is not a
    submodule, so it is left out of checkpoints and of the optimizer; it follows the policy's
    device on each call instead.
    """

    def __init__(self, policy: torch.nn.Module) -> None:
        self.policy = policy
        self.uses_adapters = hasattr(policy, "disable_adapter")  # a peft model
        self.copy = None
        if not self.uses_adapters:
            self.copy = copy.deepcopy(policy).eval().requires_grad_(False)

    @contextlib.contextmanager
    def active(self) -> Iterator[torch.nn.Module]:
        """The reference as a plain module, under no_grad: the frozen copy on the policy's
        device, or the policy itself in eval mode with its adapters off until the block ends."""
        with torch.no_grad():
            if self.copy is not None:
                yield self.copy.to(next(self.policy.parameters()).device)
                return
            was_training = self.policy.training
            self.policy.eval()  # no (LoRA) dropout in the reference
            try:
                with self.policy.disable_adapter():
                    yield self.policy
            finally:
                self.policy.train(was_training)

    def __call__(self, **inputs):
        with self.active() as model:
            return model(**inputs)
