"""The one rule of cutting boxes to their image, for numpy (`predict`) and torch (the mAP) alike, against plain Python."""

from __future__ import annotations

import numpy as np
import torch

from torchbricks._box_cutting import cut_to_image


def _by_hand(box: list[float], height: float, width: float) -> tuple[list[float], bool]:
    x0, y0, x1, y1 = (min(max(value, 0.0), limit) for value, limit in zip(box, (width, height) * 2, strict=True))
    return [x0, y0, x1, y1], x1 > x0 and y1 > y0


def test_numpy_and_torch_boxes_are_cut_to_each_images_size_and_those_left_without_area_flagged() -> None:
    generator = np.random.default_rng(0)
    corners = generator.uniform(-20, 50, size=(3, 40, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + generator.uniform(0, 25, size=(3, 40, 2)).astype(np.float32)], axis=-1)
    heights, widths = np.array([32.0, 12.0, 40.0], dtype=np.float32), np.array([20.0, 32.0, 8.0], dtype=np.float32)
    original = boxes.copy()

    cut, shown = cut_to_image(boxes, heights[:, None, None], widths[:, None, None])
    cut_torch, shown_torch = cut_to_image(
        torch.from_numpy(boxes), torch.from_numpy(heights)[:, None, None], torch.from_numpy(widths)[:, None, None]
    )

    expected = [[_by_hand(box, heights[i], widths[i]) for box in boxes[i].tolist()] for i in range(3)]
    assert cut.tolist() == [[box for box, _ in image] for image in expected]
    assert shown.tolist() == [[kept for _, kept in image] for image in expected]
    assert 0 < shown.sum() < shown.size  # some boxes left in each state
    np.testing.assert_array_equal(cut_torch.numpy(), cut)
    np.testing.assert_array_equal(shown_torch.numpy(), shown)
    np.testing.assert_array_equal(boxes, original)  # not cut in place


def test_one_size_for_all_boxes_is_given_as_numbers() -> None:
    boxes = torch.tensor([[[-4.0, 2, 10, 30], [25, 5, 28, 9]]])

    cut, shown = cut_to_image(boxes, 20, 24)

    assert cut.tolist() == [[[0.0, 2, 10, 20], [24, 5, 24, 9]]]
    assert shown.tolist() == [[True, False]]
