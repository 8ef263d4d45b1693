"""Tests and trains a small brick model with Lightning on N CPU processes; run by test_distributed.py.

    python ddp_job.py PATH_EXPERIMENTS NAME DEVICES [NUM_SAMPLES [LOADERS]]

Lightning's DDP launcher starts the other processes by running this script again. Global rank 0 writes the
test metrics of the untrained model (`metrics_test.json`) and, after training, `metrics_validation.json` and
`world_size.json` into PATH_EXPERIMENTS/NAME. LOADERS says how the samples are served: `plain` (DataLoaders
that Lightning gives its DistributedSampler), `unpadded` (the evaluation loaders built with
`UnpaddedDistributedSampler` before the processes start) or `datamodule` (a torchbricks `SplitDataModule`).
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from torchbricks import BrickCollection, BrickLoss, BrickMetrics, BrickTrainable
from torchbricks.lightning import LightningBrickCollection
from torchbricks.lightning.datamodules import NamedTensorDataset
from torchbricks.lightning.samplers import UnpaddedDistributedSampler
from torchbricks.lightning.split_datamodule import SplitDataModule

NUM_SAMPLES = 96  # divisible by 2 processes x batch size 8: DistributedSampler neither pads nor drops
NUM_CLASSES = 4


class TensorSplits(SplitDataModule):
    """The same samples as every split, served by the torchbricks loaders."""

    def __init__(self, data: NamedTensorDataset) -> None:
        super().__init__(batch_size=8, num_workers=0)
        self.data = data

    def create_datasets(self) -> dict[str, NamedTensorDataset]:
        return {"train": self.data, "validation": self.data, "test": self.data}


def main(path_experiments: Path, name: str, devices: int, num_samples: int = NUM_SAMPLES, loaders: str = "plain") -> None:
    torch.manual_seed(0)
    collection = BrickCollection(
        {
            "classify": BrickTrainable(nn.Linear(6, NUM_CLASSES), input_names=["raw"], output_names=["logits"]),
            "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
            "metrics": BrickMetrics(
                {
                    "accuracy": MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro"),
                    "confusion_matrix": MulticlassConfusionMatrix(num_classes=NUM_CLASSES),
                },
                input_names=["logits", "targets"],
            ),
        }
    )
    data = NamedTensorDataset(raw=torch.randn(num_samples, 6), targets=torch.randint(0, NUM_CLASSES, (num_samples,)))
    train_loader = DataLoader(data, batch_size=8)
    sampler = UnpaddedDistributedSampler(data) if loaders == "unpadded" else None
    loader = DataLoader(data, batch_size=8, sampler=sampler)
    module = LightningBrickCollection(path_experiments, name, collection, partial(torch.optim.SGD, lr=0.1))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=1,
        limit_train_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    if loaders == "datamodule":
        splits = TensorSplits(data)
        trainer.test(module, datamodule=splits)
        trainer.fit(module, datamodule=splits)
    else:
        trainer.test(module, loader)
        trainer.fit(module, train_loader, loader)
    if trainer.is_global_zero:
        (module.path_experiment / "world_size.json").write_text(json.dumps(trainer.world_size))


if __name__ == "__main__":
    path, job_name, job_devices, *options = sys.argv[1:]
    main(Path(path), job_name, int(job_devices), int(options[0]) if options else NUM_SAMPLES, *options[1:])
