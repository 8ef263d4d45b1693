from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from torchbricks.datasets.augmentations import RandomRightAngleRotation, rotate_boxes_right_angle
from torchbricks.errors import BrickError


def _sample(height: int, width: int) -> dict[str, object]:
    """An image and mask with one filled rectangle, its tight box and a second box in CXCYWH."""
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    mask = torch.zeros(height, width, dtype=torch.uint8)
    image[:, 3:9, 5:17] = 200
    mask[3:9, 5:17] = 1
    return {
        "image": tv_tensors.Image(image),
        "mask": tv_tensors.Mask(mask),
        "boxes": tv_tensors.BoundingBoxes([[5, 3, 17, 9]], format="XYXY", canvas_size=(height, width)),
        "labels": torch.tensor([1]),
    }


def _tight_box(mask: torch.Tensor) -> list[float]:
    rows, columns = torch.nonzero(mask, as_tuple=True)
    return [columns.min().item(), rows.min().item(), columns.max().item() + 1, rows.max().item() + 1]


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turn_moves_pixels_exactly_and_keeps_the_box_tight_around_its_object(turns: int) -> None:
    sample = _sample(24, 24)
    transform = RandomRightAngleRotation()
    turned = transform.transform(sample["image"], {"turns": turns})
    mask = transform.transform(sample["mask"], {"turns": turns})
    boxes = transform.transform(sample["boxes"], {"turns": turns})

    torch.testing.assert_close(turned, torch.rot90(sample["image"], turns, dims=(-2, -1)))
    assert isinstance(turned, tv_tensors.Image)
    assert isinstance(mask, tv_tensors.Mask)
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.tolist() == [_tight_box(mask)]
    assert (turned[0] > 0).equal(mask > 0)


def test_boxes_keep_their_format_and_the_canvas_swaps_height_and_width() -> None:
    boxes = tv_tensors.BoundingBoxes([[11.0, 6.0, 12.0, 6.0]], format="CXCYWH", canvas_size=(20, 30))
    turned = RandomRightAngleRotation().transform(boxes, {"turns": 1})

    assert turned.format == tv_tensors.BoundingBoxFormat.CXCYWH
    assert tuple(turned.canvas_size) == (30, 20)
    assert turned.tolist() == [[6.0, 19.0, 6.0, 12.0]]  # (x, y) -> (y, width - x), width and height swapped
    assert rotate_boxes_right_angle(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), 4, (9, 9)).tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_all_four_turns_occur_on_square_samples_and_only_half_turns_on_others() -> None:
    torch.manual_seed(0)
    transform = RandomRightAngleRotation()
    square = {transform.make_params([_sample(24, 24)["image"]])["turns"] for _ in range(200)}
    wide = {transform.make_params([_sample(24, 40)["image"]])["turns"] for _ in range(200)}

    assert square == {1, 2, 3}
    assert wide == {2}
    assert {RandomRightAngleRotation(p=0.0).make_params([_sample(24, 24)["image"]])["turns"] for _ in range(50)} == {0}


def test_in_a_pipeline_the_labels_pass_through_and_every_box_stays_inside_the_image() -> None:
    torch.manual_seed(1)
    pipeline = v2.Compose([RandomRightAngleRotation(), v2.RandomHorizontalFlip()])
    for _ in range(20):
        sample = pipeline(_sample(24, 24))
        assert sample["labels"].tolist() == [1]
        assert sample["boxes"].tolist() == [_tight_box(sample["mask"])]


def test_a_probability_outside_0_1_is_refused() -> None:
    with pytest.raises(BrickError, match=r"RandomRightAngleRotation: p must be in \[0, 1\], got 1.5"):
        RandomRightAngleRotation(p=1.5)
