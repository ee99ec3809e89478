"""A step's checkpoint is saved only once the step's scalars are on disk: a run killed right
after a checkpoint resumes with no hole in its curves."""

from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evsys.lightning.step_checkpoint import StepCheckpoint
from evsys.run.tensorboard import run_log_dir
from evsys.run.trainer import RunLogger


class Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, True)))


class StepsOnDiskAtSave(L.Callback):
    """Reads the run's event file whenever a checkpoint is being saved."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.seen = run_dir, {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        events = EventAccumulator(str(run_log_dir(self.run_dir)))
        events.Reload()
        self.seen[trainer.global_step] = sorted(e.step for e in events.Scalars("train/loss"))


@pytest.mark.integration
def test_the_steps_scalars_are_written_before_its_checkpoint(tmp_path):
    spy = StepsOnDiskAtSave(tmp_path)
    trainer = L.Trainer(
        max_steps=6,
        logger=RunLogger(run_log_dir(tmp_path)),
        callbacks=[
            StepCheckpoint(
                dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0, every_n_train_steps=2
            ),
            spy,
        ],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Regression())
    # The checkpoint at global step g holds steps 0..g-1: all of them already in the log.
    assert spy.seen == {2: [0, 1], 4: [0, 1, 2, 3], 6: [0, 1, 2, 3, 4, 5]}
    events = EventAccumulator(str(run_log_dir(tmp_path)))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(6)), "each step written once"
