"""Training with pytorch-lightning: a LightningModule for any brick collection, data modules and the main job.

Needs the `lightning` extra: `pip install "torchbricks[lightning]"`.
"""

from __future__ import annotations

from torchbricks.lightning.datamodules import DigitsDataModule, GeneratedImageClassificationDataModule
from torchbricks.lightning.module import LightningBrickCollection, create_experiment_name

__all__ = ["DigitsDataModule", "GeneratedImageClassificationDataModule", "LightningBrickCollection", "create_experiment_name"]
