"""Supervised fine-tuning: next-token cross entropy on completion tokens, prompts masked."""

from __future__ import annotations

import torch

from evsys.lightning.base import PostTrainingModule


class SFTModule(PostTrainingModule):
    """SFT: the loss of every completion token (and EOS) given everything before it."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, count = self.masked_mean_loss(batch)
        self.log("train/loss", loss, batch_size=count, prog_bar=True, on_step=True, on_epoch=False)
        self.log_lr()
        return loss
