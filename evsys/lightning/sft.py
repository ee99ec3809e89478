"""Supervised fine-tuning: next-token cross entropy on completion tokens, prompts masked."""

from __future__ import annotations

import torch

from evsys.lightning.base import PostTrainingModule


class SFTModule(PostTrainingModule):
    """SFT: the loss of every completion token (and EOS) given everything before it."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, mean, count = self.global_mean_loss(batch)  # the whole global batch's mean
        self.log("train/loss", mean, batch_size=count, prog_bar=True, on_step=True, on_epoch=False)
        self.log_lr()
        return loss
