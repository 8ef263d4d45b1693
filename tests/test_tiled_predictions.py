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
