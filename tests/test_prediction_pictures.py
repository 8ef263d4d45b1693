"""The drawn pictures of `torchbricks predict`, against the drawing functions of `bag_of_bricks.drawing` as reference."""

from __future__ import annotations

import numpy as np
from PIL import Image

from torchbricks._prediction_pictures import DRAWN_MIN_SCORE, PALETTE_BYTES, PictureDrawer, label_tile
from torchbricks.bag_of_bricks.drawing import PALETTE, draw_boxes, draw_class_label, load_font, overlay_segmentation_mask


def _grey(height: int = 64, width: int = 80) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


def test_a_pasted_label_is_the_label_drawing_draws() -> None:
    image = _grey()
    drawer = PictureDrawer({"head": "classification"}, ["cat", "dog"])
    picture = drawer.start(image)
    drawer.write_label(picture, "dog 0.87", 0)

    reference = draw_class_label(image, "dog 0.87", font=load_font(10), position=(4, 4))
    np.testing.assert_array_equal(np.asarray(picture), np.asarray(reference))


def test_boxes_are_outlined_in_their_class_colour_and_labelled_like_drawing_does() -> None:
    image = _grey()
    values = {
        "boxes": np.array([[20.0, 30.0, 60.0, 55.0], [5.0, 5.0, 10.0, 10.0]], dtype=np.float32),
        "scores": np.array([0.9, DRAWN_MIN_SCORE - 0.01], dtype=np.float32),
        "labels": np.array([1, 0]),
    }
    picture = PictureDrawer({"det": "detection"}, ["circle", "square"]).start(image)
    PictureDrawer({"det": "detection"}, ["circle", "square"]).draw_boxes(picture, values, "det")

    reference = draw_boxes(image, values["boxes"][:1], values["labels"][:1], values["scores"][:1], ["circle", "square"])
    np.testing.assert_array_equal(np.asarray(picture), np.asarray(reference))
    assert picture.getpixel((40, 54)) == PALETTE[1]  # the bottom edge of the kept box
    assert picture.getpixel((7, 5)) == (90, 90, 90)  # the box below the drawing threshold is not drawn


def test_the_mask_blend_is_the_drawing_overlay_within_one_grey_level() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, (24, 32))
    overlay = Image.fromarray(mask.astype(np.uint8), mode="P")
    overlay.putpalette(PALETTE_BYTES, "RGB")
    drawer = PictureDrawer({"seg": "segmentation"})

    reference = np.asarray(overlay_segmentation_mask(image, mask), dtype=np.int64)
    for palette_image in (overlay, None):  # from the overlay file's image, and from the mask itself (over 255 classes)
        blended = np.asarray(drawer.blend_mask(drawer.start(image), mask, palette_image), dtype=np.int64)
        assert np.abs(blended - reference).max() <= 1
        np.testing.assert_array_equal(blended[mask == 0], image[mask == 0])


def test_the_classification_text_names_the_best_class_or_the_present_ones() -> None:
    drawer = PictureDrawer({"a": "classification", "b": "multilabel"}, ["cat", "dog", "fox"])
    assert drawer.classification_text("classification", {"probabilities": np.array([0.1, 0.7, 0.2])}, "a") == "dog 0.70"
    assert drawer.classification_text("multilabel", {"probabilities": np.array([0.6, 0.2, 0.9])}, "b") == "cat, fox"
    assert drawer.name_of(7, "a") == "7"
    own = PictureDrawer({"a": "classification", "b": "multilabel"}, {"a": ["cat", "dog", "fox"], "b": ["red", "green", "blue"]})
    values = {"probabilities": np.array([0.6, 0.2, 0.9])}
    assert own.classification_text("multilabel", values, "b") == "red, blue"  # each head its own names


def test_label_tiles_are_rendered_once_per_text_colour_and_size() -> None:
    first = label_tile("only once 0.50", PALETTE[2], 12)
    assert label_tile("only once 0.50", PALETTE[2], 12) is first
    assert label_tile("only once 0.50", PALETTE[3], 12) is not first
    assert first.getpixel((first.width - 1, first.height - 1)) == PALETTE[2]


def test_the_palette_gives_class_i_the_colour_of_drawing() -> None:
    assert len(PALETTE_BYTES) == 768
    for index in (0, 5, len(PALETTE), 255):
        assert tuple(PALETTE_BYTES[3 * index : 3 * index + 3]) == PALETTE[index % len(PALETTE)]
