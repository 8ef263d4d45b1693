"""Data as LightningDataModules: image data in the layouts users bring (ImageFolder, image/mask folders, COCO, YOLO,
Pascal VOC; see `torchbricks.lightning.image_datamodules`), scikit-learn's handwritten digits and generated images
(no download). Each builds its datasets (`torchbricks.datasets`) in `setup`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from PIL import Image

from torchbricks.datasets.in_memory import GeneratedImageDataset, NamedTensorDataset, check_split_fractions, read_digits_splits
from torchbricks.lightning.image_datamodules import (
    CocoDataModule,
    DetectionDataModule,
    ImageFolderDataModule,
    OutlineSegmentationDataModule,
    SegmentationFolderDataModule,
)
from torchbricks.lightning.split_datamodule import SplitDataModule, cap_num_workers

__all__ = [
    "CocoDataModule",
    "DetectionDataModule",
    "DigitsDataModule",
    "GeneratedImageClassificationDataModule",
    "GeneratedImageDataset",
    "ImageFolderDataModule",
    "NamedTensorDataset",
    "OutlineSegmentationDataModule",
    "SegmentationFolderDataModule",
    "SplitDataModule",
    "cap_num_workers",
]


class DigitsDataModule(SplitDataModule):
    """scikit-learn's 1797 handwritten digits (8x8, bundled with scikit-learn, no download), split in three.

    Batches are dicts: `raw`, images [B, 1, 8, 8] in [0, 1], and `targets`, the digits [B] (int64). The split is
    stratified and fixed by `seed`.

    Args:
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers` (the data is in memory; 0 is usually fastest).
        validation_fraction: Fraction of the samples held out for validation.
        test_fraction: Fraction of the samples held out for test.
        seed: Seed of the split.
    """

    num_classes = 10
    class_names: ClassVar[list[str]] = [str(digit) for digit in range(10)]
    image_size = (8, 8)

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        check_split_fractions(validation_fraction, test_fraction)
        self.validation_fraction = validation_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def create_datasets(self) -> dict[str, Any]:
        return dict(read_digits_splits(self.validation_fraction, self.test_fraction, self.seed))


class GeneratedImageClassificationDataModule(SplitDataModule):
    """Generated RGB image classification data (`GeneratedImageDataset`) in train, validation and test splits.

    Batches are (images, labels) tuples, which `LightningBrickCollection` names `("raw", "targets")` by default.

    Args:
        batch_size: Samples per batch.
        num_workers: Loader processes, capped by `cap_num_workers`.
        num_samples: Samples per split.
        image_size: (H, W) of the images.
        num_classes: Number of classes.
        train_transforms: Applied to the PIL images of the train split.
        test_transforms: Applied to the PIL images of the validation and test splits.
        seed: Seed of the generated data; each split gets its own images.
    """

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        num_samples: int = 64,
        image_size: tuple[int, int] = (32, 32),
        num_classes: int = 10,
        train_transforms: Callable[[Image.Image], Any] | None = None,
        test_transforms: Callable[[Image.Image], Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.num_classes = num_classes
        self.num_samples = num_samples
        self.image_size = image_size
        self.transforms = {"train": train_transforms, "validation": test_transforms, "test": test_transforms}
        self.seed = seed

    def create_datasets(self) -> dict[str, Any]:
        return {
            split: GeneratedImageDataset(self.num_samples, self.image_size, self.num_classes, transform, seed=self.seed + offset)
            for offset, (split, transform) in enumerate(self.transforms.items())
        }
