"""The numpy merging of windows both `predict` backends share, against torch and torchvision as references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torchbricks._tiled_predictions import merge_windows, non_maximum_suppression, resize_bilinear, tile_pixels


@pytest.mark.parametrize(("size", "target"), [((8, 8), (20, 12)), ((24, 16), (7, 9)), ((5, 5), (5, 5)), ((1, 3), (4, 4))])
def test_resize_bilinear_is_torchs_bilinear_interpolation(size: tuple[int, int], target: tuple[int, int]) -> None:
    values = np.random.default_rng(0).random((3, *size), dtype=np.float32)

    resized = resize_bilinear(values, *target)

    expected = F.interpolate(torch.from_numpy(values)[None], size=target, mode="bilinear", align_corners=False)[0].numpy()
    assert resized.shape == (3, *target)
    np.testing.assert_allclose(resized, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("count", "side"), [(300, 80), (6000, 400)])  # 6000: more than one chunk of x-sorted boxes
def test_non_maximum_suppression_keeps_torchvisions_boxes_class_by_class(count: int, side: int) -> None:
    from torchvision.ops import batched_nms

    generator = np.random.default_rng(1)
    corners = generator.uniform(0, side, size=(count, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + generator.uniform(4, 30, size=(count, 2)).astype(np.float32)], axis=1)
    scores = (generator.permutation(count) / count).astype(np.float32)  # no ties: one order is right
    labels = generator.integers(0, 3, size=count)

    kept = non_maximum_suppression(boxes, scores, labels, 0.5)

    expected = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.5).numpy()
    assert count / 20 < len(kept) < count * 0.95  # boxes were suppressed and boxes were kept
    assert kept.tolist() == expected.tolist()


def test_a_short_window_is_padded_to_the_tile_with_black_at_the_right_and_bottom() -> None:
    image = np.full((10, 30, 3), 7, dtype=np.uint8)

    pixels = tile_pixels(image, (14, 0, 30, 10), tile=16)

    assert pixels.shape == (16, 16, 3)
    assert (pixels[:10, :16] == 7).all()
    assert not pixels[10:].any()


def test_masks_average_the_windows_probabilities_where_they_overlap() -> None:
    # Two windows of 4 over a width of 6 share columns 2 and 3: the left window is sure of class 0 (0.9), the right one
    # mildly of class 1 (0.6); the mean there (0.65 for class 0) gives class 0.
    left = np.stack([np.full((4, 4), 0.9), np.full((4, 4), 0.1)]).astype(np.float32)
    right = np.stack([np.full((4, 4), 0.4), np.full((4, 4), 0.6)]).astype(np.float32)
    parts = [((0, 0, 4, 4), {"seg/probabilities": left}), ((2, 0, 6, 4), {"seg/probabilities": right})]

    result = merge_windows({"seg": "segmentation"}, parts, 4, 6, input_size=(4, 4), tile=4)

    assert result["seg"]["mask"].tolist() == [[0, 0, 0, 0, 1, 1]] * 4
    assert result["seg"]["mask"].dtype == np.int64


@pytest.mark.parametrize("tile", [None, 64])
def test_boxes_are_cut_to_the_image_and_boxes_wholly_outside_it_dropped(tile: int | None) -> None:
    # A 50 x 40 image (width x height) and a model of 32 x 32: without tiles the input shows the image stretched, with a
    # tile of 64 the one window is the image padded with black to 64 x 64. The first box reaches past the image's left
    # and bottom borders, the second lies wholly right of the image (in the padding, or past the input's border).
    boxes = np.array([[-2.0, 4.0, 10.0, 40.0], [33.0, 10.0, 40.0, 20.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    outputs = {
        "det/boxes": boxes,
        "det/scores": np.array([0.9, 0.8, 0.0], dtype=np.float32),
        "det/labels": np.array([1, 0, -1]),
    }

    result = merge_windows({"det": "detection"}, [((0, 0, 50, 40), outputs)], 40, 50, input_size=(32, 32), tile=tile)

    scale_x, scale_y = (50 / 32, 40 / 32) if tile is None else (2.0, 2.0)
    expected = [[0.0, 4.0 * scale_y, 10.0 * scale_x, 40.0]]  # cut at x = 0 and y = 40 (the image's height)
    np.testing.assert_allclose(result["det"]["boxes"], expected, rtol=1e-6)
    assert result["det"]["scores"].tolist() == pytest.approx([0.9])
    assert result["det"]["labels"].tolist() == [1]


def _points_window(points: list[tuple[float, float]], scores: list[float]) -> dict[str, np.ndarray]:
    """A points head's outputs for one window, padded with a row of label -1; points in the window's input pixels."""
    return {
        "p/points": np.array([*points, (0.0, 0.0)], dtype=np.float32),
        "p/scores": np.array([*scores, 0.01], dtype=np.float32),
        "p/labels": np.array([0] * len(points) + [-1], dtype=np.int64),
    }


def test_tiled_points_seen_by_two_windows_are_reported_once_by_the_window_they_are_central_to() -> None:
    # Windows of 40 at x 0 and 20 over an image 60 wide, input 20 x 20 (half the tile): the overlap 20..40 splits at 30.
    left = _points_window([(5.0, 5.0), (12.5, 10.0), (17.5, 10.0)], [0.9, 0.8, 0.7])  # x 10, 25 and 35 in the image
    right = _points_window([(2.5, 10.0), (7.5, 10.0), (15.0, 5.0)], [0.75, 0.6, 0.5])  # x 25, 35 and 50 in the image
    parts = [((0, 0, 40, 40), left), ((20, 0, 60, 40), right)]

    result = merge_windows({"p": "points"}, parts, 40, 60, input_size=(20, 20), tile=40)["p"]

    # x 25 is the left window's (left of 30), x 35 the right one's: each object once, at its score there
    np.testing.assert_allclose(result["points"], [[10.0, 10.0], [25.0, 20.0], [35.0, 20.0], [50.0, 10.0]])
    np.testing.assert_allclose(result["scores"], [0.9, 0.8, 0.6, 0.5])
    assert result["labels"].tolist() == [0, 0, 0, 0]


def test_untiled_points_are_scaled_to_the_image_and_the_padding_left_out() -> None:
    output = _points_window([(4.0, 2.0), (20.0, 10.0)], [0.9, 0.4])

    result = merge_windows({"p": "points"}, [((0, 0, 60, 30), output)], 30, 60, input_size=(10, 20), tile=None)["p"]

    np.testing.assert_allclose(result["points"], [[12.0, 6.0], [60.0, 30.0]])  # the far border is on the image
    assert result["labels"].tolist() == [0, 0]
    assert result["points"].dtype == np.float32


def _perfectly_detected(
    boxes: torch.Tensor, labels: torch.Tensor, input_size: tuple[int, int], stride: int
) -> dict[str, np.ndarray]:
    """The outputs of a detection head trained to perfection on one input's target boxes [N, 4] (labels [N]; those
    below 0 are not detected): the targets encoded as training encodes them, decoded as prediction decodes them."""
    from torchbricks.bag_of_bricks.object_detection import BoxDecoder, render_box_targets

    cells = (-(-input_size[0] // stride), -(-input_size[1] // stride))
    heat, assigned, weight = render_box_targets(boxes[None], labels[None], num_classes=2, size=cells, stride=stride)
    xs = (torch.arange(cells[1]) + 0.5) * stride
    ys = (torch.arange(cells[0]) + 0.5) * stride
    sides = torch.stack(
        (xs - assigned[..., 0], ys[:, None] - assigned[..., 1], assigned[..., 2] - xs, assigned[..., 3] - ys[:, None]), dim=1
    )
    distances = torch.where(weight[:, None] > 0, sides / stride, torch.full_like(sides, 3.0))
    decoded, scores, decoded_labels = BoxDecoder(stride, max_detections=128)(torch.where(heat >= 1, 9.0, -9.0), distances)
    return {"det/boxes": decoded[0].numpy(), "det/scores": scores[0].numpy(), "det/labels": decoded_labels[0].numpy()}


def _scattered_small_boxes(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Boxes of 1 to 12 px, one near each point of a 24 px grid (so no two centres share a cell of the model)."""
    centres = torch.stack(torch.meshgrid(torch.arange(12, width - 12, 24), torch.arange(12, height - 12, 24), indexing="xy"), -1)
    centres = centres.reshape(-1, 2).float() + (torch.rand(centres.numel() // 2, 2, generator=generator) - 0.5) * 8
    sizes = 1 + torch.rand(len(centres), 2, generator=generator) * 11
    return torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)


@pytest.mark.parametrize(("tile", "input_size"), [(None, (64, 96)), (None, (128, 96)), (96, (64, 64)), (64, (64, 64))])
def test_small_boxes_read_at_another_size_or_in_overlapping_tiles_come_back_once_at_their_pixels(
    tile: int | None, input_size: tuple[int, int]
) -> None:
    # The round trip of predict: an image read at the model's size (or cut into tiles, each read at it) as the data
    # modules read the training images and their boxes, each input's boxes encoded and decoded by a perfect head, and
    # the windows merged back to the image's pixels. A box in an overlap is found by two tiles, a box cut by a tile's
    # border is found cut by one and whole by another: each is one box, where it is.
    from torchvision import tv_tensors

    from torchbricks._tiled_predictions import image_windows
    from torchbricks.datasets.tiled import crop_sample
    from torchbricks.datasets.transforms import create_transform

    height, width = 200, 300
    boxes = _scattered_small_boxes(height, width, torch.Generator().manual_seed(0))
    labels = torch.arange(len(boxes)) % 2
    image = tv_tensors.Image(torch.zeros(3, height, width, dtype=torch.uint8))
    sample = {
        "image": image,
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        "labels": labels,
    }
    transform = create_transform(input_size, boxes=True, evaluation=True)
    parts = []
    for window in image_windows(height, width, tile, overlap=0.25):
        cut = sample if tile is None else crop_sample(sample, window, tile)
        seen = transform(cut)
        parts.append((window, _perfectly_detected(seen["boxes"].as_subclass(torch.Tensor), seen["labels"], input_size, 4)))

    result = merge_windows({"det": "detection"}, parts, height, width, input_size=input_size, tile=tile)["det"]

    order = np.lexsort((result["boxes"][:, 0], result["boxes"][:, 1]))
    expected = np.lexsort((boxes[:, 0].numpy(), boxes[:, 1].numpy()))
    assert len(result["boxes"]) == len(boxes)
    np.testing.assert_allclose(result["boxes"][order], boxes[expected].numpy(), atol=1e-3, rtol=0)
    assert result["labels"][order].tolist() == labels[expected].tolist()


@pytest.mark.parametrize("cut_part_score", [0.8, 0.9])
def test_the_cut_part_of_a_box_does_not_suppress_the_whole_box_another_window_found(cut_part_score: float) -> None:
    # Windows [0, 40) and [30, 70) of a 70 x 40 image and an object at x 32 to 42: the first window finds its part
    # 32-40 against its inner border, the second finds it whole. Their IoU, 0.8, is above the threshold: the part,
    # scoring as high or higher, suppressed the whole box, and was reported in its place.
    def window(box: list[float], score: float) -> dict[str, np.ndarray]:
        return {
            "det/boxes": np.array([box], dtype=np.float32),
            "det/scores": np.array([score], dtype=np.float32),
            "det/labels": np.array([0]),
        }

    parts = [
        ((0, 0, 40, 40), window([32.0, 5.0, 40.0, 15.0], cut_part_score)),
        ((30, 0, 70, 40), window([2.0, 5.0, 12.0, 15.0], 0.8)),
    ]

    result = merge_windows({"det": "detection"}, parts, 40, 70, input_size=(40, 40), tile=40)["det"]

    assert result["boxes"].tolist() == [[32.0, 5.0, 42.0, 15.0]]
