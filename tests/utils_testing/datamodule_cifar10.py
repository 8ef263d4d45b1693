"""A CIFAR-10 stand-in for the spec's Lightning example: generated 32x32 RGB images, nothing downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from torchbricks.lightning.datamodules import GeneratedImageClassificationDataModule

__all__ = ["CIFAR10DataModule"]


class CIFAR10DataModule(GeneratedImageClassificationDataModule):
    """CIFAR-10 shaped data (10 classes, 32x32 RGB PIL images through the transforms), generated in memory.

    Args:
        data_dir: Accepted for the spec's signature; nothing is read or written there.
        batch_size: Samples per batch.
        num_workers: Loader processes, capped to leave a core to training (the data is in memory).
        test_transforms: Applied to validation and test images.
        train_transforms: Applied to train images.
    """

    def __init__(
        self,
        data_dir: Path | str,
        batch_size: int,
        num_workers: int,
        test_transforms: Callable[[Image.Image], Any] | None,
        train_transforms: Callable[[Image.Image], Any] | None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            num_samples=4 * batch_size,
            image_size=(32, 32),
            num_classes=10,
            train_transforms=train_transforms,
            test_transforms=test_transforms,
        )
        self.data_dir = Path(data_dir)
