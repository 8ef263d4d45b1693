from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from torchbricks.datasets.transforms import AugmentationSwitch, collate_padded, create_transform, image_size_pair
from torchbricks.errors import BrickError


def test_collate_pads_box_lists_with_minus_one_labels_and_zero_boxes() -> None:
    samples = [
        {"raw": torch.zeros(3, 4, 4), "boxes": torch.ones(2, 4), "labels": torch.tensor([0, 1])},
        {"raw": torch.ones(3, 4, 4), "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]

    batch = collate_padded(samples)

    assert batch["raw"].shape == (2, 3, 4, 4)
    assert batch["labels"].tolist() == [[0, 1], [-1, -1]]
    assert batch["boxes"][1].abs().sum() == 0
    assert torch.equal(batch["boxes"][0], torch.ones(2, 4))


def test_the_transform_keeps_boxes_and_masks_on_the_object() -> None:
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    mask = torch.zeros(40, 60, dtype=torch.int64)
    image[:, 10:20, 6:26] = 255
    mask[10:20, 6:26] = 1
    sample = {
        "image": tv_tensors.Image(image),
        "mask": tv_tensors.Mask(mask),
        "boxes": tv_tensors.BoundingBoxes(torch.tensor([[6.0, 10, 26, 20]]), format="XYXY", canvas_size=(40, 60)),
        "labels": torch.tensor([1]),
    }
    transform = create_transform([20, 30], [v2.RandomHorizontalFlip(p=1.0)], boxes=True)

    out = transform(sample)

    ys, xs = torch.nonzero(out["mask"] == 1, as_tuple=True)
    from_mask = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert out["boxes"].tolist() == [from_mask]  # the resized, flipped box bounds the resized, flipped mask
    assert from_mask == [17, 5, 27, 10]
    assert out["image"].dtype == torch.float32
    assert out["image"][0, 7, 20].item() == 1.0


def test_boxes_pushed_out_of_the_image_are_dropped_with_their_labels() -> None:
    sample = {
        "image": tv_tensors.Image(torch.zeros(3, 20, 20, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0, 4, 4], [10, 10, 18, 18]]), format="XYXY", canvas_size=(20, 20)),
        "labels": torch.tensor([0, 1]),
    }
    transform = create_transform(20, [v2.CenterCrop(10)], boxes=True)  # keeps pixels 5 to 15: the first box goes

    out = transform(sample)

    assert out["labels"].tolist() == [1]


def test_a_class_mask_with_as_many_rows_as_boxes_keeps_every_row_when_a_box_is_dropped() -> None:
    # torchvision's SanitizeBoundingBoxes takes a Mask whose first dimension equals the number of boxes for one mask
    # per box: a 4 x 4 class mask of a sample with 4 boxes, one dropped, came out 3 x 4
    mask = torch.arange(16, dtype=torch.uint8).reshape(4, 4)
    sample = {
        "image": tv_tensors.Image(torch.zeros(3, 4, 4, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor([[0.0, 0, 2, 2], [1, 1, 1, 3], [2, 2, 4, 4], [0, 2, 2, 4]]), format="XYXY", canvas_size=(4, 4)
        ),
        "labels": torch.tensor([0, 1, 2, 3]),
        "mask": tv_tensors.Mask(mask),
    }

    out = create_transform(4, [v2.RandomHorizontalFlip(p=0.0)], boxes=True)(sample)

    assert out["labels"].tolist() == [0, 2, 3]  # the box without width is dropped with its label
    assert isinstance(out["mask"], tv_tensors.Mask)
    assert torch.equal(out["mask"], mask)
    assert list(out) == list(sample)


def test_image_size_must_be_positive() -> None:
    assert image_size_pair([32]) == (32, 32)
    with pytest.raises(BrickError, match="image_size"):
        image_size_pair(0)


class _Invert:
    """An augmentation whose effect is plain to see: the image upside down in value."""

    def __call__(self, sample: dict) -> dict:
        return {**sample, "image": tv_tensors.Image(255 - sample["image"])}


class _Samples(torch.utils.data.Dataset):
    def __init__(self, transform: object) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform({"image": tv_tensors.Image(torch.zeros(3, 4, 4, dtype=torch.uint8))})["image"]


def test_an_augmentation_switch_turned_off_skips_the_augmentations_and_only_them() -> None:
    switch = AugmentationSwitch()
    transform = create_transform(4, [_Invert()], switch=switch)
    black = {"image": tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))}

    assert transform(black)["image"].min().item() == 1.0
    switch.turn_off()
    off = transform(black)["image"]
    assert (off.shape, off.dtype, off.max().item()) == ((3, 4, 4), torch.float32, 0.0)  # still resized and scaled
    switch.turn_on()
    assert transform(black)["image"].min().item() == 1.0


class _Brighten:
    """A last-phase augmentation told apart from `_Invert`: a black image turns grey, not white."""

    def __call__(self, sample: dict) -> dict:
        return {**sample, "image": tv_tensors.Image(sample["image"] + 100)}


def test_once_the_switch_is_off_the_last_phase_augmentations_replace_the_augmentations() -> None:
    switch = AugmentationSwitch()
    transform = create_transform(4, [_Invert()], switch=switch, last_phase_augmentations=[_Brighten()])
    black = {"image": tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))}

    assert transform(black)["image"].unique().tolist() == [1.0]
    switch.turn_off()
    assert transform(black)["image"].unique().tolist() == [pytest.approx(100 / 255)]
    assert transform.has_last_phase_augmentations
    assert not create_transform(4, [_Invert()], switch=AugmentationSwitch()).has_last_phase_augmentations


def test_last_phase_augmentations_without_a_switch_or_that_are_not_transforms_are_refused() -> None:
    with pytest.raises(BrickError, match="need a switch"):
        create_transform(4, [_Invert()], last_phase_augmentations=[_Brighten()])
    with pytest.raises(BrickError, match=r"must be a transform.*'flip'"):
        create_transform(4, [_Invert()], switch=AugmentationSwitch(), last_phase_augmentations=["flip"])


@pytest.mark.parametrize("start", ["fork", "spawn"])  # spawn: the default on macOS and Windows
def test_an_augmentation_switch_reaches_loader_processes_that_are_already_running(start: str) -> None:
    switch = AugmentationSwitch()
    loader = torch.utils.data.DataLoader(
        _Samples(create_transform(4, [_Invert()], switch=switch)),
        batch_size=2,
        num_workers=1,
        persistent_workers=True,
        multiprocessing_context=start,
    )
    first = next(iter(loader))
    switch.turn_off()  # between epochs, as early stopping does it
    second = next(iter(loader))

    assert first.min().item() == 1.0
    assert second.max().item() == 0.0


@pytest.mark.parametrize(("side", "size", "first", "last"), [(400, 100, 101, 301), (400, (57, 80), 37, 260), (90, 24, 10, 77)])
def test_a_resized_mask_lies_on_its_resized_image(side: int, size: int | tuple[int, int], first: int, last: int) -> None:
    # torchvision's nearest took each pixel's top-left source pixel: shrunk 4 times, the mask lay 1.5 pixels of the
    # original up and left of its image, and a model learned to predict masks so shifted
    mask = torch.zeros(side, side, dtype=torch.int64)
    mask[first:last, first + 3 : last - 5] = 1
    image = (mask * 255).to(torch.uint8).expand(3, side, side).clone()

    sample = create_transform(size)({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask)})

    shown = sample["image"][0]  # the share of each output pixel the object covers: the image's antialiased resize
    clear = (shown - 0.5).abs() > 0.25  # pixels the border does not split about evenly (nor corners cut)
    assert clear.float().mean() > 0.9
    assert torch.equal((sample["mask"] == 1)[clear], (shown > 0.5)[clear])


def test_an_evaluation_transform_with_augmentations_is_refused() -> None:
    with pytest.raises(BrickError, match="evaluation=True"):
        create_transform(8, [v2.RandomHorizontalFlip()], boxes=True, evaluation=True)
