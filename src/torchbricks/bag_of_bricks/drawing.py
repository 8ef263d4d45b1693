"""Per-image drawing with Pillow (no OpenCV): class labels, segmentation masks, points and boxes.

Every function takes one image (a Pillow image, or a channel-last numpy array [H, W, C] with floats in
[0, 1] or uint8) and returns a new RGB Pillow image; the input is never changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from torchbricks._palette import PALETTE, Color, Font, color_for, load_font
from torchbricks.errors import BrickError
from torchbricks.tensor_conversions import numpy_to_pillow, torch_to_numpy

__all__ = [
    "PALETTE",
    "Color",
    "color_for",
    "draw_boxes",
    "draw_class_label",
    "draw_points",
    "load_font",
    "overlay_segmentation_mask",
    "to_pillow_rgb",
]


def to_pillow_rgb(image: Image.Image | np.ndarray | torch.Tensor) -> Image.Image:
    """An RGB copy of a Pillow image, a channel-last array [H, W, C] / [H, W] or a channel-first tensor [C, H, W].

    Example:
        >>> to_pillow_rgb(np.zeros((4, 5, 1))).size
        (5, 4)
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        array = torch_to_numpy(image)
        image = np.moveaxis(array, 0, -1) if array.ndim == 3 else array
    return numpy_to_pillow(np.asarray(image)).convert("RGB")


def _as_array(values: Any, dtype: type | None = None) -> np.ndarray:
    array = torch_to_numpy(values) if isinstance(values, torch.Tensor) else np.asarray(values)
    return array.astype(dtype) if dtype is not None else array


def _label_text(label: int, class_names: Sequence[str] | None, score: float | None) -> str:
    text = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
    return text if score is None else f"{text} {score:.2f}"


def _labelled_items(
    function: str,
    count: int,
    labels: np.ndarray | torch.Tensor | None,
    scores: np.ndarray | torch.Tensor | None,
    class_names: Sequence[str] | None,
    show_text: bool,
) -> Iterator[tuple[int, Color, str | None]]:
    """Index, class color and text (None without `show_text`) of each of `count` drawn items, leaving out the
    padding (negative labels); without labels every item is class 0."""
    classes = np.zeros(count, dtype=np.int64) if labels is None else _as_array(labels, np.int64).reshape(-1)
    if len(classes) != count:
        raise BrickError(f"{function}: {len(classes)} labels for {count} items; give one label per item.")
    values = None if scores is None else _as_array(scores, np.float32).reshape(-1)
    for index, label in enumerate(classes.tolist()):
        if label < 0:
            continue
        text = _label_text(label, class_names, None if values is None else float(values[index])) if show_text else None
        yield index, color_for(label), text


def _text_with_background(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: Font, color: Color) -> None:
    x, y = xy
    _, _, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.rectangle((x, y, x + right + 4, y + bottom + 4), fill=color)
    draw.text((x + 2, y + 2), text, font=font, fill=(255, 255, 255) if sum(color) < 384 else (0, 0, 0))


def draw_class_label(
    image: Image.Image | np.ndarray,
    label: int | str,
    class_names: Sequence[str] | None = None,
    score: float | None = None,
    color: Color | None = None,
    font: Font | None = None,
    position: tuple[int, int] = (4, 4),
) -> Image.Image:
    """Writes a class name (and score) on a filled box in the image's corner.

    Args:
        image: The image.
        label: A class index (named by `class_names` when given) or a text.
        class_names: Names of the class indices.
        score: Written after the name, for example the class probability.
        color: Box color; the class's palette color by default.
        font: The font; Pillow's default at 16 px by default.
        position: Top-left corner of the text.

    Example:
        >>> image = draw_class_label(np.zeros((40, 80, 3)), 1, class_names=["cat", "dog"])
        >>> image.getpixel((4, 4))
        (60, 180, 75)
    """
    result = to_pillow_rgb(image)
    if isinstance(label, str):
        text, fill = (label if score is None else f"{label} {score:.2f}"), color or PALETTE[0]
    else:
        index = int(_as_array(label).reshape(-1)[0]) if not isinstance(label, int) else label
        text, fill = _label_text(index, class_names, score), color or color_for(index)
    _text_with_background(ImageDraw.Draw(result), position, text, font or load_font(16), fill)
    return result


def overlay_segmentation_mask(
    image: Image.Image | np.ndarray,
    mask: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    background_class: int | None = 0,
    colors: Sequence[Color] = PALETTE,
) -> Image.Image:
    """Blends a class mask [H, W] over the image, each class in its palette color.

    Args:
        image: The image, of the mask's size.
        mask: Class index per pixel.
        alpha: Opacity of the colors, 0 (invisible) to 1 (opaque).
        background_class: This class is left uncolored; None colors every class.
        colors: Color of each class index (cycled).

    Example:
        >>> mask = np.zeros((4, 4), dtype=np.int64)
        >>> mask[:, 2:] = 1
        >>> overlaid = overlay_segmentation_mask(np.zeros((4, 4, 3)), mask, alpha=1.0)
        >>> overlaid.getpixel((0, 0)), overlaid.getpixel((3, 0))
        ((0, 0, 0), (60, 180, 75))
    """
    result = to_pillow_rgb(image)
    classes = _as_array(mask, np.int64)
    if classes.ndim == 3 and classes.shape[0] == 1:
        classes = classes[0]
    if classes.shape != (result.height, result.width):
        raise BrickError(
            f"overlay_segmentation_mask: mask {classes.shape} must match the image [H, W] = {(result.height, result.width)}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise BrickError(f"overlay_segmentation_mask: alpha must be in [0, 1], got {alpha}.")
    lookup = np.array(colors, dtype=np.float32)[np.mod(classes, len(colors))]
    pixels = np.asarray(result, dtype=np.float32)
    weight = np.full((*classes.shape, 1), alpha, dtype=np.float32)
    if background_class is not None:
        weight[classes == background_class] = 0.0
    blended = pixels * (1.0 - weight) + lookup * weight
    return Image.fromarray(np.rint(blended).astype(np.uint8))


def draw_points(
    image: Image.Image | np.ndarray,
    points: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None = None,
    scores: np.ndarray | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    radius: int = 3,
    font: Font | None = None,
    show_text: bool = True,
) -> Image.Image:
    """Draws points [N, 2] (x, y in pixels) as filled circles in their class color, with the class name beside.

    Points with a negative label (padding) are skipped.

    Example:
        >>> image = draw_points(np.zeros((20, 20, 3)), np.array([[10.0, 10.0]]), labels=np.array([3]), show_text=False)
        >>> image.getpixel((10, 10)), image.getpixel((0, 0))
        ((0, 130, 200), (0, 0, 0))
    """
    result = to_pillow_rgb(image)
    xy = _as_array(points, np.float32).reshape(-1, 2)
    draw = ImageDraw.Draw(result)
    font = font or load_font(max(8, 4 * radius))
    for index, color, text in _labelled_items("draw_points", len(xy), labels, scores, class_names, show_text):
        x, y = xy[index]
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
        if text is not None:
            _text_with_background(draw, (x + radius + 2, y - radius), text, font, color)
    return result


def draw_boxes(
    image: Image.Image | np.ndarray,
    boxes: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None = None,
    scores: np.ndarray | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    width: int = 2,
    font: Font | None = None,
    show_text: bool = True,
) -> Image.Image:
    """Draws boxes [N, 4] (x_min, y_min, x_max, y_max in pixels) as outlines in their class color, labelled above.

    Boxes with a negative label (padding) are skipped.

    Example:
        >>> image = draw_boxes(np.zeros((20, 20, 3)), np.array([[2, 2, 15, 15]]), labels=np.array([0]), show_text=False)
        >>> image.getpixel((2, 8)), image.getpixel((8, 8))
        ((230, 25, 75), (0, 0, 0))
    """
    result = to_pillow_rgb(image)
    corners = _as_array(boxes, np.float32).reshape(-1, 4)
    draw = ImageDraw.Draw(result)
    font = font or load_font(12)
    for index, color, text in _labelled_items("draw_boxes", len(corners), labels, scores, class_names, show_text):
        x_min, y_min, x_max, y_max = (float(value) for value in corners[index])
        draw.rectangle((x_min, y_min, x_max, y_max), outline=color, width=width)
        if text is not None:
            height = draw.textbbox((0, 0), text, font=font)[3] + 4
            _text_with_background(draw, (x_min, max(0.0, y_min - height)), text, font, color)
    return result
