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
