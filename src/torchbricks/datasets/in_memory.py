"""Data sets held in memory: named tensors, generated images, and scikit-learn's handwritten digits in three splits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from torchbricks._extras import require
from torchbricks.errors import BrickError

__all__ = ["GeneratedImageDataset", "NamedTensorDataset", "check_split_fractions", "read_digits_splits"]


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


def check_split_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Checks that the held-out fractions are positive and leave training data.

    Raises:
        BrickError: They do not.
    """
    if not (validation_fraction > 0 and test_fraction > 0 and validation_fraction + test_fraction < 1):
        raise BrickError(
            "validation_fraction and test_fraction must be positive and sum to less than 1, "
            f"got {validation_fraction} and {test_fraction}."
        )


def read_digits_splits(validation_fraction: float, test_fraction: float, seed: int) -> dict[str, NamedTensorDataset]:
    """scikit-learn's 1797 handwritten digits (8x8, no download) in stratified `train`, `validation` and `test` splits
    fixed by `seed`: `raw` images [N, 1, 8, 8] in [0, 1] and `targets` digits [N] (int64).

    Raises:
        BrickError: The fractions are not positive or leave no training data.
    """
    check_split_fractions(validation_fraction, test_fraction)
    datasets = require("sklearn.datasets", "train")
    model_selection = require("sklearn.model_selection", "train")
    digits = datasets.load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    targets = torch.as_tensor(digits.target, dtype=torch.int64)
    indices = np.arange(len(targets))
    held_out = validation_fraction + test_fraction
    train, rest = model_selection.train_test_split(indices, test_size=held_out, stratify=digits.target, random_state=seed)
    validation, test = model_selection.train_test_split(
        rest, test_size=test_fraction / held_out, stratify=digits.target[rest], random_state=seed
    )
    splits = {"train": train, "validation": validation, "test": test}
    return {
        name: NamedTensorDataset(raw=images[torch.as_tensor(split)], targets=targets[torch.as_tensor(split)])
        for name, split in splits.items()
    }
