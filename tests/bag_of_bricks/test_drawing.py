from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from torchbricks.bag_of_bricks.drawing import (
    PALETTE,
    color_for,
    draw_boxes,
    draw_class_label,
    draw_points,
    overlay_segmentation_mask,
    to_pillow_rgb,
)
from torchbricks.errors import BrickError

GRAY = 0.5
GRAY_UINT8 = 128


def _gray_image(height: int = 40, width: int = 80) -> np.ndarray:
    return np.full((height, width, 3), GRAY, dtype=np.float32)


def _colors(image: Image.Image) -> set[tuple[int, int, int]]:
    return {tuple(pixel) for pixel in np.asarray(image).reshape(-1, 3)}


def test_class_label_draws_a_box_in_the_class_color_with_text_in_the_corner_only() -> None:
    image = draw_class_label(_gray_image(), 2, class_names=["cat", "dog", "bird"])
    pixels = np.asarray(image)
    assert image.getpixel((4, 4)) == color_for(2)
    text_pixels = pixels[4:30, 4:60]
    assert (text_pixels == np.array(color_for(2))).all(axis=-1).mean() > 0.3  # the box
    assert (text_pixels != np.array(color_for(2))).any(axis=-1).sum() > 5  # the letters on it
    assert (pixels[35:, :] == GRAY_UINT8).all()  # below the label the image is untouched


def test_class_label_names_longer_than_others_need_a_wider_box() -> None:
    short = np.asarray(draw_class_label(_gray_image(), 0, class_names=["a", "a much longer name"]))
    long = np.asarray(draw_class_label(_gray_image(), 1, class_names=["a", "a much longer name"]))
    assert (short != GRAY_UINT8).any(axis=-1).sum() < (long != GRAY_UINT8).any(axis=-1).sum()


def test_drawing_never_changes_the_input_image() -> None:
    source = Image.new("RGB", (20, 20), (10, 20, 30))
    draw_class_label(source, "x")
    draw_points(source, np.array([[5.0, 5.0]]))
    assert _colors(source) == {(10, 20, 30)}


def test_mask_overlay_blends_class_colors_and_leaves_the_background() -> None:
    mask = np.zeros((4, 6), dtype=np.int64)
    mask[:, 3:] = 1
    mask[0, 0] = 13  # cycles to PALETTE[1]
    overlaid = np.asarray(overlay_segmentation_mask(np.zeros((4, 6, 3)), mask, alpha=0.5))
    expected = np.rint(np.array(PALETTE[1]) * 0.5)
    assert (overlaid[1, 0] == 0).all()
    assert (overlaid[2, 4] == expected).all()
    assert (overlaid[0, 0] == expected).all()


def test_mask_overlay_colors_every_class_when_background_class_is_none() -> None:
    overlaid = overlay_segmentation_mask(
        np.zeros((2, 2, 3)), torch.zeros(2, 2, dtype=torch.int64), alpha=1.0, background_class=None
    )
    assert _colors(overlaid) == {PALETTE[0]}


def test_mask_overlay_rejects_a_mask_of_another_size() -> None:
    with pytest.raises(BrickError, match=r"mask \(3, 3\) must match the image \[H, W\] = \(4, 6\)"):
        overlay_segmentation_mask(np.zeros((4, 6, 3)), np.zeros((3, 3), dtype=np.int64))


def test_points_are_dots_in_their_class_color_and_padding_is_skipped() -> None:
    points = np.array([[10.0, 10.0], [30.0, 30.0], [50.0, 10.0]])
    image = draw_points(np.zeros((40, 60, 3)), points, labels=np.array([1, -1, 4]), radius=3, show_text=False)
    assert image.getpixel((10, 10)) == color_for(1)
    assert image.getpixel((50, 10)) == color_for(4)
    assert image.getpixel((30, 30)) == (0, 0, 0)
    assert image.getpixel((10, 15)) == (0, 0, 0)


def test_point_labels_are_written_beside_the_dot() -> None:
    image = draw_points(np.zeros((40, 60, 3)), np.array([[10.0, 10.0]]), labels=np.array([0]), class_names=["a"], radius=2)
    beside = np.asarray(image)[5:25, 14:40]
    assert (beside == np.array(color_for(0))).all(axis=-1).sum() > 10


def test_boxes_are_outlines_in_their_class_color() -> None:
    image = draw_boxes(
        np.zeros((40, 40, 3)), torch.tensor([[5.0, 5.0, 30.0, 25.0]]), labels=torch.tensor([3]), width=1, show_text=False
    )
    assert image.getpixel((5, 15)) == color_for(3)
    assert image.getpixel((30, 15)) == color_for(3)
    assert image.getpixel((15, 25)) == color_for(3)
    assert image.getpixel((15, 15)) == (0, 0, 0)


def test_box_labels_sit_above_the_box() -> None:
    image = draw_boxes(np.zeros((60, 60, 3)), np.array([[5.0, 30.0, 50.0, 55.0]]), labels=np.array([0]), scores=np.array([0.9]))
    above = np.asarray(image)[5:29, 5:50]
    assert (above == np.array(color_for(0))).all(axis=-1).sum() > 20


def test_to_pillow_rgb_reads_channel_first_tensors() -> None:
    tensor = torch.zeros(3, 2, 5)
    tensor[0] = 1.0
    image = to_pillow_rgb(tensor)
    assert image.size == (5, 2)
    assert image.getpixel((0, 0)) == (255, 0, 0)


def test_points_and_boxes_need_one_label_per_item() -> None:
    with pytest.raises(BrickError, match="draw_points: 1 labels for 2 items"):
        draw_points(np.zeros((8, 8, 3)), np.zeros((2, 2)), labels=np.array([0]))
    with pytest.raises(BrickError, match="draw_boxes: 2 labels for 1 items"):
        draw_boxes(np.zeros((8, 8, 3)), np.zeros((1, 4)), labels=np.array([0, 1]))
