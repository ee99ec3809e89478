"""Training rows as a seeded, step-addressable stream; held-out examples for validation loss."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from evsys.data.degenerate import check_rows
from evsys.data.prepare import cached_splits


class StepStream(IterableDataset):
    """An endless stream of micro-batches whose content depends only on (seed, position).

    Resuming at optimizer step k continues exactly where step k left off, and each DDP rank
    reads its own slice of every global batch: no sampler state to save or restore. With
    DataLoader workers, worker w of W yields batches w, w + W, ...: the DataLoader takes them
    round-robin, so the batches arrive in the same order as with no workers.
    """

    def __init__(self, rows: list[dict], batch_size: int, seed: int, collate) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.collate = collate
        self.start_batch = 0
        self.rank, self.world_size = 0, 1
        self._orders: dict[int, torch.Tensor] = {}

    def _row_at(self, position: int) -> dict:
        epoch, offset = divmod(position, len(self.rows))
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._orders = {epoch: torch.randperm(len(self.rows), generator=generator)}
        return self.rows[int(self._orders[epoch][offset])]

    def __iter__(self):
        global_batch = self.batch_size * self.world_size
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        index = self.start_batch + worker_id
        while True:
            first = index * global_batch + self.rank * self.batch_size
            rows = [self._row_at(first + i) for i in range(self.batch_size)]
            batch = self.collate(rows)
            if "num_tokens" not in batch:  # rows of other shapes count their own tokens
                batch["num_tokens"] = sum(len(row["input_ids"]) for row in rows)
            yield batch
            index += num_workers


def order_seed(cfg) -> int:
    """The seed of the training order: data.order_seed, or the run's seed when it is unset (so
    a config without it trains exactly as before the key existed)."""
    given = cfg.data.get("order_seed")
    return int(cfg.seed if given is None else given)


class PostTrainingDataModule(L.LightningDataModule):
    """Training rows and held-out rows, built and batched the way the algorithm says."""

    def __init__(self, cfg, tokenizer, algorithm_class) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.algorithm_class = algorithm_class  # its build_rows / collate shape the data
        self.train_rows: list[dict] = []
        self.eval_examples: list[dict] = []
        self.eval_raw: list[dict] = []  # untokenized, for scoring the dataset's own eval split
        self.held_out: dict[str, list[dict]] = {}  # eval examples by dataset (mixture: each)

    def prepare(self) -> None:
        """Load and tokenize now, so bad data fails before the Trainer starts."""
        data, tokenizer, build = self.cfg.data, self.tokenizer, self.algorithm_class.build_rows
        needs = self.algorithm_class.example_format
        # Lazy, cached examples (evsys/data/cache.py): a cache hit reads only what is used.
        train, self.eval_raw, self.held_out = cached_splits(data, tokenizer, needs)
        self.train_rows = build(train, tokenizer, self.cfg, "train")
        self.eval_examples = build(self.eval_raw, tokenizer, self.cfg, "eval")
        if not self.train_rows:
            raise ValueError(f"data.dataset_name={data.dataset_name!r} has no training examples")
        where = f"data.dataset_name={data.dataset_name!r} [train]"
        check_rows(self.train_rows, tokenizer.eos_token_id, where)  # before the Trainer starts

    def _collate_train(self, rows: list[dict]) -> dict:
        return self.algorithm_class.collate(rows, self.tokenizer, self.cfg, "train")

    def _collate_eval(self, rows: list[dict]) -> dict:
        return self.algorithm_class.collate(rows, self.tokenizer, self.cfg, "eval")

    def train_dataloader(self) -> DataLoader:
        batch_size = self.cfg.algorithm.batch_size
        stream = StepStream(self.train_rows, batch_size, order_seed(self.cfg), self._collate_train)
        # Called after a checkpoint is restored, so global_step is where training resumes.
        stream.start_batch = self.trainer.global_step * self.cfg.algorithm.accumulate_grad_batches
        stream.rank, stream.world_size = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(stream, batch_size=None, num_workers=self.cfg.data.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.eval_examples,
            batch_size=self.cfg.algorithm.batch_size,
            shuffle=False,
            collate_fn=self._collate_eval,
        )
