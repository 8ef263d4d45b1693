from __future__ import annotations

import pytest
import torch
import torchvision

from torchbricks.errors import BrickError
from torchbricks.lightning.datamodules import (
    DigitsDataModule,
    GeneratedImageClassificationDataModule,
)


def test_digits_are_split_in_three_stratified_parts_of_named_batches() -> None:
    data = DigitsDataModule(batch_size=32)
    data.setup()

    sizes = {name: len(dataset) for name, dataset in data.datasets.items()}
    batch = next(iter(data.train_dataloader()))

    assert sizes == {"train": 1257, "validation": 180, "test": 360}
    assert sorted(batch) == ["raw", "targets"]
    assert batch["raw"].shape == (32, 1, 8, 8)
    assert float(batch["raw"].min()) >= 0.0
    assert float(batch["raw"].max()) <= 1.0
    assert torch.bincount(data.datasets["test"].tensors["targets"]).min() >= 35  # stratified: every digit is tested


def test_digits_split_is_fixed_by_the_seed() -> None:
    first, second = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    first.setup()
    second.setup()

    assert torch.equal(first.datasets["test"].tensors["raw"], second.datasets["test"].tensors["raw"])


def test_digits_fractions_must_leave_training_data() -> None:
    with pytest.raises(BrickError, match="sum to less than 1"):
        DigitsDataModule(validation_fraction=0.5, test_fraction=0.5)


def test_generated_images_go_through_the_transforms_as_pil_images() -> None:
    data = GeneratedImageClassificationDataModule(batch_size=4, num_samples=8, test_transforms=torchvision.transforms.ToTensor())

    images, labels = next(iter(data.test_dataloader()))
    raw_images, _ = next(iter(data.train_dataloader()))

    assert images.shape == (4, 3, 32, 32)
    assert images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert raw_images.shape == (4, 3, 32, 32)
