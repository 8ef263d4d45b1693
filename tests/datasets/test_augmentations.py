from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision import tv_tensors
from torchvision.transforms import v2

from torchbricks.datasets.augmentations import (
    BoxesFromOutlines,
    Outlines,
    RandomRightAngleRotation,
    RandomRotationTightBoxes,
    rotate_boxes_right_angle,
)
from torchbricks.datasets.boxes import BoxDataset, BoxImage, BoxObject, outline_points
from torchbricks.datasets.transforms import create_transform
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


def _triangle_sample(size: int = 48) -> dict[str, object]:
    """A filled triangle in image and mask, its COCO-style outline and its tight box."""
    outline = [(10.0, 12.0), (36.0, 16.0), (18.0, 38.0)]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(outline, fill=1)
    mask = torch.from_numpy(np.asarray(canvas).copy())
    return {
        "image": tv_tensors.Image((mask * 200).expand(3, size, size).to(torch.uint8).clone()),
        "mask": tv_tensors.Mask(mask),
        "boxes": tv_tensors.BoundingBoxes([[10, 12, 36, 38]], format="XYXY", canvas_size=(size, size)),
        "labels": torch.tensor([1]),
        "outlines": Outlines.from_points(torch.tensor([outline]), (size, size)),
    }


@pytest.mark.parametrize("angle", [30.0, -75.0, 135.0])
def test_a_turn_by_any_angle_keeps_the_box_tight_around_the_turned_outline(angle: float) -> None:
    transform = v2.Compose([RandomRotationTightBoxes(degrees=(abs(angle))), BoxesFromOutlines()])
    transform.transforms[0].make_params = lambda flat_inputs: {"angle": angle, "turns": 0}

    sample = transform(_triangle_sample())

    assert "outlines" not in sample
    tight = _tight_box(sample["mask"])  # the turned mask, resampled to whole pixels
    assert sample["boxes"].tolist()[0] == pytest.approx(tight, abs=2.0)  # Pillow fills the pixels the outline crosses
    loose = v2.RandomRotation(degrees=(angle, angle))(_triangle_sample())["boxes"].tolist()[0]
    loose_area = (loose[2] - loose[0]) * (loose[3] - loose[1])
    box = sample["boxes"].tolist()[0]
    assert (box[2] - box[0]) * (box[3] - box[1]) < 0.85 * loose_area  # torchvision's turned box is larger


def test_without_outlines_boxes_are_turned_by_right_angles_only() -> None:
    torch.manual_seed(0)
    transform = RandomRotationTightBoxes()
    sample = _sample(24, 24)
    with_boxes = [transform.make_params([sample["image"], sample["boxes"]]) for _ in range(100)]
    image_only = [transform.make_params([sample["image"]]) for _ in range(100)]

    assert {params["angle"] for params in with_boxes} == {0.0}
    assert {params["turns"] for params in with_boxes} == {1, 2, 3}
    assert len({params["angle"] for params in image_only}) == 100
    assert max(abs(params["angle"]) for params in image_only) <= 180
    pipeline = v2.Compose([RandomRotationTightBoxes()])
    for _ in range(10):
        turned = pipeline(_sample(24, 24))
        assert turned["boxes"].tolist() == [_tight_box(turned["mask"])]


def test_outlines_follow_right_angle_turns_and_flips_as_the_boxes_do() -> None:
    pipeline = v2.Compose([RandomRightAngleRotation(), v2.RandomHorizontalFlip()])
    for seed in range(12):
        torch.manual_seed(seed)
        from_boxes = pipeline(_triangle_sample())
        torch.manual_seed(seed)
        from_outlines = BoxesFromOutlines()(pipeline(_triangle_sample()))
        torch.testing.assert_close(
            from_outlines["boxes"].as_subclass(torch.Tensor), from_boxes["boxes"].as_subclass(torch.Tensor).float()
        )
        assert tuple(from_outlines["boxes"].canvas_size) == tuple(from_boxes["boxes"].canvas_size)


def test_the_box_readers_give_outlines_only_to_a_pipeline_that_uses_them_and_only_for_polygons(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    Image.new("RGB", (40, 30)).save(path)
    polygons = [BoxObject((5, 5, 15, 25), 0, [[5, 5, 15, 5, 10, 25]]), BoxObject((20, 2, 30, 12), 1, [[20, 2, 30, 12]])]
    box_only = [*polygons, BoxObject((1, 1, 4, 4), 1)]  # YOLO and VOC objects, RLE masks: no polygon
    transform = create_transform((30, 40), [RandomRotationTightBoxes()], boxes=True)
    plain = BoxDataset([BoxImage(path, 40, 30, polygons)], ["a", "b"], transform=create_transform((30, 40), boxes=True))
    tight = BoxDataset([BoxImage(path, 40, 30, polygons), BoxImage(path, 40, 30, box_only)], ["a", "b"], transform=transform)

    assert "outlines" not in plain.load_sample(0)
    outlines = tight.load_sample(0)["outlines"]
    assert isinstance(outlines, Outlines)
    vertices = [[5, 5], [15, 5], [10, 25], [20, 2], [30, 12], [20, 2]]  # the second outline repeats its first vertex
    assert outlines.tolist() == [[x, y, x, y] for x, y in vertices]
    assert "outlines" not in tight.load_sample(1)  # turned by right angles: its box-only object keeps a tight box
    assert set(tight[0]) == {"raw", "target_boxes", "target_labels"}
    assert outline_points([]).shape == (0, 1, 1, 2)
    with pytest.raises(BrickError, match=r"object of class 1 at \(1, 1, 4, 4\) has no polygon"):
        outline_points(box_only)


def test_no_objects_and_objects_turned_out_of_the_image_leave_no_boxes() -> None:
    empty = {
        "image": tv_tensors.Image(torch.zeros(3, 16, 16, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(16, 16)),
        "labels": torch.zeros(0, dtype=torch.int64),
        "outlines": Outlines.from_points(torch.zeros(0, 3, 2), (16, 16)),
    }
    assert BoxesFromOutlines()(empty)["boxes"].shape == (0, 4)
    corner = _triangle_sample()
    corner["outlines"] = Outlines.from_points(torch.tensor([[[-9.0, -9.0], [-2.0, -3.0], [-5.0, -1.0]]]), (48, 48))
    sanitized = v2.SanitizeBoundingBoxes()(BoxesFromOutlines()(corner))
    assert sanitized["boxes"].shape == (0, 4)
    assert sanitized["labels"].tolist() == []


def _clipped_polygon_box(polygon: list[tuple[float, float]], width: float, height: float) -> list[float] | None:
    """The reference: the polygon cut to the image by Sutherland-Hodgman, and the box of what is left."""
    edges = [
        (lambda x, y: x >= 0, lambda p, q: p[0] / (p[0] - q[0])),
        (lambda x, y: x <= width, lambda p, q: (p[0] - width) / (p[0] - q[0])),
        (lambda x, y: y >= 0, lambda p, q: p[1] / (p[1] - q[1])),
        (lambda x, y: y <= height, lambda p, q: (p[1] - height) / (p[1] - q[1])),
    ]
    points = list(polygon)
    for inside, fraction in edges:
        kept: list[tuple[float, float]] = []
        for index, current in enumerate(points):
            previous = points[index - 1]
            if inside(*current) != inside(*previous):
                t = fraction(previous, current)
                kept.append((previous[0] + t * (current[0] - previous[0]), previous[1] + t * (current[1] - previous[1])))
            if inside(*current):
                kept.append(current)
        points = kept
    if not points:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def _turned(points: list[tuple[float, float]], angle: float, size: int) -> list[tuple[float, float]]:
    """The points turned counter-clockwise on the screen about the image's centre, as torchvision turns boxes."""
    radians, centre = np.deg2rad(angle), size / 2
    cos, sin = np.cos(radians), np.sin(radians)
    return [
        (centre + (x - centre) * cos + (y - centre) * sin, centre - (x - centre) * sin + (y - centre) * cos) for x, y in points
    ]


@pytest.mark.parametrize("angle", [45.0, -45.0, 40.0, 60.0])
def test_an_object_turned_partly_out_of_the_image_gets_the_box_of_what_shows(angle: float) -> None:
    size = 96
    square = [(0.0, 0.0), (20.0, 0.0), (20.0, 20.0), (0.0, 20.0)]  # in the corner: a turn moves most of it out
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(square, fill=1)
    mask = torch.from_numpy(np.asarray(canvas).copy())
    sample = {
        "image": tv_tensors.Image((mask * 200).expand(3, size, size).to(torch.uint8).clone()),
        "mask": tv_tensors.Mask(mask),
        "boxes": tv_tensors.BoundingBoxes([[0, 0, 20, 20]], format="XYXY", canvas_size=(size, size)),
        "labels": torch.tensor([1]),
        "outlines": Outlines.from_points(torch.tensor([square]), (size, size)),
    }
    transform = v2.Compose([RandomRotationTightBoxes(), BoxesFromOutlines()])
    transform.transforms[0].make_params = lambda flat_inputs: {"angle": angle, "turns": 0}

    turned = transform(sample)

    expected = _clipped_polygon_box(_turned(square, angle, size), size, size)
    assert turned["boxes"].tolist()[0] == pytest.approx(expected, abs=1e-3)
    assert turned["boxes"].tolist()[0] == pytest.approx(_tight_box(turned["mask"]), abs=2.0)  # what the mask shows


def test_an_outline_out_of_the_image_adds_nothing_to_the_box_nor_does_the_gap_between_its_polygons() -> None:
    objects = [
        BoxObject((10, 10, 70, 48), 0, [[10, 10, 20, 10, 15, 20], [60, 40, 70, 40, 65, 48]]),  # two parts, one out
        BoxObject((0, 0, 5, 5), 1, [[-10, 5, 5, -10, -10, -10]]),  # nothing inside, though its box reaches in
    ]
    sample = {
        "image": tv_tensors.Image(torch.zeros(3, 50, 50, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes([[0, 0, 1, 1]] * 2, format="XYXY", canvas_size=(50, 50)),
        "labels": torch.tensor([0, 1]),
        "outlines": Outlines.from_points(outline_points(objects), (50, 50)),
    }

    sanitized = v2.SanitizeBoundingBoxes()(BoxesFromOutlines()(sample))

    assert sanitized["boxes"].tolist() == [[10.0, 10.0, 20.0, 20.0]]
    assert sanitized["labels"].tolist() == [0]


def test_outlines_and_boxes_out_of_step_and_bad_arguments_are_refused() -> None:
    sample = _triangle_sample()
    sample["outlines"] = Outlines.from_points(torch.zeros(1, 5, 2), (48, 48))
    sample["boxes"] = tv_tensors.BoundingBoxes(torch.zeros(2, 4), format="XYXY", canvas_size=(48, 48))
    with pytest.raises(BrickError, match=r"5 outline vertices for 2 boxes"):
        BoxesFromOutlines()(sample)
    sample["outlines"] = Outlines.from_points(torch.zeros(2, 3, 2), (48, 48))  # two objects' outlines, one box left
    sample["boxes"] = tv_tensors.BoundingBoxes(torch.zeros(1, 4), format="XYXY", canvas_size=(48, 48))
    with pytest.raises(BrickError, match=r"6 outline vertices for 1 boxes"):
        BoxesFromOutlines()(sample)
    with pytest.raises(BrickError, match=r"degrees must be in \[0, 180\], got 200"):
        RandomRotationTightBoxes(degrees=200)
    with pytest.raises(BrickError, match=r"p must be in \[0, 1\], got -0.1"):
        RandomRotationTightBoxes(p=-0.1)
