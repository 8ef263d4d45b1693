"""Data that needs no download: scikit-learn's handwritten digits and generated images, as LightningDataModules."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from torchbricks._extras import require
from torchbricks.errors import BrickError

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = [
    "DigitsDataModule",
    "GeneratedImageClassificationDataModule",
    "GeneratedImageDataset",
    "NamedTensorDataset",
    "cap_num_workers",
]


def cap_num_workers(num_workers: int) -> int:
    """`num_workers` capped so loader processes leave one CPU core to the training process.

    Example:
        >>> cap_num_workers(0)
        0
    """
    return max(0, min(num_workers, (os.cpu_count() or 1) - 1))


class NamedTensorDataset(Dataset[dict[str, torch.Tensor]]):
    """Tensors of equal length served as named samples; the default collate turns them into named batches.

    Example:
        >>> dataset = NamedTensorDataset(raw=torch.zeros(3, 1, 8, 8), targets=torch.tensor([0, 1, 2]))
        >>> len(dataset), sorted(dataset[1]), int(dataset[1]["targets"])
        (3, ['raw', 'targets'], 1)
    """

    def __init__(self, **tensors: torch.Tensor) -> None:
        lengths = {name: len(tensor) for name, tensor in tensors.items()}
        if not tensors or len(set(lengths.values())) != 1:
            raise BrickError(f"NamedTensorDataset needs at least one tensor and equal lengths, got lengths {lengths}.")
        self.tensors = tensors
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in self.tensors.items()}


class _SplitDataModule(pl.LightningDataModule):
    """Serves `self.datasets["train" | "validation" | "test"]`; prediction runs on the test split."""

    def __init__(self, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = cap_num_workers(num_workers)
        self.datasets: dict[str, Any] = {}

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def prepare_datasets(self) -> None:
        """Fills `self.datasets` if a subclass builds them lazily; the loaders call it first."""

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        self.prepare_datasets()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


class DigitsDataModule(_SplitDataModule):
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

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if not (validation_fraction > 0 and test_fraction > 0 and validation_fraction + test_fraction < 1):
            raise BrickError(
                "validation_fraction and test_fraction must be positive and sum to less than 1, "
                f"got {validation_fraction} and {test_fraction}."
            )
        self.validation_fraction = validation_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def setup(self, stage: str | None = None) -> None:
        self.prepare_datasets()

    def prepare_datasets(self) -> None:
        if self.datasets:
            return
        datasets = require("sklearn.datasets", "train")
        model_selection = require("sklearn.model_selection", "train")
        digits = datasets.load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        targets = torch.as_tensor(digits.target, dtype=torch.int64)
        indices = torch.arange(len(targets)).numpy()
        held_out = self.validation_fraction + self.test_fraction
        train, rest = model_selection.train_test_split(
            indices, test_size=held_out, stratify=digits.target, random_state=self.seed
        )
        validation, test = model_selection.train_test_split(
            rest, test_size=self.test_fraction / held_out, stratify=digits.target[rest], random_state=self.seed
        )
        for name, split in (("train", train), ("validation", validation), ("test", test)):
            index = torch.as_tensor(split)
            self.datasets[name] = NamedTensorDataset(raw=images[index], targets=targets[index])


class GeneratedImageDataset(Dataset[tuple[Any, int]]):
    """Random RGB images whose class sets their mean colour, served as (image, label) like torchvision's datasets.

    Images are PIL images passed through `transform` (so `torchvision.transforms.ToTensor()` works), or [3, H, W]
    float tensors in [0, 1] without one. The same `seed` gives the same images.

    Example:
        >>> image, label = GeneratedImageDataset(num_samples=4, image_size=(8, 8), num_classes=2)[0]
        >>> tuple(image.shape), label in (0, 1)
        ((3, 8, 8), True)
    """

    def __init__(
        self,
        num_samples: int,
        image_size: tuple[int, int] = (32, 32),
        num_classes: int = 10,
        transform: Callable[[Image.Image], Any] | None = None,
        seed: int = 0,
    ) -> None:
        generator = np.random.default_rng(seed)
        self.labels = generator.integers(0, num_classes, size=num_samples)
        class_colors = generator.uniform(0.2, 0.8, size=(num_classes, 1, 1, 3))
        noise = generator.normal(0.0, 0.1, size=(num_samples, *image_size, 3))
        self.images = (np.clip(class_colors[self.labels] + noise, 0.0, 1.0) * 255).astype(np.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        label = int(self.labels[index])
        if self.transform is None:
            return torch.from_numpy(self.images[index]).permute(2, 0, 1).float() / 255.0, label
        return self.transform(Image.fromarray(self.images[index])), label


class GeneratedImageClassificationDataModule(_SplitDataModule):
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
        self.datasets = {
            split: GeneratedImageDataset(num_samples, image_size, num_classes, transform, seed=seed + offset)
            for offset, (split, transform) in enumerate(
                (("train", train_transforms), ("validation", test_transforms), ("test", test_transforms))
            )
        }
