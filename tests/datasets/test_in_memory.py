"""The data sets held in memory."""

from __future__ import annotations

import pytest
import torch

from torchbricks.datasets.in_memory import GeneratedImageDataset, NamedTensorDataset, check_split_fractions, read_digits_splits
from torchbricks.errors import BrickError


def test_named_tensor_dataset_needs_equal_lengths() -> None:
    with pytest.raises(BrickError, match=r"equal lengths, got lengths \{'raw': 3, 'targets': 2\}"):
        NamedTensorDataset(raw=torch.zeros(3), targets=torch.zeros(2))


def test_the_digits_splits_are_stratified_and_fixed_by_the_seed() -> None:
    first, again, other = (read_digits_splits(0.1, 0.2, seed) for seed in (0, 0, 1))

    assert {name: len(split) for name, split in first.items()} == {"train": 1257, "validation": 180, "test": 360}
    assert torch.equal(first["test"].tensors["raw"], again["test"].tensors["raw"])
    assert not torch.equal(first["test"].tensors["raw"], other["test"].tensors["raw"])
    assert torch.bincount(first["test"].tensors["targets"]).min() >= 35


@pytest.mark.parametrize(("validation", "test"), [(0.0, 0.2), (0.5, 0.5), (0.2, -0.1)])
def test_held_out_fractions_must_be_positive_and_leave_training_data(validation: float, test: float) -> None:
    with pytest.raises(BrickError, match="must be positive and sum to less than 1"):
        check_split_fractions(validation, test)


def test_generated_images_are_fixed_by_the_seed_and_coloured_by_their_class() -> None:
    first, again = (
        GeneratedImageDataset(8, (6, 6), num_classes=2, seed=3),
        GeneratedImageDataset(8, (6, 6), num_classes=2, seed=3),
    )

    assert all(torch.equal(first[index][0], again[index][0]) for index in range(8))
    means = {label: [] for label in (0, 1)}
    for image, label in (first[index] for index in range(8)):
        means[label].append(image.mean(dim=(1, 2)))
    for images in means.values():  # one colour per class, up to the noise
        assert all(torch.allclose(mean, images[0], atol=0.1) for mean in images)
