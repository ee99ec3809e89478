"""The frozen reference model: the starting policy that KL penalties and log-ratios compare to."""

from __future__ import annotations

import copy

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

    @torch.no_grad()
    def __call__(self, **inputs):
        if self.copy is not None:
            device = next(self.policy.parameters()).device
            return self.copy.to(device)(**inputs)
        was_training = self.policy.training
        self.policy.eval()  # no (LoRA) dropout in the reference
        try:
            with self.policy.disable_adapter():
                return self.policy(**inputs)
        finally:
            self.policy.train(was_training)
