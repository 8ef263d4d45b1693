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
