"""Trains a two-head model on 2 CPU processes with the main job's stateful parts, or resumes it; run by
test_distributed.py.

    python ddp_resume_job.py OUT_FOLDER MAX_EPOCHS [CHECKPOINT]

The stateful parts: learned uncertainty weights, a moving average of the weights (`ExponentialMovingAverage`), a
learning rate schedule, early stopping (`BudgetEarlyStopping`) whose patience runs out at epoch 3, where
`finish_without_augmentations` turns the training augmentation off, and again at epoch 5, where it stops. Each
epoch's `last.ckpt` is written to OUT_FOLDER/checkpoints. Each process writes `rank<r>.pt`: what those parts hold
when the fit ends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from ddp_balancing_job import dataset, two_heads
from torch.utils.data import DataLoader, Dataset

from torchbricks.datasets.transforms import AugmentationSwitch
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.callbacks import BudgetEarlyStopping, EpochSeed, ExponentialMovingAverage
from torchbricks.loss_balancing import UncertaintyWeighting


class Shifted(Dataset):
    """The samples, shifted by 0.5 while the switch is on (the training augmentation)."""

    def __init__(self, switch: AugmentationSwitch) -> None:
        self.data = dataset()
        self.switch = switch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.data[index])
        if self.switch.on:
            sample["raw"] = sample["raw"] + 0.5
        return sample


class SwitchedData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.augmentation_switch = AugmentationSwitch()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Shifted(self.augmentation_switch), batch_size=4, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(dataset(), batch_size=4)


def optimizers(parameters: list[torch.nn.Parameter]) -> dict[str, Any]:
    optimizer = torch.optim.SGD(parameters, lr=0.5)
    return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)}


def main(out: Path, max_epochs: int, checkpoint: str | None) -> None:
    torch.manual_seed(0)
    collection = two_heads()
    balancer = UncertaintyWeighting(collection.loss_names())
    module = LightningBrickCollection(out, "run", collection, optimizers, loss_balancer=balancer, write_files=False)
    average = ExponentialMovingAverage(0.9)
    # min_delta: no epoch after the first improves, so the patience of 2 runs out at epochs 3 and 5.
    stopping = BudgetEarlyStopping(
        finish_without_augmentations=True, monitor="validation/loss", mode="min", patience=2, min_delta=100.0
    )
    last = pl.callbacks.ModelCheckpoint(
        dirpath=out / "checkpoints", filename="last", monitor=None, save_on_train_epoch_end=True, enable_version_counter=False
    )
    data = SwitchedData()
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        devices=2,
        strategy="ddp",
        accelerator="cpu",
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[average, EpochSeed(0), stopping, last],
    )
    trainer.fit(module, datamodule=data, ckpt_path=checkpoint)
    assert average._average_model is not None
    result = {
        "state_dict": {name: value.detach().clone() for name, value in module.state_dict().items()},
        "average": {name: value.detach().clone() for name, value in average._average_model.module.state_dict().items()},
        "lr": trainer.optimizers[0].param_groups[0]["lr"],
        "epochs": trainer.current_epoch,
        "early_stopping": {
            "wait_count": stopping.wait_count,
            "stopped_epoch": stopping.stopped_epoch,
            "best_score": float(stopping.best_score),
            "augmentations_off_epoch": stopping.augmentations_off_epoch,
        },
        "augmentations_on": data.augmentation_switch.on,
        "logged": {name: float(value) for name, value in trainer.callback_metrics.items()},
    }
    torch.save(result, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
