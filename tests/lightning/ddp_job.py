"""Tests and trains a small brick model with Lightning on N CPU processes; run by test_distributed.py.

    python ddp_job.py PATH_EXPERIMENTS NAME DEVICES

Lightning's DDP launcher starts the other processes by running this script again. Global rank 0 writes the
test metrics of the untrained model (`metrics_test.json`) and, after training, `metrics_validation.json` and
`world_size.json` into PATH_EXPERIMENTS/NAME.
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

NUM_SAMPLES = 96  # divisible by 2 processes x batch size 8: DistributedSampler neither pads nor drops
NUM_CLASSES = 4


def main(path_experiments: Path, name: str, devices: int) -> None:
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
    data = NamedTensorDataset(raw=torch.randn(NUM_SAMPLES, 6), targets=torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,)))
    loader = DataLoader(data, batch_size=8)
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
    trainer.test(module, loader)
    trainer.fit(module, loader, loader)
    if trainer.is_global_zero:
        (module.path_experiment / "world_size.json").write_text(json.dumps(trainer.world_size))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
