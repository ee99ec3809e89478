"""What every algorithm shares: the policy model, AdamW with its schedule, masked token losses."""

from __future__ import annotations

import logging
from functools import partial

import lightning as L
import torch

from evsys.config import AlgorithmConfig
from evsys.data.packing import (
    collate_packed,
    collate_padded,
    flatten_packed,
    pack_examples,
    packing_fill,
)
from evsys.data.tokenize import TokenRows, tokenize_rows
from evsys.lightning.schedule import lr_multiplier
from evsys.lightning.sharding import is_sharded, run_as_forward, shard_model
from evsys.ops.chunked_logps import labelled_positions, shifted_logps, summed_nll

log = logging.getLogger(__name__)


class PostTrainingModule(L.LightningModule):
    """Base LightningModule; an algorithm subclasses it and writes `training_step`.

    The data side of an algorithm lives here too, as class methods the data module calls
    before any model exists: `build_rows` turns loaded examples into rows, `collate` turns rows
    into a batch. The defaults are SFT's (prompt masked, packed training rows); an algorithm
    that trains on other rows (preference pairs, prompts to sample from) overrides them.
    """

    # The data format every example must have (see evsys/data/formats.py), passed to
    # `load_split`; None takes any format SFT reads. DPO sets "preference".
    example_format: str | None = None

    @classmethod
    def build_rows(cls, examples: list[dict], tokenizer, cfg, split: str) -> list[dict]:
        """Rows for `split` ("train" or "eval") from the examples `load_split` returned."""
        data = cfg.data
        rows = tokenize_rows(examples, tokenizer, data.max_length, data.num_proc)
        if split == "train" and data.packing:
            return pack_examples(rows, data.max_length, data.packing_window, data.packing_strategy)
        return rows

    @classmethod
    def collate(cls, rows: list[dict], tokenizer, cfg, split: str) -> dict:
        """One batch of `split` rows as tensors."""
        if split == "train" and cfg.data.packing:
            batch = collate_packed(rows, tokenizer.pad_token_id)
            if cfg.model.attn_implementation == "flash_attention_2":
                return flatten_packed(batch)  # never attends across examples, see packing.py
            return batch
        return collate_padded(rows, tokenizer.pad_token_id)

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        algorithm: AlgorithmConfig,
        seed: int = 0,
        *,
        compile_decoder: bool = False,
        max_length: int | None = None,
    ) -> None:
        """`seed`: the run's seed; `compile_decoder`: backend.compile; `max_length`:
        data.max_length, the width of packed rows. Values, not the run's config: the module
        reads nothing from the data module's or the trainer's config."""
        super().__init__()
        self.seed = seed  # the run's seed: algorithms that sample derive their streams from it
        self.model = model
        self.tokenizer = tokenizer
        self.algorithm = algorithm
        self.compile_decoder = compile_decoder
        self.max_length = max_length
        self._compiled = False

    def token_losses(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token cross entropy of predicting token t+1 at t, and the mask of counted tokens.

        From the hidden states in chunks, only at counted tokens (evsys/ops/chunked_logps.py):
        the full-vocabulary logits never exist. Uncounted positions hold 0.
        """
        logps, mask = run_as_forward(
            self.model,
            shifted_logps,
            self.model,
            batch["input_ids"],
            batch.get("attention_mask"),
            batch["position_ids"],
            batch["labels"],
        )
        return -logps, mask

    def masked_mean_loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        """Mean cross entropy over the counted tokens, and their count (see `token_losses`)."""
        summed, count = run_as_forward(self.model, self._summed_loss, batch)
        return summed / max(count, 1), count

    def _summed_loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        hidden, targets, _ = labelled_positions(
            self.model,
            batch["input_ids"],
            batch.get("attention_mask"),
            batch["position_ids"],
            batch["labels"],
        )
        return summed_nll(hidden, self.model.get_output_embeddings(), targets), len(targets)

    def global_mean_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(the loss to backpropagate, the mean over every process's counted tokens, their
        count): one process's `masked_mean_loss`; with several data-parallel processes, each
        one's summed loss is divided by the count of all of them (times their number, since
        their gradients are averaged), so the step equals one process taking the whole global
        batch, whatever share of its tokens each process holds."""
        summed, count = run_as_forward(self.model, self._summed_loss, batch)
        world = self.trainer.world_size if self._trainer is not None else 1
        if world == 1:
            loss = summed / max(count, 1)
            return loss, loss.detach(), count
        totals = torch.stack([summed.detach().float(), summed.new_tensor(float(count))])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        total_count = int(totals[1].item())
        scale = world / max(total_count, 1)
        return summed * scale, totals[0] / max(total_count, 1), total_count

    def configure_model(self) -> None:
        """backend=fsdp: shard the model (evsys/lightning/sharding.py). backend.compile:
        compile the decoder in place (the chunked loss stays eager).

        In place (`Module.compile`), so parameter names, checkpoints and peft are unchanged;
        dynamic shapes, since packed batches vary in width."""
        if self._device_mesh is not None and not is_sharded(self.model):
            shard_model(self.model, self._device_mesh["data_parallel"])
        if self.compile_decoder and not self._compiled:
            self.model.get_decoder().compile(dynamic=True)
            self._compiled = True

    def on_train_start(self) -> None:
        """Log how full the packed training rows are (train/packing_fill), once per run."""
        data = getattr(self.trainer, "datamodule", None)
        rows = getattr(data, "train_rows", None)
        if not isinstance(rows, TokenRows) or "position_ids" not in rows.columns:
            return  # not packed rows (padded examples, preference pairs, prompts)
        if self.max_length is None:
            return  # the row width is unknown: nothing to measure the fill against
        if not self.trainer.is_global_zero:
            return  # every rank packs the same rows: one says so
        fill = packing_fill(rows, self.max_length)
        log.info(
            "packed %d training rows, %.1f%% of their slots real tokens", len(rows), 100 * fill
        )
        if self.logger is not None:
            self.logger.log_metrics({"train/packing_fill": fill}, step=self.global_step)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, count = self.masked_mean_loss(batch)
        self.log("val/loss", loss, batch_size=count, prog_bar=True, sync_dist=True)

    def final_train_metrics(self) -> dict[str, float]:
        """What the record keeps of training besides the last train/loss and val/* (the
        algorithm's `recorded_curves`, evsys/config.py): none unless an algorithm adds some."""
        return {}

    def log_lr(self) -> None:
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], on_step=True, on_epoch=False)

    def _fused_adam(self) -> bool:
        """AdamW as one fused kernel (no per-tensor temporaries: less peak memory, faster),
        except under mixed precision, where Lightning's gradient clipping refuses a fused
        optimizer (it could unscale gradients inside its step)."""
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        return not precision.endswith("mixed")

    def configure_optimizers(self) -> dict:
        algorithm = self.algorithm
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        # Decay matrices only: decaying norms and biases hurts small models for no benefit.
        groups = [
            {
                "params": [p for p in trainable if p.ndim >= 2],
                "weight_decay": algorithm.weight_decay,
            },
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(
            groups, lr=algorithm.lr, betas=tuple(algorithm.betas), fused=self._fused_adam()
        )
        multiplier = partial(
            lr_multiplier,
            warmup_steps=algorithm.warmup_steps,
            max_steps=algorithm.max_steps,
            schedule=algorithm.schedule,
            min_lr_ratio=algorithm.min_lr_ratio,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
